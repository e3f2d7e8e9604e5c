-- Portal users' email keys move to the mailbox identity (src/domain/contact/email.rs):
-- the IDNA ASCII domain and ASCII-only case folding, instead of Unicode
-- lower-casing, under which KELVIN SIGN K passed for k. The keys themselves are
-- recomputed by the release after this migration (the rules live in Rust);
-- email_key_scheme says which rule wrote a row's key (1: Unicode lower-casing).
ALTER TABLE portal_users
    ADD COLUMN email_key_scheme SMALLINT NOT NULL DEFAULT 1,
    -- Set when the new key shows this user's address to be the same mailbox as
    -- an older user's of the same partner: both are kept and reported, never
    -- merged. NULL for every other user.
    ADD COLUMN shares_mailbox_with UUID;

-- One unmarked user per mailbox and partner; marked users keep theirs.
ALTER TABLE portal_users DROP CONSTRAINT portal_users_partner_email_key_key;
CREATE UNIQUE INDEX portal_users_mailbox
    ON portal_users (partner, email_key) WHERE shares_mailbox_with IS NULL;

-- Finds the rows whose key is still to be recomputed (after this migration,
-- only those an older release wrote during a rolling deploy).
CREATE INDEX portal_users_old_keys ON portal_users (partner) WHERE email_key_scheme < 2;
