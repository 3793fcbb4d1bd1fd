-- Every leak the analyzer found, worst first: what escaped, from where, to where.
SELECT f.id,
       f.severity,
       f.detector,
       coalesce(v.name, 'host') AS vm,
       f.asid,
       f.actor,
       f.labels,
       f.source_seq,
       f.sink_seq,
       f.sink_last_seq,
       printf('0x%x', f.source_spa) AS source_spa,
       printf('0x%x', f.sink_gpa) AS sink_gpa,
       printf('0x%x', f.sink_spa) AS sink_spa,
       f.length,
       f.preview
FROM findings AS f
LEFT JOIN vms AS v ON v.vm = f.vm
ORDER BY f.severity_rank DESC, f.sink_seq;
