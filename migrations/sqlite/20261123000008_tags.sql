-- Knowledge tags and their bindings to datasets (see the PostgreSQL twin).

CREATE TABLE tags (
    id BLOB PRIMARY KEY,
    tenant_id BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('knowledge')),
    name TEXT NOT NULL,
    created_by BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX tags_name_key ON tags (tenant_id, type, name);

CREATE TABLE tag_bindings (
    tag_id BLOB NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    target_id BLOB NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    tenant_id BLOB NOT NULL,
    created_by BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tag_id, target_id)
);
CREATE INDEX tag_bindings_target_idx ON tag_bindings (target_id);
