//! PostgreSQL backend: the production store.
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres, Transaction};
use tracing::instrument;

use super::changes::{CHANNEL, Change, ChangeFeed};
use super::classify::to_error;
use super::coalesce::Coalescer;

mod events;
mod reads;
mod save;
mod users;
mod verify;
use super::outbox::{EventRows, StoredEvent};
use super::rows::{ReadyRow, RevisionRow, Row, UserRow};
use super::{
    Backfill, ContactStore, NewChallenge, RequestKey, Saved, StoreOptions, UserCursor, UserDecision,
};
use crate::domain::{
    ContactInfo, ContactInfoName, Event, PartnerId, PartnerVerifications, PortalUser,
    PortalUserEmails, RekeyReport, Revision, Update, VerificationFacts,
};
use crate::error::Error;
use crate::wire::Ready;
use reads::{PgReader, READ_BATCH_MAX, ReadFound, ReadKey, read_connections};
use users::{email_keys, user_emails, users_changed};

/// A save that lost a race (a create to another create, an update without
/// a lock to a concurrent update) is tried in a transaction this often.
const MAX_ATTEMPTS: usize = 3;

#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// How often the change listener lost its connection.
    listener_reconnects: Arc<AtomicU64>,
    /// The session's `statement_timeout`; a write transaction gets less when
    /// its call's deadline is nearer.
    statement_timeout: Duration,
    /// Whether writes NOTIFY and a listener follows the others' (see
    /// `StoreOptions::notify`).
    notify: bool,
    /// Health's own connection, outside the pool: a busy pool must not read
    /// as an outage, and a refused connection must read as one at once
    /// (the pool retries refused connections until its acquire timeout).
    probe: Arc<tokio::sync::Mutex<Option<PgConnection>>>,
    connect_options: PgConnectOptions,
    /// The read path's point reads (a cache miss), gathered into one query
    /// while others are in flight.
    reads: Arc<Coalescer<ReadKey, ReadFound>>,
}

/// A pooled connection idle this long is pinged before it is used.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

/// How long after its call's deadline PostgreSQL stops a write's statement.
const DEADLINE_SLACK: Duration = Duration::from_millis(50);

type PgRow = (
    String,
    String,
    i64,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

macro_rules! select_columns {
    () => {
        "SELECT partner, environment, revision, etag, fields::text, create_time, update_time
         FROM contact_info WHERE partner = $1 AND environment = $2"
    };
}

/// Whether reading the row locks it.
#[derive(Debug, Clone, Copy)]
enum Lock {
    None,
    ForUpdate,
}

/// The resource as it is now, read through the pool, a connection or a
/// transaction.
async fn read_row<'e>(
    conn: impl sqlx::Executor<'e, Database = Postgres>,
    name: &ContactInfoName,
    lock: Lock,
) -> Result<Option<ContactInfo>, Error> {
    let (sql, what) = match lock {
        Lock::None => (select_columns!(), "read contact info"),
        Lock::ForUpdate => (
            concat!(select_columns!(), " FOR UPDATE"),
            "lock contact info",
        ),
    };
    let found: Option<PgRow> = sqlx::query_as(sql)
        .bind(name.partner.as_str())
        .bind(name.environment.as_str())
        .fetch_optional(conn)
        .await
        .map_err(|e| to_error(&e, what))?;
    found.map(|r| row(r).into_domain()).transpose()
}

/// The read path's columns (see `reads`): the JSON only when the ready form is stale.
type PgReadyRow = (
    String,
    String,
    i64,
    String,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<Vec<u8>>,
    Option<i64>,
);

fn ready_row(r: PgReadyRow) -> ReadyRow {
    ReadyRow {
        row: Row {
            partner: r.0,
            environment: r.1,
            revision: r.2,
            etag: r.3,
            fields: String::new(),
            create_time: r.5,
            update_time: r.6,
        },
        fields: r.4,
        ready: r.7,
        ready_revision: r.8,
    }
}

type PgRevisionRow = (
    i64,
    String,
    Option<uuid::Uuid>,
    String,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<String>,
);

