-- Knowledge bases (datasets) and the API keys that reach them through /v1, shaped like
-- Dify's tables. API keys are stored as SHA-256 hashes, not as Dify stores them (plain):
-- the full key is shown once, when it is created.

CREATE TABLE api_tokens (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    type TEXT NOT NULL CHECK (type IN ('dataset')),
    token_hash TEXT NOT NULL,
    -- The key's first and last characters, for lists ("dataset-ab…yz").
    token_hint TEXT NOT NULL,
    last_used_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX api_tokens_token_hash_key ON api_tokens (token_hash);
CREATE INDEX api_tokens_tenant_type_idx ON api_tokens (tenant_id, type);

CREATE TABLE datasets (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    provider TEXT NOT NULL DEFAULT 'vendor',
    permission TEXT NOT NULL DEFAULT 'only_me'
        CHECK (permission IN ('only_me', 'all_team_members', 'partial_members')),
    data_source_type TEXT,
    indexing_technique TEXT CHECK (indexing_technique IN ('high_quality', 'economy')),
    -- JSON: Dify's retrieval_model dict.
    retrieval_model TEXT,
    embedding_model TEXT,
    embedding_model_provider TEXT,
    doc_form TEXT,
    enable_api BOOLEAN NOT NULL DEFAULT TRUE,
    built_in_field_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_by UUID NOT NULL,
    updated_by UUID,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX datasets_tenant_name_key ON datasets (tenant_id, name);
CREATE INDEX datasets_tenant_created_idx ON datasets (tenant_id, created_at DESC);
