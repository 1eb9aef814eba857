-- The job queue: the SQLite schema of migrations/sqlite/0005_jobs.sql for
-- PostgreSQL (see server/storage/jobs.rs for its contract). Times are Unix
-- milliseconds, as in SQLite, so both stores compare and round them alike;
-- the payload is JSON text, given back as posted. Names are compared byte
-- for byte (COLLATE "C"), as 0002 explains.
CREATE TABLE jobs (
    id               BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            TEXT COLLATE "C" NOT NULL,
    kind             TEXT COLLATE "C" NOT NULL,
    payload          TEXT    NOT NULL,
    priority         INTEGER NOT NULL,
    status           TEXT COLLATE "C" NOT NULL, -- pending|running|retrying|done|dead
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    run_at           BIGINT  NOT NULL,
    lease_expires_at BIGINT,
    -- A new token for every lease: a finish counts only under the token
    -- of the lease that still holds the job.
    lease_token      BIGINT  NOT NULL DEFAULT 0,
    last_error       TEXT,
    correlation_id   TEXT,
    tenant_id        TEXT COLLATE "C",
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL
);

-- Waiting jobs in lease order, and running jobs by lease expiry: the two
-- halves of "due", each read by an index scan of its own.
CREATE INDEX jobs_waiting ON jobs (queue, priority DESC, run_at, id)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX jobs_leased ON jobs (queue, lease_expires_at)
    WHERE status = 'running';
-- Purges by status and age, depth by status.
CREATE INDEX jobs_status ON jobs (status, updated_at);

-- Finished runs per minute, tenant ('' for none) and outcome (done,
-- retried, dead), counted in the statement that records them: the
-- queue's rates, exact across nodes. Keyed by time first, so expiry
-- deletes a range at the left edge.
CREATE TABLE job_minutes (
    minute    BIGINT NOT NULL,
    tenant_id TEXT COLLATE "C" NOT NULL,
    outcome   TEXT COLLATE "C" NOT NULL,
    n         BIGINT NOT NULL,
    PRIMARY KEY (minute, tenant_id, outcome)
);
