-- The outbox (issue 14): see migrations/postgres/0006_events.sql. SQLite
-- runs one write transaction at a time, so the counter orders saves by
-- itself; times are microseconds since the epoch as elsewhere here.
CREATE TABLE event_counters (
    partner TEXT PRIMARY KEY,
    last_sequence INTEGER NOT NULL,
    published_sequence INTEGER NOT NULL DEFAULT 0,
    relay_owner TEXT,
    relay_lease_until INTEGER
);

CREATE TABLE events (
    partner TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    payload BLOB NOT NULL,
    create_time INTEGER NOT NULL,
    publish_time INTEGER,
    PRIMARY KEY (partner, sequence)
);

CREATE INDEX event_counters_pending ON event_counters (partner)
    WHERE published_sequence < last_sequence;

CREATE INDEX events_published ON events (publish_time) WHERE publish_time IS NOT NULL;
