-- Accounts, workspaces (tenants) and membership, shaped like Dify's tables. Ids are UUIDs
-- stored as 16-byte blobs and timestamps as RFC 3339 text, as sqlx encodes them.

CREATE TABLE accounts (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL CHECK (email = lower(email)),
    password TEXT,
    password_salt TEXT,
    avatar TEXT,
    interface_language TEXT NOT NULL DEFAULT 'en-US',
    interface_theme TEXT NOT NULL DEFAULT 'light',
    timezone TEXT NOT NULL DEFAULT 'UTC',
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('pending', 'uninitialized', 'active', 'banned', 'closed')),
    last_login_at TEXT,
    last_login_ip TEXT,
    last_active_at TEXT NOT NULL,
    initialized_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX accounts_email_key ON accounts (email);

CREATE TABLE tenants (
    id BLOB PRIMARY KEY,
    name TEXT NOT NULL,
    encrypt_public_key TEXT,
    plan TEXT NOT NULL DEFAULT 'basic',
    status TEXT NOT NULL DEFAULT 'normal' CHECK (status IN ('normal', 'archive')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE tenant_account_joins (
    id BLOB PRIMARY KEY,
    tenant_id BLOB NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id BLOB NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'normal', 'dataset_operator')),
    current INTEGER NOT NULL DEFAULT 0,
    invited_by BLOB REFERENCES accounts (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CONSTRAINT tenant_account_joins_unique UNIQUE (tenant_id, account_id)
);
CREATE INDEX tenant_account_joins_account_id_idx ON tenant_account_joins (account_id);

CREATE TABLE dify_setups (
    version TEXT PRIMARY KEY,
    setup_at TEXT NOT NULL
);

CREATE TABLE auth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    account_id BLOB NOT NULL UNIQUE REFERENCES accounts (id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
);

CREATE TABLE auth_login_failures (
    email TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    expires_at TEXT NOT NULL
);
