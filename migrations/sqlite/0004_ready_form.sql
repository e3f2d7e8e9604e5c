-- The ready form of each contact info: its protobuf ContactInfo as GetContacts
-- sends it (src/wire/ready.rs), written with every save so that a read is one
-- primary-key lookup with nothing to parse or encode. `ready_revision` is the
-- revision it was written for: a row saved by a release that does not know
-- these columns keeps an older one, and readers then fall back to `fields`.
-- `partner-contacts migrate` fills both for the rows that lack them.
ALTER TABLE contact_info ADD COLUMN ready BLOB;
ALTER TABLE contact_info ADD COLUMN ready_revision INTEGER;
