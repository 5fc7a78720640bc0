-- The installation itself: one row, created by the first migration, so every replica and
-- admin command can tell which database it is talking to (and a migration applied twice
-- would be visible as a second row).
CREATE TABLE kiln_instance (
    id UUID PRIMARY KEY,
    singleton BOOLEAN NOT NULL DEFAULT TRUE UNIQUE CHECK (singleton),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

INSERT INTO kiln_instance (id) VALUES (gen_random_uuid());
