-- Accounts, workspaces (tenants) and membership, shaped like Dify's tables so that rows
-- copied from a Dify database keep working (including Dify's PBKDF2 password hashes).

CREATE TABLE accounts (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    -- Always stored lower-cased; the unique index below makes duplicates a clean error.
    email TEXT NOT NULL CHECK (email = lower(email)),
    -- argon2id PHC string, or Dify's base64(hex(PBKDF2-SHA256)) until the next login.
    password TEXT,
    -- Only set for Dify-format hashes.
    password_salt TEXT,
    avatar TEXT,
    interface_language TEXT NOT NULL DEFAULT 'en-US',
    interface_theme TEXT NOT NULL DEFAULT 'light',
    timezone TEXT NOT NULL DEFAULT 'UTC',
    status TEXT NOT NULL DEFAULT 'active'
        CHECK (status IN ('pending', 'uninitialized', 'active', 'banned', 'closed')),
    last_login_at TIMESTAMPTZ,
    last_login_ip TEXT,
    last_active_at TIMESTAMPTZ NOT NULL,
    initialized_at TIMESTAMPTZ,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX accounts_email_key ON accounts (email);

CREATE TABLE tenants (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    encrypt_public_key TEXT,
    plan TEXT NOT NULL DEFAULT 'basic',
    status TEXT NOT NULL DEFAULT 'normal' CHECK (status IN ('normal', 'archive')),
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE tenant_account_joins (
    id UUID PRIMARY KEY,
    tenant_id UUID NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    account_id UUID NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'editor', 'normal', 'dataset_operator')),
    current BOOLEAN NOT NULL DEFAULT FALSE,
    invited_by UUID REFERENCES accounts (id) ON DELETE SET NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT tenant_account_joins_unique UNIQUE (tenant_id, account_id)
);
CREATE INDEX tenant_account_joins_account_id_idx ON tenant_account_joins (account_id);

-- One row once first-run setup has completed.
CREATE TABLE dify_setups (
    version TEXT PRIMARY KEY,
    setup_at TIMESTAMPTZ NOT NULL
);

-- Refresh tokens and login failure counters when no Redis is configured (standalone).
-- With Redis they live there under Dify's key names instead.
CREATE TABLE auth_refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    account_id UUID NOT NULL UNIQUE REFERENCES accounts (id) ON DELETE CASCADE,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE auth_login_failures (
    email TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
