//! Address verification on SQLite: see `postgres/verify.rs`.
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::from_micros;
use crate::domain::{PartnerId, PartnerVerifications, VerificationFacts};
use crate::error::Error;
use crate::store::NewChallenge;
use crate::store::classify::to_error;

pub(super) async fn facts(
    conn: &mut SqliteConnection,
    partner: &PartnerId,
) -> Result<PartnerVerifications, Error> {
    let rows: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT email_key, verify_time, challenge_expire_time FROM address_verifications
         WHERE partner = ?1 ORDER BY email_key",
    )
    .bind(partner.as_str())
    .fetch_all(conn)
    .await
    .map_err(|e| to_error(&e, "read address verifications"))?;
    rows.into_iter()
        .map(|(key, verified, expires)| {
            Ok(VerificationFacts {
                key,
                verify_time: verified.map(from_micros).transpose()?,
                challenge_expire_time: expires.map(from_micros).transpose()?,
            })
        })
        .collect::<Result<_, Error>>()
        .map(PartnerVerifications)
}

/// In the caller's write transaction (the events go with it).
pub(super) async fn record(
    conn: &mut SqliteConnection,
    partner: &PartnerId,
    challenges: &[NewChallenge],
) -> Result<(), Error> {
    for c in challenges {
        sqlx::query(
            "INSERT INTO address_verifications
                 (partner, email_key, email, challenge_hash, challenge_create_time,
                  challenge_expire_time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (partner, email_key) DO UPDATE SET
                 email = excluded.email, challenge_hash = excluded.challenge_hash,
                 challenge_create_time = excluded.challenge_create_time,
                 challenge_expire_time = excluded.challenge_expire_time",
        )
        .bind(partner.as_str())
        .bind(c.email.comparison_key())
        .bind(c.email.as_str())
        .bind(c.hash.as_slice())
        .bind(c.create_time.timestamp_micros())
        .bind(c.expire_time.timestamp_micros())
        .execute(&mut *conn)
        .await
        .map_err(|e| to_error(&e, "record challenge"))?;
    }
    Ok(())
}

pub(super) async fn confirm(
    conn: &mut SqliteConnection,
    partner: &PartnerId,
    hash: &[u8; 32],
    now: DateTime<Utc>,
) -> Result<Option<(String, VerificationFacts)>, Error> {
    let row: Option<(String, String)> = sqlx::query_as(
        "UPDATE address_verifications
         SET verify_time = ?3, challenge_hash = NULL, challenge_expire_time = NULL
         WHERE partner = ?1 AND challenge_hash = ?2 AND challenge_expire_time > ?3
         RETURNING email_key, email",
    )
    .bind(partner.as_str())
    .bind(hash.as_slice())
    .bind(now.timestamp_micros())
    .fetch_optional(conn)
    .await
    .map_err(|e| to_error(&e, "confirm challenge"))?;
    Ok(row.map(|(key, email)| (email, VerificationFacts::confirmed(key, now))))
}
