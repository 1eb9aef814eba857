-- The job queue (see server/storage/jobs.rs for its contract). Times are
-- Unix milliseconds; the payload is JSON text.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    queue            TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    status           TEXT    NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           INTEGER NOT NULL,
    lease_expires_at INTEGER,
    -- A new token for every lease: a finish counts only under the token
    -- of the lease that still holds the job.
    lease_token      INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    correlation_id   TEXT,
    tenant_id        TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);

-- Waiting jobs in lease order, and running jobs by lease expiry: the two
-- halves of "due".
CREATE INDEX jobs_waiting ON jobs (queue, priority DESC, run_at, id)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX jobs_leased ON jobs (queue, lease_expires_at)
    WHERE status = 'running';
-- Purges by status and age, depth by status.
CREATE INDEX jobs_status ON jobs (status, updated_at);

-- Finished runs per minute, tenant ('' for none) and outcome (done,
-- retried, dead), counted in the transaction that records them: the
-- queue's rates, the same from every node.
CREATE TABLE job_minutes (
    minute    INTEGER NOT NULL,
    tenant_id TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (minute, tenant_id, outcome)
) WITHOUT ROWID;
