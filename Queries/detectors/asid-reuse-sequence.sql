-- rule: ASID_REUSE_SEQUENCE
-- severity: medium
-- summary: an ASID taken from one guest (DEACTIVATE) is offered to another guest (ACTIVATE) with no successful DF_FLUSH in between
-- positive: ../../Traces/detectors/asid-reuse-without-flush.sev
-- negative: ../../Traces/detectors/asid-reuse-without-flush-ok.sev
--
-- The relational form of ASID_REUSE_WITHOUT_FLUSH: it looks at the order of the firmware commands,
-- whatever the firmware answered, so it also sees a reuse a firmware would wrongly have accepted.
-- Command ids: 0x0A DF_FLUSH, 0x21 ACTIVATE, 0x22 DEACTIVATE.
-- DEACTIVATE names the guest's handle; its ASID is the one its last successful ACTIVATE bound.
WITH deactivations AS (
    SELECT d.seq, d.platform, d.handle,
           (SELECT b.asid FROM psp_commands AS b
            WHERE b.platform = d.platform AND b.handle = d.handle AND b.command = 33 AND b.status = 0 AND b.seq < d.seq
            ORDER BY b.seq DESC LIMIT 1) AS asid
    FROM psp_commands AS d
    WHERE d.command = 34 AND d.status = 0)
SELECT a.seq AS sink_seq, d.seq AS source_seq, a.asid AS asid,
       'ACTIVATE of ASID ' || a.asid || ' for guest handle ' || a.handle || ' after its DEACTIVATE from handle '
           || d.handle || ' with no DF_FLUSH in between (the firmware answered ' || a.status_name || ')' AS summary
FROM deactivations AS d
JOIN psp_commands AS a
  ON a.platform = d.platform AND a.asid = d.asid AND a.seq > d.seq AND a.command = 33 AND a.handle <> d.handle
WHERE NOT EXISTS (SELECT 1 FROM psp_commands AS f
                  WHERE f.platform = d.platform AND f.command = 10 AND f.status = 0 AND f.seq > d.seq AND f.seq < a.seq)
  AND NOT EXISTS (SELECT 1 FROM deactivations AS later
                  WHERE later.platform = d.platform AND later.asid = d.asid AND later.seq > d.seq AND later.seq < a.seq)
ORDER BY a.seq;