const REVISION_COLUMNS: &str = "SELECT revision, actor, request_id, changed_fields, etag,
            fields::text, resource_create_time, create_time, source
     FROM contact_info_revisions WHERE partner = $1 AND environment = $2";

pub(super) type PgUserRow = (
    String,
    uuid::Uuid,
    String,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
);

pub(super) const USER_COLUMNS: &str =
    "SELECT partner, id, email, role, create_time, update_time FROM portal_users";

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

fn revision_row(r: PgRevisionRow) -> RevisionRow {
    RevisionRow {
        revision: r.0,
        actor: r.1,
        request_id: r.2,
        changed_fields: r.3,
        etag: r.4,
        fields: r.5,
        resource_create_time: r.6,
        create_time: r.7,
        source: r.8,
    }
}

pub(super) fn user_row(r: PgUserRow) -> UserRow {
    UserRow {
        partner: r.0,
        id: r.1,
        email: r.2,
        role: r.3,
        create_time: r.4,
        update_time: r.5,
    }
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
        let readers = read_connections(options.max_connections);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.saturating_sub(readers).max(1))
            .acquire_timeout(options.acquire_timeout)
            // sqlx pings a connection (a round trip) when it is given back,
            // and by default again when it is taken: under load that was a
            // third of an update's round trips. Taken, a connection is
            // pinged only after it sat idle a while (a database restart or
            // an idle timeout may have closed it meanwhile).
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect.clone())
            .await
            .map_err(|e| format!("cannot connect to PostgreSQL: {e}"))?;
        let reads = Coalescer::start(
            (0..readers)
                .map(|_| {
                    PgReader::new(
                        connect.clone(),
                        options.acquire_timeout,
                        options.statement_timeout,
                    )
                })
                .collect(),
            READ_BATCH_MAX,
        );
        Ok(Self {
            pool,
            reads: Arc::new(reads),
            listener_reconnects: Arc::default(),
            statement_timeout: options.statement_timeout,
            notify: options.notify,
            probe: Arc::default(),
            connect_options: connect,
        })
    }

    pub fn listener_reconnects(&self) -> u64 {
        self.listener_reconnects.load(Ordering::Relaxed)
    }

    /// Applies the schema migrations, then recomputes the email keys that an
    /// older release wrote (see `domain::rekey`).
    pub async fn migrate(&self) -> Result<RekeyReport, String> {
        let mut migrator = sqlx::migrate!("migrations/postgres");
        // A release being rolled back (or an old replica restarting during a
        // rollout) meets migrations newer than itself. Migrations only ever
        // add (expand, then contract a release later), so it may serve.
        migrator.set_ignore_missing(true);
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| format!("PostgreSQL migration failed: {e}"))?;
        self.rekey_portal_users()
            .await
            .map_err(|e| format!("recomputing portal users' email keys failed: {e}"))
    }

    /// A transaction whose statements stop when the call's deadline passes:
    /// dropping the call's future does not stop a query PostgreSQL is
    /// running (a lock wait, say), but its `statement_timeout` does.
    async fn begin(&self) -> Result<Transaction<'static, Postgres>, Error> {
        let begun = match crate::deadline::remaining() {
            Some(left) => {
                // A little past the deadline: the call reports its deadline,
                // not the statement timeout it caused.
                let ms = (left + DEADLINE_SLACK)
                    .min(self.statement_timeout)
                    .as_millis()
                    .max(1);
                self.pool
                    .begin_with(sqlx::AssertSqlSafe(format!(
                        "BEGIN; SET LOCAL statement_timeout = {ms}"
                    )))
                    .await
            }
            None => self.pool.begin().await,
        };
        begun.map_err(|e| to_error(&e, "begin"))
    }

    /// Tells every replica, when the transaction commits (and only then).
    async fn notify(&self, conn: &mut PgConnection, change: &Change) -> Result<(), Error> {
        if !self.notify {
            return Ok(());
        }
        notify(conn, change).await
    }
}

async fn notify(conn: &mut PgConnection, change: &Change) -> Result<(), Error> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(change.encode())
        .execute(conn)
        .await
        .map(|_| ())
        .map_err(|e| to_error(&e, "notify"))
}

