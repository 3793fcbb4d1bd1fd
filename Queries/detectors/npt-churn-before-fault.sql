-- rule: NPT_CHURN_BEFORE_FAULT
-- severity: medium
-- summary: the hypervisor took pages of an SEV guest out of its nested page table and the guest's next touch of one faulted
-- positive: ../../Traces/detectors/page-fault-tracking.sev
-- negative: ../../Traces/detectors/page-fault-tracking-ok.sev
--
-- The relational form of PAGE_FAULT_TRACKING: an `unmap` in npt_changes followed by the first nested
-- page fault (#VMEXIT code 0x400, not the reserved-bit MMIO kind) on one of those pages.
SELECT x.seq AS sink_seq, n.seq AS source_seq, x.vm AS vm, v.asid AS asid, 'hv' AS actor,
       (x.exit_info2 / 4096) * 4096 AS sink_gpa, 4096 AS length,
       v.name || ' faulted on gpa ' || printf('0x%x', (x.exit_info2 / 4096) * 4096)
           || ', a page the hypervisor had taken out of its nested page table: the hypervisor learns it was touched' AS summary
FROM npt_changes AS n
JOIN vms AS v ON v.vm = n.vm AND v.sev = 1
JOIN vm_exits AS x
  ON x.vm = n.vm AND x.seq > n.seq AND x.exit_code = 1024 AND (x.exit_info1 & 8) = 0
 AND x.exit_info2 >= n.gpa AND x.exit_info2 < n.gpa + n.pages * 4096
WHERE n.op = 'unmap'
  AND NOT EXISTS (SELECT 1 FROM vm_exits AS y
                  WHERE y.vm = x.vm AND y.exit_code = 1024 AND y.seq > n.seq AND y.seq < x.seq
                    AND y.exit_info2 / 4096 = x.exit_info2 / 4096)
ORDER BY x.seq;
