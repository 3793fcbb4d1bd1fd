-- What the hypervisor did to its guests: every exit kind it saw, per VM, then one timeline of its
-- actions (nested page table changes, events it injected, cache flushes, firmware commands).

SELECT coalesce(v.name, 'vm ' || x.vm) AS vm,
       x.exit_name,
       count(*) AS exits,
       min(x.seq) AS first_seq,
       max(x.seq) AS last_seq
FROM vm_exits AS x
LEFT JOIN vms AS v ON v.vm = x.vm
GROUP BY x.vm, x.exit_name
ORDER BY x.vm, exits DESC, x.exit_name;

SELECT t.seq, t.vm, t.action, t.detail
FROM (
    SELECT n.seq, coalesce(v.name, 'vm ' || n.vm) AS vm, 'npt ' || n.op AS action,
           printf('gpa 0x%x, %d pages, spa 0x%x', n.gpa, n.pages, n.spa) AS detail
    FROM npt_changes AS n LEFT JOIN vms AS v ON v.vm = n.vm
    UNION ALL
    SELECT r.seq, coalesce(v.name, 'vm ' || r.vm), 'inject',
           printf('vector %d into vcpu %d, error 0x%x, cr2 0x%x', r.event_inj & 255, r.vcpu, r.event_inj >> 32, r.cr2)
    FROM vm_runs AS r LEFT JOIN vms AS v ON v.vm = r.vm
    WHERE r.event_inj != 0
    UNION ALL
    SELECT f.seq, 'platform ' || f.platform, f.op,
           printf('spa 0x%x, key %d, %d lines, core %d', f.spa, f.key, f.lines, f.core)
    FROM cache_flushes AS f
    UNION ALL
    SELECT p.seq, 'platform ' || p.platform, 'psp ' || p.command_name,
           printf('handle %d, asid %d: %s', p.handle, p.asid, p.status_name)
    FROM psp_commands AS p
) AS t
ORDER BY t.seq;
