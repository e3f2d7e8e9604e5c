//! PostgreSQL backend: the production store.
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Transaction};
use tracing::instrument;

use super::classify::to_error;
use super::{ContactStore, RequestKey, Row, StoreOptions, encode_fields, encode_response, replay};
use crate::domain::{ContactInfo, ContactInfoName, Update, now_micros};
use crate::error::Error;

/// A create racing another create of the same resource retries this often.
const MAX_ATTEMPTS: usize = 3;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects and fails at once when the database cannot be reached, so a
    /// misconfigured replica never reports SERVING.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Self, String> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| format!("invalid PostgreSQL URL: {e}"))?
            .application_name("partner-contacts")
            .options([(
                "statement_timeout",
                format!("{}ms", options.statement_timeout.as_millis()),
            )]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        Ok(Self { pool })
    }

    pub async fn migrate(&self) -> Result<(), String> {
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| format!("PostgreSQL migration failed: {e}"))
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn try_update(
        &self,
        update: &Update,
        request: Option<&RequestKey>,
    ) -> Result<Option<ContactInfo>, Error> {
        // `Ok(None)`: lost a create race; the caller tries again.
        let mut tx = self.pool.begin().await.map_err(|e| to_error(&e, "begin"))?;

        if let Some(key) = request {
            // Claiming the id first makes a concurrent retry wait for this
            // transaction, then see its result instead of racing it.
            let claimed = sqlx::query(
                "INSERT INTO update_requests (request_id, fingerprint, create_time)
                 VALUES ($1, $2, $3) ON CONFLICT (request_id) DO NOTHING",
            )
            .bind(key.id)
            .bind(key.fingerprint.as_slice())
            .bind(now_micros())
            .execute(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "claim request id"))?
            .rows_affected()
                == 1;
            if !claimed {
                let (fingerprint, response): (Vec<u8>, Option<String>) = sqlx::query_as(
                    "SELECT fingerprint, response::text FROM update_requests WHERE request_id = $1",
                )
                .bind(key.id)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| to_error(&e, "read request id"))?;
                return replay(key, &fingerprint, response.as_deref()).map(Some);
            }
        }

        let current = select_for_update(&mut tx, &update.name).await?;
        let next = update.apply(current.as_ref(), now_micros())?;
        let fields = encode_fields(&next.fields)?;
        let written = match &current {
            None => sqlx::query(
                "INSERT INTO contact_info
                     (partner, environment, revision, etag, fields, create_time, update_time)
                 VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)
                 ON CONFLICT (partner, environment) DO NOTHING",
            )
            .bind(next.name.partner.as_str())
            .bind(next.name.environment.as_str())
            .bind(next.revision)
            .bind(&next.etag)
            .bind(&fields)
            .bind(next.create_time)
            .bind(next.update_time)
            .execute(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "insert contact info"))?,
            Some(cur) => sqlx::query(
                "UPDATE contact_info
                 SET revision = $3, etag = $4, fields = $5::jsonb, update_time = $6
                 WHERE partner = $1 AND environment = $2 AND revision = $7",
            )
            .bind(next.name.partner.as_str())
            .bind(next.name.environment.as_str())
            .bind(next.revision)
            .bind(&next.etag)
            .bind(&fields)
            .bind(next.update_time)
            .bind(cur.revision)
            .execute(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "update contact info"))?,
        };
        if written.rows_affected() != 1 {
            // A concurrent create won the race; the row lock now orders us.
            return Ok(None);
        }

        if let Some(key) = request {
            sqlx::query("UPDATE update_requests SET response = $2::jsonb WHERE request_id = $1")
                .bind(key.id)
                .bind(encode_response(&next)?)
                .execute(&mut *tx)
                .await
                .map_err(|e| to_error(&e, "record request id"))?;
        }
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(Some(next))
    }
}

type PgRow = (
    String,
    String,
    i64,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

const SELECT_COLUMNS: &str =
    "SELECT partner, environment, revision, etag, fields::text, create_time, update_time
     FROM contact_info WHERE partner = $1 AND environment = $2";

fn row(r: PgRow) -> Row {
    Row {
        partner: r.0,
        environment: r.1,
        revision: r.2,
        etag: r.3,
        fields: r.4,
        create_time: r.5,
        update_time: r.6,
    }
}

async fn select_for_update(
    tx: &mut Transaction<'static, Postgres>,
    name: &ContactInfoName,
) -> Result<Option<ContactInfo>, Error> {
    let sql = format!("{SELECT_COLUMNS} FOR UPDATE");
    let found: Option<PgRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(name.partner.as_str())
        .bind(name.environment.as_str())
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| to_error(&e, "lock contact info"))?;
    found.map(|r| row(r).into_domain()).transpose()
}

#[async_trait]
impl ContactStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
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
        let found: Option<PgRow> = sqlx::query_as(SELECT_COLUMNS)
            .bind(name.partner.as_str())
            .bind(name.environment.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| to_error(&e, "read contact info"))?;
        found.map(|r| row(r).into_domain()).transpose()
    }

    #[instrument(skip_all, fields(partner = %update.name.partner.as_str(), environment = update.name.environment.as_str(), request_id = request.map(|r| r.id.to_string())), err(level = "debug"))]
    async fn update(
        &self,
        update: &Update,
        request: Option<&RequestKey>,
    ) -> Result<ContactInfo, Error> {
        for _ in 0..MAX_ATTEMPTS {
            match self.try_update(update, request).await {
                Ok(Some(info)) => return Ok(info),
                Ok(None) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Unavailable {
            detail: "update kept conflicting with concurrent updates".to_owned(),
        })
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn purge_request_ids(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        sqlx::query("DELETE FROM update_requests WHERE create_time < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| to_error(&e, "purge request ids"))
    }
}
