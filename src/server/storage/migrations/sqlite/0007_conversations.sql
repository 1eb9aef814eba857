-- Conversation assignments and transfers (see
-- server/storage/conversations.rs for the contract). Times are Unix
-- milliseconds, as in the queue and alerting.

-- A conversation's current assignee, from its first transfer on.
-- `transfers` is how many it had: the next transfer's `seq` is one more.
CREATE TABLE conversation_assignments (
    tenant_id       TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    assignee        TEXT    NOT NULL,
    assigned_at     INTEGER NOT NULL,
    transfers       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, conversation_id)
) WITHOUT ROWID;

-- Every transfer, numbered per conversation in commit order. `event_id`
-- is the ConversationTransferred event's, set once it is stored.
CREATE TABLE conversation_transfers (
    tenant_id       TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    from_user       TEXT,
    to_user         TEXT    NOT NULL,
    note            TEXT,
    by_user         TEXT    NOT NULL,
    at              INTEGER NOT NULL,
    event_id        INTEGER,
    PRIMARY KEY (tenant_id, conversation_id, seq)
) WITHOUT ROWID;
