//! SQLite backend: the embedded default, one file, no setup.
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tracing::instrument;

use super::classify::to_error;
use super::{
    ContactStore, RequestKey, Row, StoreOptions, encode_fields, encode_response, internal, replay,
};
use crate::domain::{ContactInfo, ContactInfoName, Update, now_micros};
use crate::error::Error;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file a `sqlite:` URL names.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, String> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| format!("invalid SQLite URL: {e}"))?
            .create_if_missing(true)
            // WAL lets reads proceed during a write; FULL sync makes an
            // acknowledged write survive a power loss, not just a crash.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.acquire_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| format!("cannot open SQLite database: {e}"))?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> Result<(), String> {
        sqlx::migrate!("migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| format!("SQLite migration failed: {e}"))
    }
}

type SqliteRow = (String, String, i64, String, String, i64, i64);

const SELECT_COLUMNS: &str =
    "SELECT partner, environment, revision, etag, fields, create_time, update_time
     FROM contact_info WHERE partner = ?1 AND environment = ?2";

fn from_micros(us: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| internal("stored time is out of range"))
}

fn decode(r: SqliteRow) -> Result<ContactInfo, Error> {
    Row {
        partner: r.0,
        environment: r.1,
        revision: r.2,
        etag: r.3,
        fields: r.4,
        create_time: from_micros(r.5)?,
        update_time: from_micros(r.6)?,
    }
    .into_domain()
}

#[async_trait]
impl ContactStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| to_error(&e, "ping"))
    }

    #[instrument(skip(self), fields(partner = %name.partner.as_str(), environment = name.environment.as_str()), err(level = "debug"))]
    async fn get(&self, name: &ContactInfoName) -> Result<Option<ContactInfo>, Error> {
        let found: Option<SqliteRow> = sqlx::query_as(SELECT_COLUMNS)
            .bind(name.partner.as_str())
            .bind(name.environment.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| to_error(&e, "read contact info"))?;
        found.map(decode).transpose()
    }

    #[instrument(skip_all, fields(partner = %update.name.partner.as_str(), environment = update.name.environment.as_str(), request_id = request.map(|r| r.id.to_string())), err(level = "debug"))]
    async fn update(
        &self,
        update: &Update,
        request: Option<&RequestKey>,
    ) -> Result<ContactInfo, Error> {
        // IMMEDIATE takes the write lock up front: SQLite then runs updates one
        // at a time, so the read-check-write below cannot interleave.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| to_error(&e, "begin"))?;

        if let Some(key) = request {
            let recorded: Option<(Vec<u8>, Option<String>)> = sqlx::query_as(
                "SELECT fingerprint, response FROM update_requests WHERE request_id = ?1",
            )
            .bind(key.id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "read request id"))?;
            if let Some((fingerprint, response)) = recorded {
                return replay(key, &fingerprint, response.as_deref());
            }
        }

        let current: Option<SqliteRow> = sqlx::query_as(SELECT_COLUMNS)
            .bind(update.name.partner.as_str())
            .bind(update.name.environment.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "read contact info"))?;
        let current = current.map(decode).transpose()?;
        let next = update.apply(current.as_ref(), now_micros())?;
        let fields = encode_fields(&next.fields)?;
        sqlx::query(
            "INSERT INTO contact_info
                 (partner, environment, revision, etag, fields, create_time, update_time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (partner, environment) DO UPDATE SET
                 revision = excluded.revision, etag = excluded.etag,
                 fields = excluded.fields, update_time = excluded.update_time",
        )
        .bind(next.name.partner.as_str())
        .bind(next.name.environment.as_str())
        .bind(next.revision)
        .bind(&next.etag)
        .bind(&fields)
        .bind(next.create_time.timestamp_micros())
        .bind(next.update_time.timestamp_micros())
        .execute(&mut *tx)
        .await
        .map_err(|e| to_error(&e, "write contact info"))?;

        if let Some(key) = request {
            sqlx::query(
                "INSERT INTO update_requests (request_id, fingerprint, response, create_time)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(key.id.to_string())
            .bind(key.fingerprint.as_slice())
            .bind(encode_response(&next)?)
            .bind(next.update_time.timestamp_micros())
            .execute(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "record request id"))?;
        }
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(next)
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn purge_request_ids(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        sqlx::query("DELETE FROM update_requests WHERE create_time < ?1")
            .bind(before.timestamp_micros())
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| to_error(&e, "purge request ids"))
    }
}
