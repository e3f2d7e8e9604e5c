//! The outbox on PostgreSQL: numbering and writing a change's events inside
//! its transaction, and reading them back.
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::domain::PartnerId;
use crate::error::Error;
use crate::store::classify::to_error;
use crate::store::outbox::{EventRows, StoredEvent, leased};

/// Two CTEs, to run inside a statement whose CTE `gate` has one row when the
/// change happened and none when it did not: they take the
/// partner's counter (its row lock orders concurrent changes of the same
/// partner, so numbers follow commit order) and write the events numbered
/// after its last. With no events, nothing is written and no lock taken.
/// `$p`, `$ids`, `$types`, `$payloads`, `$at` are the parameters' numbers.
pub(super) fn events_ctes(gate: &str, p: u8, ids: u8, types: u8, payloads: u8, at: u8) -> String {
    format!(
        "counted AS (
             INSERT INTO event_counters (partner, last_sequence)
             SELECT ${p}, cardinality(${ids}::uuid[]) FROM {gate}
             WHERE cardinality(${ids}::uuid[]) > 0
             ON CONFLICT (partner) DO UPDATE
                 SET last_sequence = event_counters.last_sequence + excluded.last_sequence
             RETURNING last_sequence
         ),
         evented AS (
             INSERT INTO events (partner, sequence, id, type, payload, create_time)
             SELECT ${p}, counted.last_sequence - cardinality(${ids}::uuid[]) + e.ord,
                    e.id, e.type, e.payload, ${at}
             FROM counted,
                  unnest(${ids}::uuid[], ${types}::text[], ${payloads}::bytea[])
                      WITH ORDINALITY AS e(id, type, payload, ord)
         )"
    )
}

/// Writes `events` of a change already made in the caller's transaction.
pub(super) async fn write(
    conn: &mut PgConnection,
    partner: &PartnerId,
    events: &EventRows,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    if events.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "WITH one AS (SELECT 1), {} SELECT count(*) FROM counted",
        events_ctes("one", 1, 2, 3, 4, 5)
    );
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
        .bind(partner.as_str())
        .bind(&events.ids)
        .bind(&events.types)
        .bind(&events.payloads)
        .bind(at)
        .fetch_one(conn)
        .await
        .map(drop)
        .map_err(|e| to_error(&e, "write events"))
}

pub(super) async fn list(
    pool: &PgPool,
    partner: &PartnerId,
    after: i64,
    limit: usize,
) -> Result<Vec<StoredEvent>, Error> {
    let rows: Vec<(i64, uuid::Uuid, String, Vec<u8>)> = sqlx::query_as(
        "SELECT sequence, id, type, payload FROM events
         WHERE partner = $1 AND sequence > $2 ORDER BY sequence LIMIT $3",
    )
    .bind(partner.as_str())
    .bind(after)
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(|e| to_error(&e, "list events"))?;
    Ok(rows
        .into_iter()
        .map(|(sequence, id, kind, payload)| StoredEvent::from_row(sequence, id, kind, &payload))
        .collect())
}

fn seconds(lease: Duration) -> f64 {
    lease.as_secs_f64()
}

/// `FOR UPDATE SKIP LOCKED`: replicas leasing at once take different
/// partners, and a partner whose counter a save holds right now is left for
/// the next round rather than waited for.
pub(super) async fn lease(
    pool: &PgPool,
    owner: &str,
    lease: Duration,
    limit: usize,
) -> Result<Vec<(PartnerId, i64)>, Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "UPDATE event_counters
         SET relay_owner = $1, relay_lease_until = now() + make_interval(secs => $2)
         WHERE partner IN (
             SELECT partner FROM event_counters
             WHERE published_sequence < last_sequence
               AND (relay_lease_until IS NULL OR relay_lease_until < now() OR relay_owner = $1)
             ORDER BY relay_lease_until NULLS FIRST LIMIT $3
             FOR UPDATE SKIP LOCKED)
         RETURNING partner, published_sequence",
    )
    .bind(owner)
    .bind(seconds(lease))
    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await
    .map_err(|e| to_error(&e, "lease event partners"))?;
    leased(rows)
}

pub(super) async fn mark_published(
    pool: &PgPool,
    partner: &PartnerId,
    owner: &str,
    through: i64,
    lease: Duration,
) -> Result<bool, Error> {
    let held: i64 = sqlx::query_scalar(
        "WITH held AS (
             UPDATE event_counters
             SET published_sequence = GREATEST(published_sequence, $3),
                 relay_lease_until = now() + make_interval(secs => $4)
             WHERE partner = $1 AND relay_owner = $2
             RETURNING 1
         ),
         marked AS (
             UPDATE events SET publish_time = now()
             WHERE partner = $1 AND sequence <= $3 AND publish_time IS NULL
               AND EXISTS (SELECT 1 FROM held)
         )
         SELECT count(*) FROM held",
    )
    .bind(partner.as_str())
    .bind(owner)
    .bind(through)
    .bind(seconds(lease))
    .fetch_one(pool)
    .await
    .map_err(|e| to_error(&e, "mark events published"))?;
    Ok(held == 1)
}

pub(super) async fn release(pool: &PgPool, partner: &PartnerId, owner: &str) -> Result<(), Error> {
    sqlx::query(
        "UPDATE event_counters SET relay_owner = NULL, relay_lease_until = NULL
         WHERE partner = $1 AND relay_owner = $2",
    )
    .bind(partner.as_str())
    .bind(owner)
    .execute(pool)
    .await
    .map(drop)
    .map_err(|e| to_error(&e, "release event partner"))
}

pub(super) async fn oldest_unpublished(pool: &PgPool) -> Result<Option<DateTime<Utc>>, Error> {
    sqlx::query_scalar(
        "SELECT min(e.create_time) FROM event_counters c
         JOIN events e ON e.partner = c.partner AND e.sequence = c.published_sequence + 1
         WHERE c.published_sequence < c.last_sequence",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| to_error(&e, "oldest unpublished event"))
}

/// In batches, so that pruning a long backlog holds no lock for long.
pub(super) async fn prune(pool: &PgPool, before: DateTime<Utc>) -> Result<u64, Error> {
    let mut pruned = 0;
    loop {
        let done = sqlx::query(
            "DELETE FROM events WHERE (partner, sequence) IN (
                 SELECT partner, sequence FROM events WHERE publish_time < $1 LIMIT 5000)",
        )
        .bind(before)
        .execute(pool)
        .await
        .map_err(|e| to_error(&e, "prune events"))?
        .rows_affected();
        pruned += done;
        if done < 5000 {
            return Ok(pruned);
        }
    }
}
