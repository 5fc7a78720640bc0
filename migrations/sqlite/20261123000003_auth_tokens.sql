-- One-time tokens (forgot-password codes) and rate-limit counters when no Redis is
-- configured; with Redis they live there under Dify's key names.
CREATE TABLE auth_kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX auth_kv_expires_at_idx ON auth_kv (expires_at);
