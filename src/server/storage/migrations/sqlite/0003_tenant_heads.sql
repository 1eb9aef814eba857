-- Each tenant's newest event id, kept in the append's transaction: every
-- new event records its tenant's previous id, so a node that receives a
-- tenant's events out of order (several nodes publishing) tells a gap from
-- the start of the stream, and a node can see that a tenant moved on
-- without reading its events.
CREATE TABLE tenant_heads (
    tenant_id TEXT    PRIMARY KEY,
    last_id   INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO tenant_heads (tenant_id, last_id)
    SELECT tenant_id, MAX(id) FROM events GROUP BY tenant_id;
