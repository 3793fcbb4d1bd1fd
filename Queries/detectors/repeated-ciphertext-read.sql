-- rule: REPEATED_CIPHERTEXT_READ
-- severity: medium
-- summary: the host or a device read the same 8 bytes of a guest's private memory more than once: comparing ciphertext over time tells when the plaintext repeats (CipherLeaks)
-- positive: repeated-ciphertext-read.sev
-- negative: repeated-ciphertext-read-ok.sev
--
-- The relational form of CIPHERTEXT_OBSERVATION's repeated-read case, over the events table: keyless
-- reads (C=0) by the hypervisor or a device of an address written under a guest key before.
WITH private AS (
    SELECT spa, min(seq) AS first_write FROM events
    WHERE type = 'mem' AND access = 'write' AND cbit = 1 GROUP BY spa),
reads AS (
    SELECT spa, min(seq) AS first_read, max(seq) AS last_read, count(*) AS n, min(vm) AS vm, min(gpa) AS gpa,
           min(actor) AS actor
    FROM events
    WHERE type = 'mem' AND cbit = 0 AND ((access = 'read' AND actor = 'hv') OR access = 'dma-read')
    GROUP BY spa)
SELECT r.first_read AS source_seq, r.first_read AS sink_seq, r.last_read AS sink_last_seq, r.n AS occurrences,
       r.vm AS vm, r.actor AS actor, r.spa AS sink_spa, r.gpa AS sink_gpa, 8 AS length,
       r.actor || ' read the ciphertext at gpa ' || printf('0x%x', r.gpa) || ' ' || r.n
           || ' times: whether it changed tells when the guest wrote another value there' AS summary
FROM reads AS r JOIN private AS p ON p.spa = r.spa AND p.first_write < r.first_read
WHERE r.n >= 2
ORDER BY r.first_read;
