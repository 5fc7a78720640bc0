-- Metadata fields a dataset defines for its documents (see the PostgreSQL twin).

CREATE TABLE dataset_metadatas (
    id BLOB PRIMARY KEY,
    tenant_id BLOB NOT NULL,
    dataset_id BLOB NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('string', 'number', 'time')),
    name TEXT NOT NULL,
    created_by BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX dataset_metadatas_name_key ON dataset_metadatas (dataset_id, name);
