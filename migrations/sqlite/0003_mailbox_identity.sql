-- Portal users' email keys move to the mailbox identity (src/domain/contact/email.rs):
-- the IDNA ASCII domain and ASCII-only case folding, instead of Unicode
-- lower-casing, under which KELVIN SIGN K passed for k. The keys themselves are
-- recomputed by the release after this migration (the rules live in Rust);
-- email_key_scheme says which rule wrote a row's key (1: Unicode lower-casing).
-- SQLite cannot drop a table's UNIQUE constraint, so the table is rebuilt.
CREATE TABLE portal_users_v3 (
    partner             TEXT    NOT NULL,
    id                  TEXT    NOT NULL,
    email               TEXT    NOT NULL,
    email_key           TEXT    NOT NULL,
    role                TEXT    NOT NULL CHECK (role IN ('ADMINISTRATOR', 'EDITOR', 'READ_ONLY')),
    create_time         INTEGER NOT NULL,
    update_time         INTEGER NOT NULL,
    email_key_scheme    INTEGER NOT NULL DEFAULT 1,
    -- Set when the new key shows this user's address to be the same mailbox as
    -- an older user's of the same partner: both are kept and reported, never
    -- merged. NULL for every other user.
    shares_mailbox_with TEXT,
    PRIMARY KEY (partner, id)
) STRICT;

INSERT INTO portal_users_v3 (partner, id, email, email_key, role, create_time, update_time)
SELECT partner, id, email, email_key, role, create_time, update_time FROM portal_users;

DROP TABLE portal_users;
ALTER TABLE portal_users_v3 RENAME TO portal_users;

CREATE INDEX portal_users_order ON portal_users (partner, create_time, id);
-- One unmarked user per mailbox and partner; marked users keep theirs.
CREATE UNIQUE INDEX portal_users_mailbox
    ON portal_users (partner, email_key) WHERE shares_mailbox_with IS NULL;
-- Finds the rows whose key is still to be recomputed.
CREATE INDEX portal_users_old_keys ON portal_users (partner) WHERE email_key_scheme < 2;
