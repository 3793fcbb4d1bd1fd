-- rule: NPT_CHURN_BEFORE_FAULT
-- severity: medium
-- summary: the hypervisor took pages of an SEV guest out of its nested page table and the guest's next touch of one faulted
-- positive: ../../Traces/detectors/page-fault-tracking.sev
-- negative: ../../Traces/detectors/page-fault-tracking-ok.sev
--
-- The relational form of PAGE_FAULT_TRACKING: an `unmap` in npt_changes followed by the first nested
-- page fault (#VMEXIT code 0x400, not the reserved-bit MMIO kind) on one of those pages.
WITH faults AS (
  -- Nested page faults (not the reserved-bit MMIO kind), at the address KVM uses: EXITINFO2 without the
  -- C-bit the processor reports in it.
  SELECT x.seq, x.vm, x.exit_info2 & ~(1 << p.cbit) AS gpa
  FROM vm_exits AS x JOIN vms AS v ON v.vm = x.vm JOIN platforms AS p ON p.platform = v.platform
  WHERE x.exit_code = 1024 AND (x.exit_info1 & 8) = 0
)
SELECT f.seq AS sink_seq, n.seq AS source_seq, f.vm AS vm, v.asid AS asid, 'hv' AS actor,
       (f.gpa / 4096) * 4096 AS sink_gpa, 4096 AS length,
       v.name || ' faulted on gpa ' || printf('0x%x', (f.gpa / 4096) * 4096)
           || ', a page the hypervisor had taken out of its nested page table: the hypervisor learns it was touched' AS summary
FROM npt_changes AS n
JOIN vms AS v ON v.vm = n.vm AND v.sev = 1
JOIN faults AS f ON f.vm = n.vm AND f.seq > n.seq AND f.gpa >= n.gpa AND f.gpa < n.gpa + n.pages * 4096
WHERE n.op = 'unmap'
  AND NOT EXISTS (SELECT 1 FROM faults AS g
                  WHERE g.vm = f.vm AND g.seq > n.seq AND g.seq < f.seq AND g.gpa / 4096 = f.gpa / 4096)
ORDER BY f.seq;
