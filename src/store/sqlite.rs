//! SQLite backend: the embedded default, one file, no setup.
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tracing::instrument;

use super::classify::to_error;
use super::outbox::{EventRows, StoredEvent};

mod events;
mod users;
mod verify;
use super::requests::{encode_response, replay};
use super::rows::{ReadyRow, RevisionRow, Row, UserRow, encode_changed, encode_fields, internal};
use super::{
    Backfill, ContactStore, NewChallenge, RequestKey, Saved, StoreOptions, UserCursor, UserDecision,
};
use crate::domain::{
    ContactInfo, ContactInfoName, Event, PartnerId, PartnerVerifications, PortalUser,
    PortalUserEmails, RekeyReport, Revision, Update, VerificationFacts, now_micros, save_events,
};
use crate::error::Error;
use crate::wire::Ready;
use users::user_emails;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

type SqliteRow = (String, String, i64, String, String, i64, i64);

const SELECT_COLUMNS: &str =
    "SELECT partner, environment, revision, etag, fields, create_time, update_time
     FROM contact_info WHERE partner = ?1 AND environment = ?2";

type SqliteReadyRow = (
    String,
    String,
    i64,
    String,
    Option<String>,
    i64,
    i64,
    Option<Vec<u8>>,
    Option<i64>,
);

type SqliteRevisionRow = (
    i64,
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
);

const REVISION_COLUMNS: &str = "SELECT revision, actor, request_id, changed_fields, etag, fields,
            resource_create_time, create_time, source
     FROM contact_info_revisions WHERE partner = ?1 AND environment = ?2";

pub(super) type SqliteUserRow = (String, String, String, String, i64, i64);

pub(super) const USER_COLUMNS: &str =
    "SELECT partner, id, email, role, create_time, update_time FROM portal_users";

pub(super) fn from_micros(us: i64) -> Result<DateTime<Utc>, Error> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| internal("stored time is out of range"))
}

pub(super) fn parse_uuid(s: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::try_parse(s).map_err(|_| internal("stored id is not a UUID"))
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

fn decode_revision(r: SqliteRevisionRow, name: &ContactInfoName) -> Result<Revision, Error> {
    RevisionRow {
        revision: r.0,
        actor: r.1,
        request_id: r.2.as_deref().map(parse_uuid).transpose()?,
        changed_fields: r.3,
        etag: r.4,
        fields: r.5,
        resource_create_time: from_micros(r.6)?,
        create_time: from_micros(r.7)?,
        source: r.8,
    }
    .into_domain(name)
}

pub(super) fn decode_user(r: SqliteUserRow) -> Result<PortalUser, Error> {
    UserRow {
        partner: r.0,
        id: parse_uuid(&r.1)?,
        email: r.2,
        role: r.3,
        create_time: from_micros(r.4)?,
        update_time: from_micros(r.5)?,
    }
    .into_domain()
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

    /// Applies the schema migrations, then recomputes the email keys that an
    /// older release wrote (see `domain::rekey`).
    pub async fn migrate(&self) -> Result<RekeyReport, String> {
        let mut migrator = sqlx::migrate!("migrations/sqlite");
        // A release being rolled back (or an old replica restarting during a
        // rollout) meets migrations newer than itself. Migrations only ever
        // add (expand, then contract a release later), so it may serve.
        migrator.set_ignore_missing(true);
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| format!("SQLite migration failed: {e}"))?;
        self.rekey_portal_users()
            .await
            .map_err(|e| format!("recomputing portal users' email keys failed: {e}"))
    }

    /// IMMEDIATE takes the write lock up front: SQLite then runs writes one
    /// at a time, so each read-check-write below cannot interleave.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, Error> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(|e| to_error(&e, "begin"))
    }
}

