-- The rows whose ready form (0004) is missing or stale, kept by the database
-- itself, so that `backfill_ready` (run by `migrate` and, in the background,
-- at every server start) reads these rows instead of walking the whole of
-- `contact_info` to find that none needs it. Triggers, not the application,
-- record them: the saves that leave a form stale are made by releases before
-- the ready form, which cannot be taught to write here; this release's saves
-- write a current form, so the triggers' WHEN is false for them.
CREATE TABLE ready_pending (
    partner     TEXT NOT NULL,
    environment TEXT NOT NULL,
    PRIMARY KEY (partner, environment)
) WITHOUT ROWID;

CREATE TRIGGER contact_info_ready_pending_insert
AFTER INSERT ON contact_info
FOR EACH ROW
WHEN NEW.ready_revision IS NOT NEW.revision
BEGIN
    INSERT OR IGNORE INTO ready_pending (partner, environment)
    VALUES (NEW.partner, NEW.environment);
END;

CREATE TRIGGER contact_info_ready_pending_update
AFTER UPDATE ON contact_info
FOR EACH ROW
WHEN NEW.ready_revision IS NOT NEW.revision
BEGIN
    INSERT OR IGNORE INTO ready_pending (partner, environment)
    VALUES (NEW.partner, NEW.environment);
END;
