-- Knowledge bases (datasets) and the API keys that reach them through /v1 (see the
-- PostgreSQL twin). Ids are 16-byte blobs, timestamps RFC 3339 text, booleans 0/1.

CREATE TABLE api_tokens (
    id BLOB PRIMARY KEY,
    tenant_id BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('dataset')),
    token_hash TEXT NOT NULL,
    token_hint TEXT NOT NULL,
    last_used_at TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash);
CREATE INDEX api_tokens_tenant_type_idx ON api_tokens (tenant_id, type);

CREATE TABLE datasets (
    id BLOB PRIMARY KEY,
    tenant_id BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    provider TEXT NOT NULL DEFAULT 'vendor',
    permission TEXT NOT NULL DEFAULT 'only_me'
        CHECK (permission IN ('only_me', 'all_team_members', 'partial_members')),
    data_source_type TEXT,
    indexing_technique TEXT CHECK (indexing_technique IN ('high_quality', 'economy')),
    retrieval_model TEXT,
    embedding_model TEXT,
    embedding_model_provider TEXT,
    doc_form TEXT,
    enable_api BOOLEAN NOT NULL DEFAULT 1,
    built_in_field_enabled BOOLEAN NOT NULL DEFAULT 0,
    created_by BLOB NOT NULL,
    updated_by BLOB,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX datasets_tenant_name_key ON datasets (tenant_id, name);
CREATE INDEX datasets_tenant_created_idx ON datasets (tenant_id, created_at DESC);
