-- Metadata fields a dataset defines for its documents (Dify's dataset_metadatas). The values
-- live on each document, in documents.doc_metadata, as Dify's [{id, name, type, value}].

CREATE TABLE dataset_metadatas (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL,
    dataset_id UUID NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('string', 'number', 'time')),
    name TEXT NOT NULL,
    created_by UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX dataset_metadatas_name_key ON dataset_metadatas (dataset_id, name);
