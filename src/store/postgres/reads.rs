//! The read path's point reads on PostgreSQL (a cache miss): gathered into
//! one statement per batch, each worker on a connection of its own.
//!
//! Why not the pool: sqlx's pool sends a Sync and waits for ReadyForQuery
//! when a connection is taken (`test_before_acquire`) and again when it is
//! given back, so one SELECT cost PostgreSQL three round trips. A worker's
//! own connection costs one per batch. A broken connection is replaced at
//! the next batch, and a read that met a connection closed while idle (a
//! database restart, an idle timeout) is retried once on a new one.
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};
use tracing::debug;

use super::PgReadyRow;
use super::verify::facts_array;
use crate::domain::{ContactInfoName, PartnerId};
use crate::error::Error;
use crate::store::classify::to_error;
use crate::store::coalesce::BatchRead;
use crate::store::rows::internal;

/// A point read of the read path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum ReadKey {
    /// The contact info, and whether its partner's portal users' emails
    /// come with it (the gate and ResolveRecipients need them).
    Contacts { name: ContactInfoName, users: bool },
    /// The partner's portal users' emails alone (their cache entry expired
    /// while the contact info's did not).
    Users(PartnerId),
}

/// What a point read found: the row as the read path selects it (`None`:
/// no contact info saved, or not asked), and the users' emails when asked.
#[derive(Debug, Clone)]
pub(super) struct ReadFound {
    pub row: Option<PgReadyRow>,
    pub emails: Option<Vec<String>>,
    /// The partner's verification facts (`facts_array!`), with a row.
    pub verifications: Option<Vec<String>>,
}

/// Keys per statement: bounds one statement's work and its answer's size.
pub(super) const READ_BATCH_MAX: usize = 64;

/// How many read connections a pool of `max_connections` gives up: a
/// quarter (at least one) serve the read path's misses, the rest writes,
/// lists and history. With 16, 4 batches of reads are in flight at once,
/// which measured best on 2 cores (bench/run at 1 000 000 partners).
pub(super) fn read_connections(max_connections: u32) -> u32 {
    (max_connections / 4).max(1)
}

/// Every read of a batch, in one statement: the ready form (the JSON only
/// when that is stale) and, where asked, the partner's portal users' emails.
/// Every key gets a row (the contact columns NULL when there is no contact
/// info, or when only the users were asked).
const BATCH_READ: &str = concat!(
    "SELECT k.i, c.partner, c.environment, c.revision, c.etag,
            CASE WHEN c.ready_revision = c.revision THEN NULL ELSE c.fields::text END,
            c.create_time, c.update_time, c.ready, c.ready_revision,
            CASE WHEN k.users
                 THEN ARRAY(SELECT email FROM portal_users p WHERE p.partner = k.partner) END,
            CASE WHEN c.partner IS NOT NULL THEN ",
    facts_array!("c.partner"),
    " END
     FROM UNNEST($1::text[], $2::text[], $3::bool[]) WITH ORDINALITY
          AS k(partner, environment, users, i)
     LEFT JOIN contact_info c ON c.partner = k.partner AND c.environment = k.environment"
);

/// [`BATCH_READ`] for one key, with the same columns: a miss that arrives
/// alone (many of them when reads are skewed, since the cache holds the
/// popular partners) has no arrays to unnest. pgbench with both statements
/// over 1 000 000 rows: ~10 % more lone reads per second from the same
/// PostgreSQL (the server's own instructions per miss barely change).
const ONE_READ: &str = concat!(
    "SELECT 1::int8, c.partner, c.environment, c.revision, c.etag,
            CASE WHEN c.ready_revision = c.revision THEN NULL ELSE c.fields::text END,
            c.create_time, c.update_time, c.ready, c.ready_revision,
            CASE WHEN $3::bool
                 THEN ARRAY(SELECT email FROM portal_users p WHERE p.partner = $1::text) END,
            CASE WHEN c.partner IS NOT NULL THEN ",
    facts_array!("c.partner"),
    " END
     FROM (SELECT) AS k
     LEFT JOIN contact_info c ON c.partner = $1::text AND c.environment = $2::text"
);

type BatchRow = (
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<Vec<String>>,
    Option<Vec<String>>,
);

fn found(r: BatchRow) -> Result<ReadFound, Error> {
    let row = match (r.1, r.2, r.3, r.4, r.6, r.7) {
        (
            Some(partner),
            Some(environment),
            Some(revision),
            Some(etag),
            Some(create),
            Some(update),
        ) => Some((
            partner,
            environment,
            revision,
            etag,
            r.5,
            create,
            update,
            r.8,
            r.9,
        )),
        (None, None, None, None, None, None) => None,
        _ => return Err(internal("a contact info row with NULL columns")),
    };
    Ok(ReadFound {
        row,
        emails: r.10,
        verifications: r.11,
    })
}

