-- Documents of a dataset, their stored files and process rules, the segments indexing makes,
-- and the keyword index ("economy" indexing) over them (see the PostgreSQL twin). Ids are
-- 16-byte blobs, timestamps RFC 3339 text, booleans 0/1.

CREATE TABLE upload_files (
    id BLOB PRIMARY KEY,
    tenant_id BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    storage_key TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    extension TEXT NOT NULL,
    mime_type TEXT,
    created_by BLOB NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE dataset_process_rules (
    id BLOB PRIMARY KEY,
    dataset_id BLOB NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    mode TEXT NOT NULL CHECK (mode IN ('automatic', 'custom', 'hierarchical')),
    -- JSON: Dify's rules dict.
    rules TEXT,
    created_by BLOB NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE documents (
    id BLOB PRIMARY KEY,
    tenant_id BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dataset_id BLOB NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    data_source_type TEXT NOT NULL,
    -- JSON: {"upload_file_id": …}.
    data_source_info TEXT,
    dataset_process_rule_id BLOB REFERENCES dataset_process_rules (id) ON DELETE SET NULL,
    batch TEXT NOT NULL,
    name TEXT NOT NULL,
    created_from TEXT NOT NULL,
    created_by BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    upload_file_id BLOB REFERENCES upload_files (id) ON DELETE SET NULL,
    word_count INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0,
    indexing_status TEXT NOT NULL DEFAULT 'waiting'
        CHECK (indexing_status IN ('waiting', 'parsing', 'cleaning', 'splitting', 'indexing', 'completed', 'error')),
    processing_started_at TEXT,
    parsing_completed_at TEXT,
    cleaning_completed_at TEXT,
    splitting_completed_at TEXT,
    completed_at TEXT,
    indexing_latency REAL,
    is_paused BOOLEAN NOT NULL DEFAULT 0,
    paused_at TEXT,
    error TEXT,
    stopped_at TEXT,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    disabled_at TEXT,
    disabled_by BLOB,
    archived BOOLEAN NOT NULL DEFAULT 0,
    archived_at TEXT,
    doc_form TEXT NOT NULL DEFAULT 'text_model',
    doc_language TEXT,
    doc_type TEXT,
    -- JSON: metadata values by name.
    doc_metadata TEXT
);
CREATE INDEX documents_dataset_idx ON documents (dataset_id, position);
CREATE INDEX documents_batch_idx ON documents (dataset_id, batch);

CREATE TABLE document_segments (
    id BLOB PRIMARY KEY,
    tenant_id BLOB NOT NULL,
    dataset_id BLOB NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    document_id BLOB NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    content TEXT NOT NULL,
    answer TEXT,
    word_count INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    -- JSON array of the keywords indexed for this segment.
    keywords TEXT,
    index_node_id TEXT NOT NULL,
    index_node_hash TEXT NOT NULL,
    hit_count INTEGER NOT NULL DEFAULT 0,
    enabled BOOLEAN NOT NULL DEFAULT 1,
    disabled_at TEXT,
    disabled_by BLOB,
    status TEXT NOT NULL DEFAULT 'completed',
    created_by BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by BLOB,
    indexing_at TEXT,
    completed_at TEXT,
    error TEXT,
    -- Re-delivered indexing replaces a document's segments; it can never add a second copy.
    CONSTRAINT document_segments_position_key UNIQUE (document_id, position)
);
CREATE INDEX document_segments_dataset_idx ON document_segments (dataset_id);

CREATE TABLE segment_keywords (
    dataset_id BLOB NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    keyword TEXT NOT NULL,
    segment_id BLOB NOT NULL REFERENCES document_segments (id) ON DELETE CASCADE,
    PRIMARY KEY (dataset_id, keyword, segment_id)
);
CREATE INDEX segment_keywords_segment_idx ON segment_keywords (segment_id);
