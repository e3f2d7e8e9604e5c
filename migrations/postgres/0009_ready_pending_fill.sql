-- The rows a release before 0008 left without a current ready form: the
-- last walk of the whole table. A migration of its own, after the trigger's
-- (0008), so that the trigger is already recording while this walks (a save
-- by an older replica mid-rollout is not missed between the two), and so
-- that the walk, which takes seconds on a large table, does not hold the
-- trigger's lock, which blocks saves until its migration commits.
INSERT INTO ready_pending (partner, environment)
SELECT partner, environment
FROM contact_info
WHERE ready_revision IS DISTINCT FROM revision
ON CONFLICT DO NOTHING;