/// One worker's connection, opened when first needed.
pub(super) struct PgReader {
    connect: PgConnectOptions,
    connection: Option<PgConnection>,
    /// How long opening a connection may take (the pool's acquire timeout).
    connect_timeout: Duration,
    /// How long a batch may take before its connection is given up: the
    /// session's statement timeout, plus time for the answer to arrive.
    read_timeout: Duration,
}

impl PgReader {
    pub(super) fn new(
        connect: PgConnectOptions,
        connect_timeout: Duration,
        statement_timeout: Duration,
    ) -> Self {
        Self {
            // PostgreSQL re-plans a prepared statement per execution while a
            // plan for the parameters' values looks cheaper than the generic
            // one; for this statement it always does (an array's length is
            // unknown to the generic plan), and planning cost more than the
            // reads themselves. The generic plan is the same nested loop over
            // the primary key.
            connect: connect.options([("plan_cache_mode", "force_generic_plan")]),
            connection: None,
            connect_timeout,
            read_timeout: statement_timeout + Duration::from_secs(1),
        }
    }

    async fn connection(&mut self) -> Result<&mut PgConnection, Error> {
        if self.connection.is_none() {
            let opened = tokio::time::timeout(self.connect_timeout, self.connect.connect())
                .await
                .map_err(|_| Error::Unavailable {
                    detail: "connecting for reads timed out".into(),
                })?
                .map_err(|e| to_error(&e, "connect for reads"))?;
            self.connection = Some(opened);
        }
        self.connection
            .as_mut()
            .ok_or_else(|| internal("read connection missing"))
    }

    /// One statement on this worker's connection. `Ok(Err(_))`: the
    /// connection was lost (worth one retry on a new one).
    async fn attempt(
        &mut self,
        keys: &[ReadKey],
    ) -> Result<Result<Vec<BatchRow>, sqlx::Error>, Error> {
        let mut partners = Vec::with_capacity(keys.len());
        let mut environments = Vec::with_capacity(keys.len());
        let mut users = Vec::with_capacity(keys.len());
        for key in keys {
            let (partner, environment, with_users) = match key {
                ReadKey::Contacts { name, users } => {
                    (&name.partner, Some(name.environment.as_str()), *users)
                }
                ReadKey::Users(partner) => (partner, None, true),
            };
            partners.push(partner.as_str());
            environments.push(environment);
            users.push(with_users);
        }
        let read_timeout = self.read_timeout;
        let connection = self.connection().await?;
        let query = match (
            partners.as_slice(),
            environments.as_slice(),
            users.as_slice(),
        ) {
            ([partner], [environment], [with_users]) => sqlx::query_as(ONE_READ)
                .bind(*partner)
                .bind(*environment)
                .bind(*with_users),
            _ => sqlx::query_as(BATCH_READ)
                .bind(&partners)
                .bind(&environments)
                .bind(&users),
        }
        .fetch_all(connection);
        match tokio::time::timeout(read_timeout, query).await {
            Ok(Ok(rows)) => Ok(Ok(rows)),
            Ok(Err(e)) => {
                // Whatever went wrong, the next batch starts on a new
                // connection: opening one is cheap beside a wrong state.
                self.connection = None;
                if connection_lost(&e) {
                    Ok(Err(e))
                } else {
                    Err(to_error(&e, "read contact infos"))
                }
            }
            Err(_) => {
                self.connection = None;
                Err(Error::Unavailable {
                    detail: "reading contact infos timed out".into(),
                })
            }
        }
    }
}

/// The connection, not the statement, failed: I/O, or the server ending the
/// session (SQLSTATE class 08, or 57P01-57P03: terminated by an
/// administrator or a shutdown, restarting).
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => true,
    }
}

impl BatchRead for PgReader {
    type Key = ReadKey;
    type Value = ReadFound;

    async fn read(&mut self, keys: Vec<ReadKey>) -> Result<Vec<(ReadKey, ReadFound)>, Error> {
        let reused = self.connection.is_some();
        let rows = match self.attempt(&keys).await? {
            Ok(rows) => rows,
            Err(e) if reused => {
                debug!(error = %e, "read connection lost while idle; reading on a new one");
                self.attempt(&keys)
                    .await?
                    .map_err(|e| to_error(&e, "read contact infos"))?
            }
            Err(e) => return Err(to_error(&e, "read contact infos")),
        };
        rows.into_iter()
            .map(|r| {
                let key = usize::try_from(r.0 - 1)
                    .ok()
                    .and_then(|i| keys.get(i))
                    .ok_or_else(|| internal("a batched read answered a key it was not asked"))?;
                Ok((key.clone(), found(r)?))
            })
            .collect()
    }
}
