//! Storage: one trait, one backend per file (PostgreSQL in production, SQLite embedded).
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{
    ContactInfo, ContactInfoName, Email, Event, PartnerId, PartnerVerifications, PortalRole,
    PortalUser, PortalUserChange, PortalUserEmails, PortalUserName, RekeyReport, Revision, Update,
    VerificationFacts, change_role, grant, now_micros, revoke,
};
use crate::error::Error;
use crate::wire::Ready;

pub mod cached;
pub mod changes;
mod classify;
mod coalesce;
mod outbox;
pub mod postgres;
mod requests;
mod rows;
pub mod sqlite;
mod url;

pub use cached::{CacheOptions, CacheStats, CachedStore};
pub use changes::{Change, ChangeFeed};
pub use outbox::StoredEvent;
pub use postgres::PostgresStore;
pub use requests::{REQUEST_ID_RETENTION, RequestKey};
/// The stores' JSON of contact fields, for the fuzz harness's round trip.
pub(crate) use rows::encode_fields;
pub use sqlite::SqliteStore;
pub use url::{describe_url, prepare_sqlite_dir};

/// Where contact information, its history and portal users are kept.
///
/// Every write is one transaction: concurrent updates carrying the same etag
/// can never both succeed, and a partner never loses its last administrator.
#[async_trait]
pub trait ContactStore: Send + Sync + std::fmt::Debug + 'static {
    /// "postgres" or "sqlite", for logs.
    fn backend(&self) -> &'static str;

    /// Cheap reachability check, for health. Health bounds it with its own
    /// timeout, so it must be safe to cancel at any await.
    async fn ping(&self) -> Result<(), Error>;

    async fn get(&self, name: &ContactInfoName) -> Result<Option<ContactInfo>, Error>;

    /// The contact info's ready form (what GetContacts sends): one lookup,
    /// with nothing to decode unless an older release saved the row.
    async fn get_ready(&self, name: &ContactInfoName) -> Result<Option<Ready>, Error>;

    /// The ready form and the partner's portal users' email keys, in one
    /// round trip: what the gate and ResolveRecipients read on a cache miss.
    /// `None` when nothing is saved (the users do not matter then).
    async fn get_ready_and_users(
        &self,
        name: &ContactInfoName,
    ) -> Result<Option<(Ready, PortalUserEmails)>, Error>;

    /// Writes the ready form of rows that lack a current one (saved by a
    /// release before it, or by an older release during a rollout), at most
    /// `batch` rows per transaction. Run by `migrate`. A row whose stored
    /// fields do not decode is skipped and reported, not retried: one bad
    /// row must not stop every start from writing the forms after it.
    async fn backfill_ready(&self, batch: usize) -> Result<Backfill, Error>;

    /// The contact info as it was at `at`: its newest revision saved at or
    /// before then.
    async fn get_at(
        &self,
        name: &ContactInfoName,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactInfo>, Error>;

    /// Applies `update` as `actor`, records the revision, and returns the
    /// resource as saved. With `request`, a retry of an already-saved request
    /// returns the first result unchanged, and a reuse of its id for another
    /// request is INVALID_ARGUMENT. Alert contacts named by the mask must be
    /// portal users of the partner (FAILED_PRECONDITION). The save's events
    /// (`domain::save_events`) are written in its transaction.
    async fn update(
        &self,
        update: &Update,
        request: Option<&RequestKey>,
        actor: &str,
    ) -> Result<ContactInfo, Error> {
        self.save(update, request, actor).await.map(|s| s.info)
    }

    /// [`Self::update`], with the partner's verification facts read in the
    /// same transaction, so that the cache can hold the saved form without
    /// another read.
    async fn save(
        &self,
        update: &Update,
        request: Option<&RequestKey>,
        actor: &str,
    ) -> Result<Saved, Error>;

    /// Revisions older than revision `before` (all when `None`), newest
    /// first, at most `limit`.
    async fn list_revisions(
        &self,
        name: &ContactInfoName,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Revision>, Error>;

    /// The partner's events numbered after `after`, oldest first, at most
    /// `limit`.
    async fn list_events(
        &self,
        partner: &PartnerId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, Error>;

    /// Leases to the relay `owner`, for `lease`, up to `limit` partners whose
    /// events are not all published and whom no other relay holds an
    /// unexpired lease on (one that died is taken over when its lease ends).
    /// Returns each with the last sequence published.
    async fn lease_event_partners(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<(PartnerId, i64)>, Error>;

    /// Records that `owner` published `partner`'s events through `through`
    /// and renews its lease; `false` (nothing recorded) when the lease is no
    /// longer `owner`'s.
    async fn mark_events_published(
        &self,
        partner: &PartnerId,
        owner: &str,
        through: i64,
        lease: Duration,
    ) -> Result<bool, Error>;

    /// Gives up `owner`'s lease on `partner`.
    async fn release_event_partner(&self, partner: &PartnerId, owner: &str) -> Result<(), Error>;

    /// When the oldest event not yet published was saved, if any: the
    /// relay's lag.
    async fn oldest_unpublished_event(&self) -> Result<Option<DateTime<Utc>>, Error>;

    /// Deletes events published before `before`; returns how many.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, Error>;

    /// The partner's verification facts, one per mailbox ever challenged.
    async fn verifications(&self, partner: &PartnerId) -> Result<PartnerVerifications, Error>;

    /// Records a new challenge for each address (its hash and expiry,
    /// replacing any outstanding one) and writes `events` (their
    /// `verification.requested`), in one transaction.
    async fn record_challenges(
        &self,
        partner: &PartnerId,
        challenges: &[NewChallenge],
        events: &[Event],
    ) -> Result<(), Error>;

    /// Uses the partner's outstanding challenge whose hash is `hash` if it
    /// has not expired by `now`: its address is verified at `now`. Returns
    /// the address (as last challenged) and its facts; `None` when no such
    /// challenge is outstanding (wrong, used, expired or replaced: callers
    /// must not tell which).
    async fn confirm_challenge(
        &self,
        partner: &PartnerId,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<(String, VerificationFacts)>, Error>;

    /// Forgets request ids recorded before `before`; returns how many.
    async fn purge_request_ids(&self, before: DateTime<Utc>) -> Result<u64, Error>;

    /// Portal users in grant order, after `after` (create time, id), at most
    /// `limit`.
    async fn list_portal_users(
        &self,
        partner: &PartnerId,
        after: Option<&UserCursor>,
        limit: usize,
    ) -> Result<Vec<PortalUser>, Error>;

    /// The email comparison keys of the partner's portal users.
    async fn portal_user_emails(&self, partner: &PartnerId) -> Result<PortalUserEmails, Error>;

    /// One change to `partner`'s portal users, in one transaction: the
    /// backend locks and loads them, `decide` (a domain rule, no I/O) says
    /// what changes, and the backend writes that with its revision and its
    /// event, and tells the other replicas. Returns the user after the change (as it was, for
    /// a revoke).
    async fn mutate_portal_users(
        &self,
        partner: &PartnerId,
        actor: &str,
        decide: UserDecision<'_>,
    ) -> Result<PortalUser, Error>;

    /// ALREADY_EXISTS for a mailbox that has access; FAILED_PRECONDITION when
    /// the partner's first user would not be an administrator.
    async fn grant_portal_access(
        &self,
        partner: &PartnerId,
        email: &Email,
        role: PortalRole,
        actor: &str,
    ) -> Result<PortalUser, Error> {
        let (id, now) = (uuid::Uuid::new_v4(), now_micros());
        let decide = move |users: &[PortalUser]| grant(users, partner, email, role, id, now);
        self.mutate_portal_users(partner, actor, Box::new(decide))
            .await
    }

    /// NOT_FOUND for an unknown user; FAILED_PRECONDITION when no
    /// administrator would remain.
    async fn update_portal_user_role(
        &self,
        name: &PortalUserName,
        role: PortalRole,
        actor: &str,
    ) -> Result<PortalUser, Error> {
        let now = now_micros();
        let decide = move |users: &[PortalUser]| change_role(users, name, role, now);
        self.mutate_portal_users(&name.partner, actor, Box::new(decide))
            .await
    }

    /// NOT_FOUND for an unknown user; FAILED_PRECONDITION when no
    /// administrator would remain.
    async fn revoke_portal_access(&self, name: &PortalUserName, actor: &str) -> Result<(), Error> {
        let decide = move |users: &[PortalUser]| revoke(users, name);
        self.mutate_portal_users(&name.partner, actor, Box::new(decide))
            .await
            .map(drop)
    }

    /// The connection pool now, for metrics.
    fn pool_stats(&self) -> PoolStats {
        PoolStats::default()
    }

    /// Starts forwarding changes made by other processes into `feed`, where
    /// the backend can see them (PostgreSQL LISTEN/NOTIFY). SQLite is only
    /// ever written by this process, so it has nothing to listen to.
    fn spawn_change_listener(&self, _feed: ChangeFeed) -> Option<tokio::task::JoinHandle<()>> {
        None
    }
}

/// What a save returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    /// The resource as saved (for a replayed request, as first saved).
    pub info: ContactInfo,
    /// The partner's verification facts at the save; `None` for a replayed
    /// request, which reads nothing.
    pub verifications: Option<PartnerVerifications>,
}

/// A challenge SendVerification issues to one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChallenge {
    pub email: Email,
    pub hash: [u8; 32],
    pub create_time: DateTime<Utc>,
    pub expire_time: DateTime<Utc>,
}

/// What [`ContactStore::mutate_portal_users`] asks the domain: given the
/// partner's users, what changes (or why nothing may).
pub type UserDecision<'a> =
    Box<dyn FnOnce(&[PortalUser]) -> Result<PortalUserChange, Error> + Send + 'a>;

/// What [`ContactStore::backfill_ready`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backfill {
    /// Ready forms written.
    pub written: u64,
    /// Rows skipped because their stored fields do not decode (reads of
    /// them fail as well, until they are repaired).
    pub undecodable: u64,
    /// The first of those rows (`partner/environment` as stored), at most
    /// [`Backfill::NAMED`], for the operator's log.
    pub undecodable_rows: Vec<String>,
}

impl Backfill {
    /// How many undecodable rows a report names.
    pub const NAMED: usize = 20;

    /// Records a row skipped because `error` says its fields do not decode;
    /// the first [`Backfill::NAMED`] are logged with the error (a table of
    /// broken rows must not flood the log).
    pub fn skip(&mut self, partner: &str, environment: &str, error: &Error) {
        self.undecodable += 1;
        if self.undecodable_rows.len() < Self::NAMED {
            tracing::warn!(
                partner,
                environment,
                "cannot write the ready form of a row whose stored fields do not decode: {error}"
            );
            self.undecodable_rows
                .push(format!("{partner}/{environment}"));
        }
    }
}

/// A backend's connection pool and change listener, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    pub max: u32,
    pub size: u32,
    pub idle: u32,
    pub listener_reconnects: u64,
}

