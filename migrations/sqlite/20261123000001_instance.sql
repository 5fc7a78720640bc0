-- The installation itself: one row, created by the first migration, so every replica and
-- admin command can tell which database it is talking to (and a migration applied twice
-- would be visible as a second row).
CREATE TABLE kiln_instance (
    id TEXT PRIMARY KEY,
    singleton INTEGER NOT NULL DEFAULT 1 UNIQUE CHECK (singleton = 1),
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

WITH random(h) AS (SELECT lower(hex(randomblob(16))))
INSERT INTO kiln_instance (id)
SELECT substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-'
       || substr(h, 17, 4) || '-' || substr(h, 21, 12)
FROM random;
