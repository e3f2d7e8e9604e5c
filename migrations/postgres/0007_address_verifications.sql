-- Whether a partner's mailboxes are known to reach someone (issue 14): per
-- partner and mailbox (`email_key`, the comparison key portal users use),
-- when it was last confirmed and its outstanding challenge. Only the
-- challenge's SHA-256 is kept; the challenge itself travels once, in its
-- `verification.requested` event. A confirmation clears the challenge (it
-- is single-use); a new challenge replaces the outstanding one.
CREATE TABLE address_verifications (
    partner TEXT NOT NULL,
    email_key TEXT NOT NULL,
    email TEXT NOT NULL,
    verify_time TIMESTAMPTZ,
    challenge_hash BYTEA,
    challenge_create_time TIMESTAMPTZ,
    challenge_expire_time TIMESTAMPTZ,
    PRIMARY KEY (partner, email_key)
);

CREATE UNIQUE INDEX address_verifications_challenge
    ON address_verifications (challenge_hash) WHERE challenge_hash IS NOT NULL;
