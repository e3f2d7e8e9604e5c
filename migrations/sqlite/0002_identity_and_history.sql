-- Revision history of contact info: every save, immutable.
-- Times are microseconds since the Unix epoch (UTC).
CREATE TABLE contact_info_revisions (
    partner              TEXT    NOT NULL,
    environment          TEXT    NOT NULL,
    revision             INTEGER NOT NULL,
    actor                TEXT    NOT NULL,
    request_id           TEXT,
    -- Space-separated top-level field names the save changed.
    changed_fields       TEXT    NOT NULL,
    etag                 TEXT    NOT NULL,
    fields               TEXT    NOT NULL,
    resource_create_time INTEGER NOT NULL,
    -- When this revision was saved (the resource's update_time then).
    create_time          INTEGER NOT NULL,
    PRIMARY KEY (partner, environment, revision)
) STRICT;

CREATE INDEX contact_info_revisions_time
    ON contact_info_revisions (partner, environment, create_time);

-- What was saved before history existed becomes its first known revision.
INSERT INTO contact_info_revisions
    (partner, environment, revision, actor, request_id, changed_fields, etag, fields,
     resource_create_time, create_time)
SELECT partner, environment, revision, 'unknown (saved before revision history)', NULL, '',
       etag, fields, create_time, update_time
FROM contact_info;

-- People with access to a partner's portal.
CREATE TABLE portal_users (
    partner     TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    email       TEXT    NOT NULL,
    -- Lower-cased email: addresses are compared case-insensitively.
    email_key   TEXT    NOT NULL,
    role        TEXT    NOT NULL CHECK (role IN ('ADMINISTRATOR', 'EDITOR', 'READ_ONLY')),
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    PRIMARY KEY (partner, id),
    UNIQUE (partner, email_key)
) STRICT;

CREATE INDEX portal_users_order ON portal_users (partner, create_time, id);

-- Every change to portal users, immutable.
CREATE TABLE portal_user_revisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    partner     TEXT    NOT NULL,
    user_id     TEXT    NOT NULL,
    action      TEXT    NOT NULL CHECK (action IN ('GRANT', 'UPDATE_ROLE', 'REVOKE')),
    actor       TEXT    NOT NULL,
    -- The portal user after the change (as it was, for a revoke).
    resource    TEXT    NOT NULL,
    create_time INTEGER NOT NULL
) STRICT;

CREATE INDEX portal_user_revisions_user ON portal_user_revisions (partner, user_id, id);

-- History is append-only, whatever connects to the database.
CREATE TRIGGER contact_info_revisions_no_update BEFORE UPDATE ON contact_info_revisions
BEGIN SELECT RAISE(ABORT, 'revision history is immutable'); END;
CREATE TRIGGER contact_info_revisions_no_delete BEFORE DELETE ON contact_info_revisions
BEGIN SELECT RAISE(ABORT, 'revision history is immutable'); END;
CREATE TRIGGER portal_user_revisions_no_update BEFORE UPDATE ON portal_user_revisions
BEGIN SELECT RAISE(ABORT, 'revision history is immutable'); END;
CREATE TRIGGER portal_user_revisions_no_delete BEFORE DELETE ON portal_user_revisions
BEGIN SELECT RAISE(ABORT, 'revision history is immutable'); END;
