//! The outbox on PostgreSQL: numbering and writing a change's events inside
//! its transaction, and reading them back.
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use crate::domain::PartnerId;
use crate::error::Error;
use crate::store::classify::to_error;
use crate::store::outbox::{EventRows, StoredEvent};

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
pub(super) async fn write_events(
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

pub(super) async fn list_events(
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
