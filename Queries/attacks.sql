-- Findings that match known attacks on SEV, with the attack each one is the signature of.
SELECT f.id,
       f.severity,
       f.detector,
       CASE f.detector
           WHEN 'NPT_REMAP' THEN 'SEVered / CrossLine: nested-page-table remapping'
           WHEN 'ASID_MISUSE' THEN 'CrossLine: a VMCB carrying another guest''s ASID'
           WHEN 'REGISTER_EXPOSURE' THEN 'Hetzelt & Buhren; Werner et al.: unencrypted VMCB register state'
           WHEN 'CIPHERTEXT_OBSERVATION' THEN 'CipherLeaks: deterministic ciphertext as a side channel'
           WHEN 'UNMEASURED_EXECUTION' THEN 'undeSErVed trust / code injection: running code the launch did not measure'
           WHEN 'HV_WRITE_PRIVATE' THEN 'SEVurity-style ciphertext injection by the hypervisor'
           WHEN 'DMA_INTO_PRIVATE' THEN 'unprotected I/O: device writes into private memory'
           WHEN 'HV_PLAINTEXT' THEN 'Li et al., unprotected I/O: the hypervisor reads guest plaintext'
           WHEN 'POLICY_VIOLATION_ATTEMPT' THEN 'a hypervisor probing the guest policy (debug, migration)'
           WHEN 'KEY_SHARING' THEN 'shared memory-encryption keys between guests'
           WHEN 'MIGRATION_TO_UNTRUSTED' THEN 'Buhren et al.: migration to a platform the firmware did not verify'
           WHEN 'CBIT_ALIAS' THEN 'stale cache lines across a C-bit change'
           WHEN 'CBIT_POSITION_LIE' THEN 'a hypervisor lying about the C-bit in CPUID (what sev_verify_cbit checks)'
           WHEN 'PAGE_FAULT_TRACKING' THEN 'Hetzelt & Buhren; SEVered: the page-fault side channel (which pages the guest touches)'
           WHEN 'RAM_AS_MMIO' THEN 'a hypervisor removing guest RAM (memslot): the guest''s stores reach it, its loads take its values'
           ELSE f.detector
       END AS attack,
       coalesce(v.name, 'host') AS vm,
       f.sink_seq,
       f.summary
FROM findings AS f
LEFT JOIN vms AS v ON v.vm = f.vm
WHERE f.detector IN ('NPT_REMAP', 'ASID_MISUSE', 'REGISTER_EXPOSURE', 'CIPHERTEXT_OBSERVATION', 'UNMEASURED_EXECUTION',
                     'HV_WRITE_PRIVATE', 'DMA_INTO_PRIVATE', 'HV_PLAINTEXT', 'POLICY_VIOLATION_ATTEMPT', 'KEY_SHARING',
                     'MIGRATION_TO_UNTRUSTED', 'CBIT_ALIAS', 'RAM_AS_MMIO',
                     'PAGE_FAULT_TRACKING', 'CBIT_POSITION_LIE')
ORDER BY f.severity_rank DESC, f.sink_seq;
