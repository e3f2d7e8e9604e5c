-- See migrations/postgres/0007_address_verifications.sql; times are
-- microseconds since the epoch as elsewhere here.
CREATE TABLE address_verifications (
    partner TEXT NOT NULL,
    email_key TEXT NOT NULL,
    email TEXT NOT NULL,
    verify_time INTEGER,
    challenge_hash BLOB,
    challenge_create_time INTEGER,
    challenge_expire_time INTEGER,
    PRIMARY KEY (partner, email_key)
);

CREATE UNIQUE INDEX address_verifications_challenge
    ON address_verifications (challenge_hash) WHERE challenge_hash IS NOT NULL;
