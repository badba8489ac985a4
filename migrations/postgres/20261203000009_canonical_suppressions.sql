-- Addresses are compared in one canonical form: email addresses in lower case. Suppressions of
-- two spellings of one address collapse into one, and the stricter wins: a complaint over an
-- unsubscribe (or STOP) over a bounce over anything else; between equals, the earliest.
DELETE FROM suppressions WHERE channel = 'email' AND address NOT LIKE 'sha256:%' AND EXISTS (
    SELECT 1 FROM suppressions o
    WHERE o.shop = suppressions.shop AND o.channel = 'email' AND o.address NOT LIKE 'sha256:%'
      AND lower(o.address) = lower(suppressions.address) AND o.address <> suppressions.address
      AND ((CASE WHEN o.reason LIKE '%complaint%' THEN 4 WHEN o.reason LIKE 'unsubscribed%' OR o.reason LIKE 'STOP%' THEN 3
                 WHEN o.reason LIKE '%bounce%' THEN 2 ELSE 1 END,
            -o.created_at, o.address)
           > (CASE WHEN suppressions.reason LIKE '%complaint%' THEN 4
                   WHEN suppressions.reason LIKE 'unsubscribed%' OR suppressions.reason LIKE 'STOP%' THEN 3
                   WHEN suppressions.reason LIKE '%bounce%' THEN 2 ELSE 1 END,
              -suppressions.created_at, suppressions.address)));
UPDATE suppressions SET address = lower(trim(address))
WHERE channel = 'email' AND address NOT LIKE 'sha256:%' AND address <> lower(trim(address));
