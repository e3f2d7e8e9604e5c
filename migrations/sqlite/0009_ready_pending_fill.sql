-- The rows a release before 0008 left without a current ready form: the
-- last walk of the whole table (after the triggers, as on PostgreSQL).
INSERT OR IGNORE INTO ready_pending (partner, environment)
SELECT partner, environment
FROM contact_info
WHERE ready_revision IS NOT revision;
