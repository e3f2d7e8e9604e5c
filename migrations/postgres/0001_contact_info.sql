-- One row per partner and environment; the editable fields as one JSON document
-- (always read and written whole).
CREATE TABLE contact_info (
    partner      TEXT        NOT NULL,
    environment  TEXT        NOT NULL CHECK (environment IN ('sandbox', 'production')),
    revision     BIGINT      NOT NULL CHECK (revision > 0),
    etag         TEXT        NOT NULL,
    fields       JSONB       NOT NULL,
    create_time  TIMESTAMPTZ NOT NULL,
    update_time  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (partner, environment)
);

-- UpdateContacts request ids, so that retries save once. `response` is NULL only
-- inside the transaction that claims the id.
CREATE TABLE update_requests (
    request_id   UUID        PRIMARY KEY,
    fingerprint  BYTEA       NOT NULL,
    response     JSONB,
    create_time  TIMESTAMPTZ NOT NULL
);

CREATE INDEX update_requests_create_time ON update_requests (create_time);
