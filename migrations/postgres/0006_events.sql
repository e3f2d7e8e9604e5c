-- The outbox (issue 14): each event is written in the transaction of the
-- change it reports, so a committed change always has its events and a
-- rolled-back one never. `payload` is the proto `Event` without its
-- `sequence` (src/wire/event.rs; versioned as the proto says).
--
-- Events are numbered per partner in commit order: a save takes the
-- partner's counter row (an upsert, so its row lock orders concurrent saves
-- of the same partner) and numbers its events after the last one. The relay
-- publishes each partner's events in that order and records how far it got
-- in `published_sequence`; `relay_owner`/`relay_lease_until` say which
-- replica is publishing the partner now (a lease that another replica takes
-- over when it expires, so one that died does not stop delivery).
CREATE TABLE event_counters (
    partner TEXT PRIMARY KEY,
    last_sequence BIGINT NOT NULL,
    published_sequence BIGINT NOT NULL DEFAULT 0,
    relay_owner TEXT,
    relay_lease_until TIMESTAMPTZ
);

CREATE TABLE events (
    partner TEXT NOT NULL,
    sequence BIGINT NOT NULL,
    id UUID NOT NULL UNIQUE,
    type TEXT NOT NULL,
    payload BYTEA NOT NULL,
    create_time TIMESTAMPTZ NOT NULL,
    publish_time TIMESTAMPTZ,
    PRIMARY KEY (partner, sequence)
);

-- Partners with events still to publish, found without reading the rest.
CREATE INDEX event_counters_pending ON event_counters (partner)
    WHERE published_sequence < last_sequence;

-- Pruning published events after the retention period.
CREATE INDEX events_published ON events (publish_time) WHERE publish_time IS NOT NULL;
