-- One row per partner and environment; the editable fields as one JSON document
-- (always read and written whole). Times are microseconds since the Unix epoch (UTC).
CREATE TABLE contact_info (
    partner      TEXT    NOT NULL,
    environment  TEXT    NOT NULL CHECK (environment IN ('sandbox', 'production')),
    revision     INTEGER NOT NULL CHECK (revision > 0),
    etag         TEXT    NOT NULL,
    fields       TEXT    NOT NULL,
    create_time  INTEGER NOT NULL,
    update_time  INTEGER NOT NULL,
    PRIMARY KEY (partner, environment)
) STRICT;

-- UpdateContacts request ids, so that retries save once.
CREATE TABLE update_requests (
    request_id   TEXT PRIMARY KEY,
    fingerprint  BLOB NOT NULL,
    response     TEXT,
    create_time  INTEGER NOT NULL
) STRICT;

CREATE INDEX update_requests_create_time ON update_requests (create_time);
