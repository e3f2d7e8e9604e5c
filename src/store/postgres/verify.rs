//! Address verification on PostgreSQL: challenges recorded with their
//! events in one statement, confirmed in one.
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::events::events_ctes;
use crate::domain::{PartnerId, PartnerVerifications, VerificationFacts};
use crate::error::Error;
use crate::store::NewChallenge;
use crate::store::classify::to_error;
use crate::store::outbox::EventRows;
use crate::store::rows::internal;

/// The partner's facts as one text array (one index probe where three
/// arrays would take three), for statements that read them beside a
/// contact info: `{verify µs|-} {challenge expiry µs|-} {email_key}`, read
/// back by [`parse_facts`]. `$partner` is the SQL naming the partner.
macro_rules! facts_array {
    ($partner:literal) => {
        concat!(
            "ARRAY(SELECT concat_ws(' ',
                     coalesce((extract(epoch FROM v.verify_time) * 1000000)::int8::text, '-'),
                     coalesce((extract(epoch FROM v.challenge_expire_time) * 1000000)::int8::text, '-'),
                     v.email_key)
                   FROM address_verifications v WHERE v.partner = ",
            $partner,
            ")"
        )
    };
}
pub(super) use facts_array;

/// Facts as [`facts_array`] writes them.
pub(super) fn parse_facts(rows: Vec<String>) -> Result<PartnerVerifications, Error> {
    let time = |t: &str| -> Result<Option<DateTime<Utc>>, Error> {
        if t == "-" {
            return Ok(None);
        }
        t.parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .map(Some)
            .ok_or_else(|| internal("a stored verification time is invalid"))
    };
    rows.into_iter()
        .map(|row| {
            let mut parts = row.splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(verified), Some(expires), Some(key)) => Ok(VerificationFacts {
                    key: key.to_owned(),
                    verify_time: time(verified)?,
                    challenge_expire_time: time(expires)?,
                }),
                _ => Err(internal("stored verification facts are malformed")),
            }
        })
        .collect::<Result<_, _>>()
        .map(PartnerVerifications)
}

/// `email_key, verify_time, challenge_expire_time`.
type FactsRow = (String, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

pub(super) async fn facts(
    conn: &mut PgConnection,
    partner: &PartnerId,
) -> Result<PartnerVerifications, Error> {
    let rows: Vec<FactsRow> = sqlx::query_as(
        "SELECT email_key, verify_time, challenge_expire_time FROM address_verifications
         WHERE partner = $1 ORDER BY email_key",
    )
    .bind(partner.as_str())
    .fetch_all(conn)
    .await
    .map_err(|e| to_error(&e, "read address verifications"))?;
    Ok(PartnerVerifications(
        rows.into_iter()
            .map(
                |(key, verify_time, challenge_expire_time)| VerificationFacts {
                    key,
                    verify_time,
                    challenge_expire_time,
                },
            )
            .collect(),
    ))
}

pub(super) async fn record(
    conn: &mut PgConnection,
    partner: &PartnerId,
    challenges: &[NewChallenge],
    events: &EventRows,
) -> Result<(), Error> {
    let Some(first) = challenges.first() else {
        return Ok(());
    };
    let keys: Vec<String> = challenges
        .iter()
        .map(|c| c.email.comparison_key())
        .collect();
    let emails: Vec<&str> = challenges.iter().map(|c| c.email.as_str()).collect();
    let hashes: Vec<&[u8]> = challenges.iter().map(|c| c.hash.as_slice()).collect();
    let sql = format!(
        "WITH one AS (SELECT 1),
         challenged AS (
             INSERT INTO address_verifications
                 (partner, email_key, email, challenge_hash, challenge_create_time,
                  challenge_expire_time)
             SELECT $1, c.key, c.email, c.hash, $5, $6
             FROM unnest($2::text[], $3::text[], $4::bytea[]) AS c(key, email, hash)
             ON CONFLICT (partner, email_key) DO UPDATE SET
                 email = excluded.email, challenge_hash = excluded.challenge_hash,
                 challenge_create_time = excluded.challenge_create_time,
                 challenge_expire_time = excluded.challenge_expire_time
         ),
         {}
         SELECT count(*) FROM counted",
        events_ctes("one", 1, 7, 8, 9, 5)
    );
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .bind(partner.as_str())
        .bind(&keys)
        .bind(&emails)
        .bind(&hashes)
        .bind(first.create_time)
        .bind(first.expire_time)
        .bind(&events.ids)
        .bind(&events.types)
        .bind(&events.payloads)
        .fetch_one(conn)
        .await
        .map(drop)
        .map_err(|e| to_error(&e, "record challenges"))
}

pub(super) async fn confirm(
    conn: &mut PgConnection,
    partner: &PartnerId,
    hash: &[u8; 32],
    now: DateTime<Utc>,
) -> Result<Option<(String, VerificationFacts)>, Error> {
    let row: Option<(String, String)> = sqlx::query_as(
        "UPDATE address_verifications
         SET verify_time = $3, challenge_hash = NULL, challenge_expire_time = NULL
         WHERE partner = $1 AND challenge_hash = $2 AND challenge_expire_time > $3
         RETURNING email_key, email",
    )
    .bind(partner.as_str())
    .bind(hash.as_slice())
    .bind(now)
    .fetch_optional(conn)
    .await
    .map_err(|e| to_error(&e, "confirm challenge"))?;
    Ok(row.map(|(key, email)| (email, VerificationFacts::confirmed(key, now))))
}
