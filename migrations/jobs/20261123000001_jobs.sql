-- The embedded job store (its own SQLite file, apart from the metadata database).
-- A queued job is ready once run_at has passed; delayed jobs and retries are queued jobs
-- with a later run_at. Times are Unix milliseconds from the local clock.
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    queue TEXT NOT NULL,
    task TEXT NOT NULL,
    payload BLOB,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX jobs_queued ON jobs (queue, status, run_at, seq);
CREATE INDEX jobs_leases ON jobs (status, lease_until);
CREATE INDEX jobs_finished ON jobs (queue, status, finished_at);

CREATE TABLE job_idempotency (
    key TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
