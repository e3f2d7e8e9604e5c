//! The outbox on SQLite: a change's events numbered and written in its
//! transaction, read back, and leased to the relay. SQLite is one process's
//! database, so leases only ever meet this process's own relay; they are
//! kept anyway so that both backends behave alike.
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{SqliteConnection, SqlitePool};

use super::{from_micros, parse_uuid};
use crate::domain::{PartnerId, now_micros};
use crate::error::Error;
use crate::store::classify::to_error;
use crate::store::outbox::{EventRows, StoredEvent, leased};

fn lease_end(lease: Duration) -> i64 {
    let micros = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
    now_micros().timestamp_micros().saturating_add(micros)
}

/// Numbers `events` after the partner's last and writes them, in the
/// caller's transaction (which holds SQLite's write lock: numbers cannot race).
pub(super) async fn write(
    conn: &mut SqliteConnection,
    partner: &PartnerId,
    events: &EventRows,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let (last,): (i64,) = sqlx::query_as(
        "INSERT INTO event_counters (partner, last_sequence) VALUES (?1, ?2)
         ON CONFLICT (partner) DO UPDATE SET last_sequence = last_sequence + excluded.last_sequence
         RETURNING last_sequence",
    )
    .bind(partner.as_str())
    .bind(events.count())
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| to_error(&e, "number events"))?;
    let first = last - events.count() + 1;
    for (i, ((id, kind), payload)) in events
        .ids
        .iter()
        .zip(&events.types)
        .zip(&events.payloads)
        .enumerate()
    {
        sqlx::query(
            "INSERT INTO events (partner, sequence, id, type, payload, create_time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(partner.as_str())
        .bind(first + i64::try_from(i).unwrap_or(i64::MAX))
        .bind(id.hyphenated().to_string())
        .bind(*kind)
        .bind(payload.as_slice())
        .bind(at.timestamp_micros())
        .execute(&mut *conn)
        .await
        .map_err(|e| to_error(&e, "write event"))?;
    }
    Ok(())
}

pub(super) async fn list(
    pool: &SqlitePool,
    partner: &PartnerId,
    after: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>, Error> {
    let rows: Vec<(i64, String, String, Vec<u8>)> = sqlx::query_as(
        "SELECT sequence, id, type, payload FROM events
         WHERE partner = ?1 AND sequence > ?2 ORDER BY sequence LIMIT ?3",
    )
    .bind(partner.as_str())
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(|e| to_error(&e, "list events"))?;
    rows.into_iter()
        .map(|(sequence, id, kind, payload)| {
            Ok(StoredEvent::from_row(
                sequence,
                parse_uuid(&id)?,
                kind,
                &payload,
            ))
        })
        .collect()
}

pub(super) async fn lease(
    conn: &mut SqliteConnection,
    owner: &str,
    lease: Duration,
    limit: usize,
) -> Result<Vec<(PartnerId, i64)>, Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "UPDATE event_counters SET relay_owner = ?1, relay_lease_until = ?2
         WHERE partner IN (
             SELECT partner FROM event_counters
             WHERE published_sequence < last_sequence
               AND (relay_lease_until IS NULL OR relay_lease_until < ?3 OR relay_owner = ?1)
             ORDER BY relay_lease_until NULLS FIRST LIMIT ?4)
         RETURNING partner, published_sequence",
    )
    .bind(owner)
    .bind(lease_end(lease))
    .bind(now_micros().timestamp_micros())
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(conn)
    .await
    .map_err(|e| to_error(&e, "lease event partners"))?;
    leased(rows)
}

pub(super) async fn mark_published(
    conn: &mut SqliteConnection,
    partner: &PartnerId,
    owner: &str,
    through: i64,
    lease: Duration,
) -> Result<bool, Error> {
    let held = sqlx::query(
        "UPDATE event_counters
         SET published_sequence = max(published_sequence, ?3), relay_lease_until = ?4
         WHERE partner = ?1 AND relay_owner = ?2",
    )
    .bind(partner.as_str())
    .bind(owner)
    .bind(through)
    .bind(lease_end(lease))
    .execute(&mut *conn)
    .await
    .map_err(|e| to_error(&e, "mark events published"))?
    .rows_affected()
        == 1;
    if held {
        sqlx::query(
            "UPDATE events SET publish_time = ?3
             WHERE partner = ?1 AND sequence <= ?2 AND publish_time IS NULL",
        )
        .bind(partner.as_str())
        .bind(through)
        .bind(now_micros().timestamp_micros())
        .execute(&mut *conn)
        .await
        .map_err(|e| to_error(&e, "mark events published"))?;
    }
    Ok(held)
}

pub(super) async fn release(
    pool: &SqlitePool,
    partner: &PartnerId,
    owner: &str,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE event_counters SET relay_owner = NULL, relay_lease_until = NULL
         WHERE partner = ?1 AND relay_owner = ?2",
    )
    .bind(partner.as_str())
    .bind(owner)
    .execute(pool)
    .await
    .map(drop)
    .map_err(|e| to_error(&e, "release event partner"))
}

pub(super) async fn oldest_unpublished(pool: &SqlitePool) -> Result<Option<DateTime<Utc>>, Error> {
    let (oldest,): (Option<i64>,) = sqlx::query_as(
        "SELECT min(e.create_time) FROM event_counters c
         JOIN events e ON e.partner = c.partner AND e.sequence = c.published_sequence + 1
         WHERE c.published_sequence < c.last_sequence",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| to_error(&e, "oldest unpublished event"))?;
    oldest.map(from_micros).transpose()
}

pub(super) async fn prune(pool: &SqlitePool, before: DateTime<Utc>) -> Result<u64, Error> {
    sqlx::query("DELETE FROM events WHERE publish_time < ?1")
        .bind(before.timestamp_micros())
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(|e| to_error(&e, "prune events"))
}
