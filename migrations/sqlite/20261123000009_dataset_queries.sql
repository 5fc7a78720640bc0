-- Each retrieval of a dataset (see the PostgreSQL twin).

CREATE TABLE dataset_queries (
    id BLOB PRIMARY KEY,
    dataset_id BLOB NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    source TEXT NOT NULL,
    created_by BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX dataset_queries_dataset_idx ON dataset_queries (dataset_id, created_at);
