-- Conversation assignments and transfers: the SQLite schema of
-- migrations/sqlite/0007_conversations.sql for PostgreSQL (see
-- server/storage/conversations.rs for the contract). Times are Unix
-- milliseconds; names compare byte for byte (COLLATE "C"), as 0002
-- explains.

-- A conversation's current assignee, from its first transfer on; the
-- row every node's transfer locks (FOR UPDATE) before reading it.
CREATE TABLE conversation_assignments (
    tenant_id       TEXT COLLATE "C" NOT NULL,
    conversation_id TEXT COLLATE "C" NOT NULL,
    assignee        TEXT COLLATE "C" NOT NULL,
    assigned_at     BIGINT NOT NULL,
    transfers       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
);

-- Every transfer, numbered per conversation in commit order.
CREATE TABLE conversation_transfers (
    tenant_id       TEXT COLLATE "C" NOT NULL,
    conversation_id TEXT COLLATE "C" NOT NULL,
    seq             BIGINT NOT NULL,
    from_user       TEXT COLLATE "C",
    to_user         TEXT COLLATE "C" NOT NULL,
    note            TEXT,
    by_user         TEXT NOT NULL,
    at              BIGINT NOT NULL,
    event_id        BIGINT,
    PRIMARY KEY (tenant_id, conversation_id, seq)
);