/// Where a page of portal users ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCursor {
    pub create_time: DateTime<Utc>,
    pub id: uuid::Uuid,
}

pub type DynStore = Arc<dyn ContactStore>;

/// Opens the store a database URL names, and migrates it; what the
/// migration found for the operator is logged as warnings.
/// `postgres://` or `postgresql://` select PostgreSQL; `sqlite:` selects SQLite.
pub async fn open(url: &str, options: &StoreOptions) -> Result<DynStore, String> {
    let (store, report) = open_reporting(url, options).await?;
    for line in report.lines() {
        tracing::warn!("{line}");
    }
    Ok(store)
}

/// [`open`], handing back what the migration found instead of logging it.
pub async fn open_reporting(
    url: &str,
    options: &StoreOptions,
) -> Result<(DynStore, RekeyReport), String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = PostgresStore::connect(url, options).await?;
        let report = store.migrate().await?;
        Ok((Arc::new(store), report))
    } else if url.starts_with("sqlite:") {
        let store = SqliteStore::connect(url, options).await?;
        let report = store.migrate().await?;
        Ok((Arc::new(store), report))
    } else {
        Err("the database URL must start with postgres://, postgresql:// or sqlite:".to_owned())
    }
}

/// Pool and timeout settings shared by both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long a call waits for a connection before failing UNAVAILABLE.
    pub acquire_timeout: Duration,
    /// PostgreSQL `statement_timeout`: no query outlives the calls it serves.
    pub statement_timeout: Duration,
    /// PostgreSQL: send a NOTIFY with every write and LISTEN for the others'.
    /// Off for databases or poolers without LISTEN/NOTIFY (PgBouncer in
    /// transaction mode, PostgreSQL-compatible distributed databases); caches
    /// then rely on their time to live alone.
    pub notify: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
            notify: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Backfill;
    use crate::error::Error;

    #[test]
    fn a_backfill_report_names_only_the_first_undecodable_rows() {
        let mut report = Backfill::default();
        let error = Error::Internal {
            detail: "stored fields are invalid".into(),
        };
        for i in 0..Backfill::NAMED + 5 {
            report.skip(&format!("p{i}"), "production", &error);
        }
        assert_eq!(report.undecodable, (Backfill::NAMED + 5) as u64);
        assert_eq!(report.undecodable_rows.len(), Backfill::NAMED);
        assert_eq!(report.undecodable_rows[0], "p0/production");
        assert_eq!(report.written, 0);
    }
}
