-- offload: no-transaction
-- Keyset pagination of one agent's leads in time order: (agent, created_at, id) is the
-- cursor, and the index covers what a page aggregates, so pages are index-only scans.
-- Built CONCURRENTLY: inserts into a populated `leads` go on while it builds. Databases
-- migrated before 0030 already have it from 0004, so IF NOT EXISTS leaves theirs alone.

-- A build interrupted half-way leaves an INVALID index that IF NOT EXISTS would skip:
-- drop it first, so the build runs again.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE c.relname = 'leads_agent_created_at_id_report' AND NOT i.indisvalid
    ) THEN
        DROP INDEX leads_agent_created_at_id_report;
    END IF;
END
$$;

CREATE INDEX CONCURRENTLY IF NOT EXISTS leads_agent_created_at_id_report
    ON leads (agent_id, created_at, id) INCLUDE (property, source, score);