/// Forwards NOTIFYs into `feed` for as long as the process runs. After any
/// disconnect it reconnects with backoff and publishes `Resync`: what was
/// sent meanwhile is lost, so everything derived from the store is dropped.
async fn listen_forever(pool: PgPool, feed: ChangeFeed, reconnects: Arc<AtomicU64>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => match listener.listen(CHANNEL).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    // Changes made before LISTEN took effect were not seen.
                    feed.publish(Change::Resync);
                    loop {
                        match listener.try_recv().await {
                            Ok(Some(n)) => match Change::decode(n.payload()) {
                                Some(change) => feed.publish(change),
                                None => tracing::warn!("unknown change notification ignored"),
                            },
                            Ok(None) => break,
                            Err(e) => {
                                let _ = to_error(&e, "receive change notifications");
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    let _ = to_error(&e, "listen for change notifications");
                }
            },
            Err(e) => {
                let _ = to_error(&e, "connect change listener");
            }
        }
        reconnects.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            retry_in_ms = backoff.as_millis() as u64,
            "change listener disconnected; caches resynchronise after it reconnects"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[async_trait]
impl ContactStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn ping(&self) -> Result<(), Error> {
        let mut probe = self.probe.lock().await;
        // Taken out while in use and put back only after a good answer, so
        // a failed ping, or one cancelled by health's timeout while stuck,
        // leaves no broken connection behind: the next probe opens another.
        let mut conn = match probe.take() {
            Some(conn) => conn,
            None => <PgConnection as sqlx::Connection>::connect_with(&self.connect_options)
                .await
                .map_err(|e| to_error(&e, "connect health probe"))?,
        };
        sqlx::query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(|e| to_error(&e, "ping"))?;
        *probe = Some(conn);
        Ok(())
    }

    #[instrument(skip(self), fields(partner = %name.partner.as_str(), environment = name.environment.as_str()), err(level = "debug"))]
    async fn get(&self, name: &ContactInfoName) -> Result<Option<ContactInfo>, Error> {
        read_row(&self.pool, name, Lock::None).await
    }

    #[instrument(skip(self), fields(partner = %name.partner.as_str(), environment = name.environment.as_str()), err(level = "debug"))]
    async fn get_ready(&self, name: &ContactInfoName) -> Result<Option<Ready>, Error> {
        let key = ReadKey::Contacts {
            name: name.clone(),
            users: false,
        };
        let Some(ReadFound {
            row: Some(found),
            verifications,
            ..
        }) = self.reads.get(key).await?
        else {
            return Ok(None);
        };
        let facts = verify::parse_facts(verifications.unwrap_or_default())?;
        match ready_row(found).into_ready()? {
            Some(ready) => Ok(Some(ready.with_verifications(facts))),
            None => self
                .get(name)
                .await
                .map(|i| i.as_ref().map(|i| Ready::of(i).with_verifications(facts))),
        }
    }

    #[instrument(skip(self), fields(partner = %name.partner.as_str(), environment = name.environment.as_str()), err(level = "debug"))]
    async fn get_ready_and_users(
        &self,
        name: &ContactInfoName,
    ) -> Result<Option<(Ready, PortalUserEmails)>, Error> {
        let key = ReadKey::Contacts {
            name: name.clone(),
            users: true,
        };
        let Some(ReadFound {
            row: Some(found),
            emails,
            verifications,
        }) = self.reads.get(key).await?
        else {
            return Ok(None);
        };
        let users = email_keys(emails.unwrap_or_default());
        let facts = verify::parse_facts(verifications.unwrap_or_default())?;
        let ready = match ready_row(found).into_ready()? {
            Some(ready) => ready,
            None => match self.get(name).await? {
                Some(info) => Ready::of(&info),
                None => return Ok(None),
            },
        };
        Ok(Some((ready.with_verifications(facts), users)))
    }

    #[instrument(skip(self), err(level = "debug"))]
    async fn backfill_ready(&self, batch: usize) -> Result<Backfill, Error> {
        let limit = i64::try_from(batch.max(1)).unwrap_or(i64::MAX);
        let mut report = Backfill::default();
        loop {
            let mut tx = self.pool.begin().await.map_err(|e| to_error(&e, "begin"))?;
            // The rows `ready_pending` names (migration 0008): the table
            // itself is not walked. Locked in this order (the entries, then
            // their rows, then the entries deleted) so that an older
            // release's save, which locks the row and then records it,
            // never waits on this transaction while it waits on that save.
            // SKIP LOCKED: replicas starting together share the entries.
            let keys: Vec<(String, String)> = sqlx::query_as(
                "SELECT partner, environment FROM ready_pending
                 ORDER BY partner, environment
                 LIMIT $1 FOR UPDATE SKIP LOCKED",
            )
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "read the rows without a ready form"))?;
            if keys.is_empty() {
                return Ok(report);
            }
            let (partners, environments): (Vec<String>, Vec<String>) = keys.into_iter().unzip();
            // An entry whose row is current again (a newer release saved it
            // since) is only deleted.
            let rows: Vec<PgRow> = sqlx::query_as(
                "SELECT c.partner, c.environment, c.revision, c.etag, c.fields::text,
                        c.create_time, c.update_time
                 FROM contact_info c
                 JOIN UNNEST($1::text[], $2::text[]) AS k(partner, environment)
                   ON c.partner = k.partner AND c.environment = k.environment
                 WHERE c.ready_revision IS DISTINCT FROM c.revision
                 FOR UPDATE OF c",
            )
            .bind(&partners)
            .bind(&environments)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "read rows without a ready form"))?;
            let (mut stale_partners, mut stale_environments, mut revisions, mut blobs) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for r in rows {
                let (partner, environment) = (r.0.clone(), r.1.clone());
                // Its entry is cleared with the others: a later save or a
                // repair by hand leaves the form stale, so records it again.
                let info = match row(r).into_domain() {
                    Ok(info) => info,
                    Err(e) => {
                        report.skip(&partner, &environment, &e);
                        continue;
                    }
                };
                blobs.push(Ready::of(&info).to_stored());
                stale_partners.push(info.name.partner.as_str().to_owned());
                stale_environments.push(info.name.environment.as_str());
                revisions.push(info.revision);
            }
            let n = sqlx::query(
                "UPDATE contact_info c SET ready = v.ready, ready_revision = v.revision
                 FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bytea[])
                     AS v(partner, environment, revision, ready)
                 WHERE c.partner = v.partner AND c.environment = v.environment
                   AND c.revision = v.revision",
            )
            .bind(&stale_partners)
            .bind(&stale_environments)
            .bind(&revisions)
            .bind(&blobs)
            .execute(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "write ready forms"))?
            .rows_affected();
            sqlx::query(
                "DELETE FROM ready_pending p
                 USING UNNEST($1::text[], $2::text[]) AS k(partner, environment)
                 WHERE p.partner = k.partner AND p.environment = k.environment",
            )
            .bind(&partners)
            .bind(&environments)
            .execute(&mut *tx)
            .await
            .map_err(|e| to_error(&e, "clear written ready forms"))?;
            tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
            report.written += n;
        }
    }

    #[instrument(skip(self), fields(partner = %name.partner.as_str(), environment = name.environment.as_str()), err(level = "debug"))]
    async fn get_at(
        &self,
        name: &ContactInfoName,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactInfo>, Error> {
        let sql =
            format!("{REVISION_COLUMNS} AND create_time <= $3 ORDER BY revision DESC LIMIT 1");
        let found: Option<PgRevisionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name.partner.as_str())
            .bind(name.environment.as_str())
            .bind(at)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| to_error(&e, "read contact info revision"))?;
        found
            .map(|r| revision_row(r).into_domain(name).map(|r| r.info))
            .transpose()
    }

    #[instrument(skip_all, fields(partner = %update.name.partner.as_str(), environment = update.name.environment.as_str(), request_id = request.map(|r| r.id.to_string())), err(level = "debug"))]
    async fn save(
        &self,
        update: &Update,
        request: Option<&RequestKey>,
        actor: &str,
    ) -> Result<Saved, Error> {
        if request.is_none()
            && !update.needs_portal_users()
            && let Some(saved) = self.try_unlocked_update(update, actor).await?
        {
            return Ok(saved);
        }
        for _ in 0..MAX_ATTEMPTS {
            if let Some(saved) = self.try_update(update, request, actor).await? {
                return Ok(saved);
            }
        }
        Err(Error::Unavailable {
            detail: "update kept conflicting with concurrent updates".to_owned(),
        })
    }

    #[instrument(skip(self), fields(partner = %name.partner.as_str(), environment = name.environment.as_str()), err(level = "debug"))]
    async fn list_revisions(
        &self,
        name: &ContactInfoName,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Revision>, Error> {
        let sql = format!("{REVISION_COLUMNS} AND revision < $3 ORDER BY revision DESC LIMIT $4");
        let rows: Vec<PgRevisionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name.partner.as_str())
            .bind(name.environment.as_str())
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| to_error(&e, "list revisions"))?;
        rows.into_iter()
            .map(|r| revision_row(r).into_domain(name))
            .collect()
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
        events::lease(&self.pool, owner, lease, limit).await
    }

    #[instrument(skip(self), fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn mark_events_published(
        &self,
        partner: &PartnerId,
        owner: &str,
        through: i64,
        lease: Duration,
    ) -> Result<bool, Error> {
        events::mark_published(&self.pool, partner, owner, through, lease).await
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

    /// One statement: the challenges, their events, and (at commit) the
    /// other replicas told to drop what they cached of the partner.
    #[instrument(skip_all, fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn record_challenges(
        &self,
        partner: &PartnerId,
        challenges: &[NewChallenge],
        events: &[Event],
    ) -> Result<(), Error> {
        let mut tx = self.begin().await?;
        verify::record(&mut tx, partner, challenges, &EventRows::of(events)).await?;
        self.notify(&mut tx, &users_changed(partner)).await?;
        tx.commit().await.map_err(|e| to_error(&e, "commit"))
    }

    #[instrument(skip_all, fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn confirm_challenge(
        &self,
        partner: &PartnerId,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<(String, VerificationFacts)>, Error> {
        let mut tx = self.begin().await?;
        let confirmed = verify::confirm(&mut tx, partner, hash, now).await?;
        if confirmed.is_some() {
            self.notify(&mut tx, &users_changed(partner)).await?;
        }
        tx.commit().await.map_err(|e| to_error(&e, "commit"))?;
        Ok(confirmed)
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

    #[instrument(skip(self, after), fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn list_portal_users(
        &self,
        partner: &PartnerId,
        after: Option<&UserCursor>,
        limit: usize,
    ) -> Result<Vec<PortalUser>, Error> {
        let sql = format!(
            "{USER_COLUMNS} WHERE partner = $1
                 AND ($2::timestamptz IS NULL OR (create_time, id) > ($2, $3))
             ORDER BY create_time, id LIMIT $4"
        );
        let rows: Vec<PgUserRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(partner.as_str())
            .bind(after.map(|c| c.create_time))
            .bind(after.map(|c| c.id))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| to_error(&e, "list portal users"))?;
        rows.into_iter()
            .map(|r| user_row(r).into_domain())
            .collect()
    }

    #[instrument(skip(self), fields(partner = %partner.as_str()), err(level = "debug"))]
    async fn portal_user_emails(&self, partner: &PartnerId) -> Result<PortalUserEmails, Error> {
        let found = self.reads.get(ReadKey::Users(partner.clone())).await?;
        Ok(email_keys(found.and_then(|f| f.emails).unwrap_or_default()))
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

    fn pool_stats(&self) -> super::PoolStats {
        super::PoolStats {
            max: self.pool.options().get_max_connections(),
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            listener_reconnects: self.listener_reconnects(),
        }
    }

    fn spawn_change_listener(&self, feed: ChangeFeed) -> Option<tokio::task::JoinHandle<()>> {
        if !self.notify {
            return None;
        }
        Some(tokio::spawn(listen_forever(
            self.pool.clone(),
            feed,
            self.listener_reconnects.clone(),
        )))
    }
}
