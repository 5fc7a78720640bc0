-- Each retrieval of a dataset (Dify's dataset_queries), so the unused-datasets clean-up can
-- tell a dataset in use from a forgotten one.

CREATE TABLE dataset_queries (
    id UUID PRIMARY KEY,
    dataset_id UUID NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    source TEXT NOT NULL,
    created_by UUID NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX dataset_queries_dataset_idx ON dataset_queries (dataset_id, created_at);
