-- Every leak the analyzer found, worst first: what escaped, from where, to where, and the path the
-- data took (the events of its flow).
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
       f.occurrences,
       f.preview,
       f.fingerprint,
       (SELECT group_concat(role || ' #' || seq, ' -> ')
          FROM (SELECT role, seq FROM flows WHERE finding = f.id ORDER BY step)) AS path
FROM findings AS f
LEFT JOIN vms AS v ON v.vm = f.vm
ORDER BY f.severity_rank DESC, f.sink_seq;
