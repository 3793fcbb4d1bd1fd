-- The SEV firmware command log: every command the PSPs ran, with its status and the state changes.
SELECT seq,
       platform,
       command_name AS command,
       handle,
       asid,
       status_name AS status,
       CASE WHEN platform_before = platform_after THEN platform_after
            ELSE platform_before || ' -> ' || platform_after END AS platform_state,
       CASE WHEN guest_before = guest_after THEN guest_after
            ELSE guest_before || ' -> ' || guest_after END AS guest_state,
       length(buffer) AS buffer_bytes
FROM psp_commands
ORDER BY seq;