#[async_trait]
impl ContactStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn pool_stats(&self) -> super::PoolStats {
        super::PoolStats {
            max: self.pool.options().get_max_connections(),
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            listener_reconnects: 0,
        }
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
    async fn get_ready(&self, name: &ContactInfoName) -> Result<Option<Ready>, Error> {
        let found: Option<SqliteReadyRow> = sqlx::query_as(
            "SELECT partner, environment, revision, etag,
                    CASE WHEN ready_revision = revision THEN NULL ELSE fields END,
                    create_time, update_time, ready, ready_revision
             FROM contact_info WHERE partner = ?1 AND environment = ?2",
        )
        .bind(name.partner.as_str())
        .bind(name.environment.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| to_error(&e, "read contact info"))?;
        let row = match found {
            Some(r) => ReadyRow {
                row: Row {
                    partner: r.0,
                    environment: r.1,
                    revision: r.2,
                    etag: r.3,
                    fields: String::new(),
                    create_time: from_micros(r.5)?,
                    update_time: from_micros(r.6)?,
                },
                fields: r.4,
                ready: r.7,
                ready_revision: r.8,
            },
            None => return Ok(None),
        };
        let ready = match row.into_ready()? {
            Some(ready) => ready,
            None => match self.get(name).await? {
                Some(info) => Ready::of(&info),
                None => return Ok(None),
            },
        };
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| to_error(&e, "acquire"))?;
        let facts = verify::facts(&mut conn, &name.partner).await?;
        Ok(Some(ready.with_verifications(facts)))
    }

    /// Two statements: the database is in this process, so there is no
    /// round trip to save.
    async fn get_ready_and_users(
        &self,
        name: &ContactInfoName,
    ) -> Result<Option<(Ready, PortalUserEmails)>, Error> {
        let Some(ready) = self.get_ready(name).await? else {
            return Ok(None);
        };
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| to_error(&e, "acquire"))?;
        Ok(Some((ready, user_emails(&mut conn, &name.partner).await?)))
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn backfill_ready(&self, batch: usize) -> Result<Backfill, Error> {
        let limit = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        let mut report = Backfill::default();
        loop {
            let mut tx = self.begin_write().await?;
            // The rows `ready_pending` names (migration 0008): the table
            // itself is not walked.
            let keys: Vec<(String, String)> = sqlx::query_as(
                "SELECT partner, environment FROM ready_pending
                 ORDER BY partner, environment LIMIT ?1",
            )
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "read the rows without a ready form"))?;
            if keys.is_empty() {
                return Ok(report);
            }
            for (partner, environment) in keys {
                // None: current again (a newer release saved it since).
                let stale: Option<SqliteRow> = sqlx::query_as(
                    "SELECT partner, environment, revision, etag, fields, create_time, update_time
                     FROM contact_info
                     WHERE partner = ?1 AND environment = ?2 AND ready_revision IS NOT revision",
                )
                .bind(&partner)
                .bind(&environment)
                .fetch_optional(&mut *tx)
                .await
                .map_err(|e| to_error(&e, "read a row without a ready form"))?;
                // Undecodable: skipped, its entry cleared as below (a later
                // save or a repair by hand records it again).
                match stale.map(decode) {
                    None => {}
                    Some(Err(e)) => report.skip(&partner, &environment, &e),
                    Some(Ok(info)) => {
                        sqlx::query(
                            "UPDATE contact_info SET ready = ?4, ready_revision = ?3
                             WHERE partner = ?1 AND environment = ?2 AND revision = ?3",
                        )
                        .bind(info.name.partner.as_str())
                        .bind(info.name.environment.as_str())
                        .bind(info.revision)
                        .bind(Ready::of(&info).to_stored())
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| to_error(&e, "write ready form"))?;
                        report.written += 1;
                    }
                }
                sqlx::query("DELETE FROM ready_pending WHERE partner = ?1 AND environment = ?2")
                    .bind(&partner)
                    .bind(&environment)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| to_error(&e, "clear a written ready form"))?;
            }
            tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        }
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

    #[instrument(skip(self), fields(partner = %name.partner.as_str(), environment = name.environment.as_str()), err(level = "debug"))]
    async fn get_at(
        &self,
        name: &ContactInfoName,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactInfo>, Error> {
        let sql =
            format!("{REVISION_COLUMNS} AND create_time <= ?3 ORDER BY revision DESC LIMIT 1");
        let found: Option<SqliteRevisionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name.partner.as_str())
            .bind(name.environment.as_str())
            .bind(at.timestamp_micros())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| to_error(&e, "read contact info revision"))?;
        found
            .map(|r| decode_revision(r, name).map(|r| r.info))
            .transpose()
    }

    #[instrument(skip_all, fields(partner = %update.name.partner.as_str(), environment = update.name.environment.as_str(), request_id = request.map(|r| r.id.to_string())), err(level = "debug"))]
    async fn save(
        &self,
        update: &Update,
        request: Option<&RequestKey>,
        actor: &str,
    ) -> Result<Saved, Error> {
        let mut tx = self.begin_write().await?;

        if let Some(key) = request {
            let recorded: Option<(Vec<u8>, Option<String>)> = sqlx::query_as(
                "SELECT fingerprint, response FROM update_requests WHERE request_id = ?1",
            )
            .bind(key.slot.hyphenated().to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "read request id"))?;
            if let Some((fingerprint, response)) = recorded {
                return replay(key, &fingerprint, response.as_deref()).map(|info| Saved {
                    info,
                    verifications: None,
                });
            }
        }

        let current: Option<SqliteRow> = sqlx::query_as(SELECT_COLUMNS)
            .bind(update.name.partner.as_str())
            .bind(update.name.environment.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "read contact info"))?;
        let current = current.map(decode).transpose()?;
        let users = match update.needs_portal_users() {
            true => Some(user_emails(&mut tx, &update.name.partner).await?),
            false => None,
        };
        let next = update.apply(current.as_ref(), users.as_ref(), now_micros())?;
        let fields = encode_fields(&next.fields)?;
        sqlx::query(
            "INSERT INTO contact_info
                 (partner, environment, revision, etag, fields, create_time, update_time,
                  ready, ready_revision)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?3)
             ON CONFLICT (partner, environment) DO UPDATE SET
                 revision = excluded.revision, etag = excluded.etag,
                 fields = excluded.fields, update_time = excluded.update_time,
                 ready = excluded.ready, ready_revision = excluded.ready_revision",
        )
        .bind(next.name.partner.as_str())
        .bind(next.name.environment.as_str())
        .bind(next.revision)
        .bind(&next.etag)
        .bind(&fields)
        .bind(next.create_time.timestamp_micros())
        .bind(next.update_time.timestamp_micros())
        .bind(Ready::of(&next).to_stored())
        .execute(&mut *tx)
        .await
        .map_err(|e| to_error(&e, "write contact info"))?;

        sqlx::query(
            "INSERT INTO contact_info_revisions
                 (partner, environment, revision, actor, request_id, changed_fields, etag,
                  fields, resource_create_time, create_time, source)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .bind(next.name.partner.as_str())
        .bind(next.name.environment.as_str())
        .bind(next.revision)
        .bind(actor)
        .bind(request.map(|k| k.id.hyphenated().to_string()))
        .bind(encode_changed(next.changed_since(current.as_ref())))
        .bind(&next.etag)
        .bind(&fields)
        .bind(next.create_time.timestamp_micros())
        .bind(next.update_time.timestamp_micros())
        .bind(update.copied_from.as_ref().map(ToString::to_string))
        .execute(&mut *tx)
        .await
        .map_err(|e| to_error(&e, "record revision"))?;

        let events = EventRows::of(&save_events(current.as_ref(), &next, actor));
        events::write(&mut tx, &next.name.partner, &events, next.update_time).await?;

        if let Some(key) = request {
            sqlx::query(
                "INSERT INTO update_requests (request_id, fingerprint, response, create_time)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(key.slot.hyphenated().to_string())
            .bind(key.fingerprint.as_slice())
            .bind(encode_response(&next)?)
            .bind(next.update_time.timestamp_micros())
            .execute(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "record request id"))?;
        }
        let verifications = verify::facts(&mut tx, &next.name.partner).await?;
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(Saved {
            info: next,
            verifications: Some(verifications),
        })
    }

    #[instrument(skip(self), fields(partner = %name.partner.as_str(), environment = name.environment.as_str()), err(level = "debug"))]
    async fn list_revisions(
        &self,
        name: &ContactInfoName,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Revision>, Error> {
        let sql = format!("{REVISION_COLUMNS} AND revision < ?3 ORDER BY revision DESC LIMIT ?4");
        let rows: Vec<SqliteRevisionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name.partner.as_str())
            .bind(name.environment.as_str())
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| to_error(&e, "list revisions"))?;
        rows.into_iter().map(|r| decode_revision(r, name)).collect()
    }

    #[instrument(skip(self), fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn list_events(
        &self,
        partner: &PartnerId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, Error> {
        events::list(&self.pool, partner, after, limit).await
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn lease_event_partners(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<(PartnerId, i64)>, Error> {
        let mut tx = self.begin_write().await?;
        let leased = events::lease(&mut tx, owner, lease, limit).await?;
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(leased)
    }

    #[instrument(skip(self), fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn mark_events_published(
        &self,
        partner: &PartnerId,
        owner: &str,
        through: i64,
        lease: Duration,
    ) -> Result<bool, Error> {
        let mut tx = self.begin_write().await?;
        let marked = events::mark_published(&mut tx, partner, owner, through, lease).await?;
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(marked)
    }

    #[instrument(skip(self), fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn release_event_partner(&self, partner: &PartnerId, owner: &str) -> Result<(), Error> {
        events::release(&self.pool, partner, owner).await
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn oldest_unpublished_event(&self) -> Result<Option<DateTime<Utc>>, Error> {
        events::oldest_unpublished(&self.pool).await
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        events::prune(&self.pool, before).await
    }

    #[instrument(skip(self), fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn verifications(&self, partner: &PartnerId) -> Result<PartnerVerifications, Error> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| to_error(&e, "acquire"))?;
        verify::facts(&mut conn, partner).await
    }

    #[instrument(skip_all, fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn record_challenges(
        &self,
        partner: &PartnerId,
        challenges: &[NewChallenge],
        events: &[Event],
    ) -> Result<(), Error> {
        let mut tx = self.begin_write().await?;
        verify::record(&mut tx, partner, challenges).await?;
        let at = challenges
            .first()
            .map_or_else(now_micros, |c| c.create_time);
        events::write(&mut tx, partner, &EventRows::of(events), at).await?;
        tx.commit().await.map_err(|e| to_error(&e, "commit"))
    }

    #[instrument(skip_all, fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn confirm_challenge(
        &self,
        partner: &PartnerId,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<(String, VerificationFacts)>, Error> {
        let mut tx = self.begin_write().await?;
        let confirmed = verify::confirm(&mut tx, partner, hash, now).await?;
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(confirmed)
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

    #[instrument(skip(self, after), fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn list_portal_users(
        &self,
        partner: &PartnerId,
        after: Option<&UserCursor>,
        limit: usize,
    ) -> Result<Vec<PortalUser>, Error> {
        let sql = format!(
            "{USER_COLUMNS} WHERE partner = ?1
                 AND (?2 IS NULL OR (create_time, id) > (?2, ?3))
             ORDER BY create_time, id LIMIT ?4"
        );
        let rows: Vec<SqliteUserRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(partner.as_str())
            .bind(after.map(|c| c.create_time.timestamp_micros()))
            .bind(after.map(|c| c.id.hyphenated().to_string()))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| to_error(&e, "list portal users"))?;
        rows.into_iter().map(decode_user).collect()
    }

    #[instrument(skip(self), fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn portal_user_emails(&self, partner: &PartnerId) -> Result<PortalUserEmails, Error> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| to_error(&e, "acquire"))?;
        user_emails(&mut conn, partner).await
    }

    #[instrument(skip(self, actor, decide), fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn mutate_portal_users(
        &self,
        partner: &PartnerId,
        actor: &str,
        decide: UserDecision<'_>,
    ) -> Result<PortalUser, Error> {
        self.mutate_users(partner, actor, decide).await
    }
}
