-- The rows whose ready form (0004) is missing or stale, kept by the database
-- itself, so that `backfill_ready` (run by `migrate` and, in the background,
-- at every server start) reads these rows instead of walking the whole of
-- `contact_info` to find that none needs it: at 1 000 000 partners that walk
-- took 1.0-1.9 s of PostgreSQL on every start, and in production it would
-- read the table from disk on every replica of every rolling deploy.
--
-- A trigger, not the application, records them: the saves that leave a form
-- stale are made by releases before the ready form (an older replica in
-- the middle of a rollout), which write `fields` and `revision` and cannot be
-- taught to write here. This release's saves write a current form, so the
-- trigger's WHEN is false for them and costs one comparison.
CREATE TABLE ready_pending (
    partner     TEXT NOT NULL,
    environment TEXT NOT NULL,
    PRIMARY KEY (partner, environment)
);

CREATE FUNCTION contact_info_ready_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ready_pending (partner, environment)
    VALUES (NEW.partner, NEW.environment)
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER contact_info_ready_pending
AFTER INSERT OR UPDATE ON contact_info
FOR EACH ROW
WHEN (NEW.ready_revision IS DISTINCT FROM NEW.revision)
EXECUTE FUNCTION contact_info_ready_pending();
