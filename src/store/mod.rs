//! Storage: one trait, one backend per file (PostgreSQL in production, SQLite embedded).
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{
    ContactFields, ContactInfo, ContactInfoName, Email, Environment, Field, FieldSet, PartnerId,
    PortalRole, PortalUser, PortalUserEmails, PortalUserName, RekeyReport, Revision, Update,
};
use crate::error::{Error, FieldViolation, InvalidReason};

pub mod cached;
pub mod changes;
mod classify;
pub mod postgres;
pub mod sqlite;

pub use cached::{CacheOptions, CacheStats, CachedStore};
pub use changes::{Change, ChangeFeed};
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// How long a `request_id` is remembered. The API promises at least 24 hours.
pub const REQUEST_ID_RETENTION: chrono::Duration = chrono::Duration::hours(48);

/// Identifies one UpdateContacts request for safe retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKey {
    /// The caller's `request_id`, as the revision history shows it.
    pub id: uuid::Uuid,
    /// Where the request is recorded: the id scoped to the partner, so that
    /// the same id sent for another partner is another request, neither
    /// refused nor told apart from a fresh one.
    pub slot: uuid::Uuid,
    /// A digest of the whole request: the same id with another digest is a
    /// reuse, not a retry.
    pub fingerprint: [u8; 32],
}

impl RequestKey {
    pub fn new(partner: &PartnerId, id: uuid::Uuid, fingerprint: [u8; 32]) -> Self {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        // Versioned and separated, so no other input can give the same slot.
        h.update(b"partner-contacts request_id slot v1\0");
        h.update(partner.as_str().as_bytes());
        h.update(b"\0");
        h.update(id.as_bytes());
        let digest = h.finalize();
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self {
            id,
            slot: uuid::Builder::from_custom_bytes(bytes).into_uuid(),
            fingerprint,
        }
    }
}

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
    /// portal users of the partner (FAILED_PRECONDITION).
    async fn update(
        &self,
        update: &Update,
        request: Option<&RequestKey>,
        actor: &str,
    ) -> Result<ContactInfo, Error>;

    /// Revisions older than revision `before` (all when `None`), newest
    /// first, at most `limit`.
    async fn list_revisions(
        &self,
        name: &ContactInfoName,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Revision>, Error>;

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

    /// The lower-cased emails of the partner's portal users.
    async fn portal_user_emails(&self, partner: &PartnerId) -> Result<PortalUserEmails, Error>;

    /// ALREADY_EXISTS for an email that has access; FAILED_PRECONDITION when
    /// the partner's first user would not be an administrator.
    async fn grant_portal_access(
        &self,
        partner: &PartnerId,
        email: &Email,
        role: PortalRole,
        actor: &str,
    ) -> Result<PortalUser, Error>;

    /// NOT_FOUND for an unknown user; FAILED_PRECONDITION when no
    /// administrator would remain.
    async fn update_portal_user_role(
        &self,
        name: &PortalUserName,
        role: PortalRole,
        actor: &str,
    ) -> Result<PortalUser, Error>;

    /// NOT_FOUND for an unknown user; FAILED_PRECONDITION when no
    /// administrator would remain.
    async fn revoke_portal_access(&self, name: &PortalUserName, actor: &str) -> Result<(), Error>;

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
    pub acquire_timeout: std::time::Duration,
    /// PostgreSQL `statement_timeout`: no query outlives the calls it serves.
    pub statement_timeout: std::time::Duration,
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
            acquire_timeout: std::time::Duration::from_secs(3),
            statement_timeout: std::time::Duration::from_secs(5),
            notify: true,
        }
    }
}

/// The row both backends keep per contact info, decoded.
pub(crate) struct Row {
    pub partner: String,
    pub environment: String,
    pub revision: i64,
    pub etag: String,
    pub fields: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl Row {
    pub(crate) fn into_domain(self) -> Result<ContactInfo, Error> {
        let partner = PartnerId::parse(&self.partner)
            .map_err(|_| internal("stored partner id is invalid"))?;
        let environment = Environment::parse(&self.environment)
            .ok_or_else(|| internal("stored environment is invalid"))?;
        Ok(ContactInfo {
            name: ContactInfoName::new(partner, environment),
            fields: decode_fields(&self.fields)?,
            revision: self.revision,
            etag: self.etag,
            create_time: self.create_time,
            update_time: self.update_time,
        })
    }
}

pub(crate) fn encode_fields(fields: &ContactFields) -> Result<String, Error> {
    serde_json::to_string(fields).map_err(|_| internal("could not encode contact fields"))
}

fn decode_fields(text: &str) -> Result<ContactFields, Error> {
    serde_json::from_str(text).map_err(|_| internal("stored contact fields do not decode"))
}

/// What a request record keeps: the response of the first call.
#[derive(Serialize, Deserialize)]
struct RecordedResponse {
    partner: String,
    environment: Environment,
    revision: i64,
    etag: String,
    fields: ContactFields,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

pub(crate) fn encode_response(info: &ContactInfo) -> Result<String, Error> {
    serde_json::to_string(&RecordedResponse {
        partner: info.name.partner.as_str().to_owned(),
        environment: info.name.environment,
        revision: info.revision,
        etag: info.etag.clone(),
        fields: info.fields.clone(),
        create_time: info.create_time,
        update_time: info.update_time,
    })
    .map_err(|_| internal("could not encode the recorded response"))
}

/// Checks a recorded request against a retry and returns the first result.
pub(crate) fn replay(
    key: &RequestKey,
    fingerprint: &[u8],
    response: Option<&str>,
) -> Result<ContactInfo, Error> {
    if fingerprint != key.fingerprint {
        return Err(Error::InvalidArgument {
            reason: InvalidReason::RequestIdReused,
            violations: vec![FieldViolation::new(
                "request_id",
                "was already used for a different request; use a new request_id for a new request",
            )],
        });
    }
    let text = response.ok_or_else(|| internal("recorded request has no response"))?;
    let r: RecordedResponse =
        serde_json::from_str(text).map_err(|_| internal("recorded response does not decode"))?;
    let partner =
        PartnerId::parse(&r.partner).map_err(|_| internal("recorded partner id is invalid"))?;
    Ok(ContactInfo {
        name: ContactInfoName::new(partner, r.environment),
        fields: r.fields,
        revision: r.revision,
        etag: r.etag,
        create_time: r.create_time,
        update_time: r.update_time,
    })
}

pub(crate) fn internal(detail: &str) -> Error {
    Error::Internal {
        detail: detail.to_owned(),
    }
}

/// A revision row of either backend, decoded.
pub(crate) struct RevisionRow {
    pub revision: i64,
    pub actor: String,
    pub request_id: Option<uuid::Uuid>,
    pub changed_fields: String,
    pub etag: String,
    pub fields: String,
    pub resource_create_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
}

impl RevisionRow {
    pub(crate) fn into_domain(self, name: &ContactInfoName) -> Result<Revision, Error> {
        let changed = self
            .changed_fields
            .split_ascii_whitespace()
            .map(|f| Field::parse(f).ok_or_else(|| internal("stored changed field is unknown")))
            .collect::<Result<FieldSet, Error>>()?;
        Ok(Revision {
            info: ContactInfo {
                name: name.clone(),
                fields: decode_fields(&self.fields)?,
                revision: self.revision,
                etag: self.etag,
                create_time: self.resource_create_time,
                update_time: self.create_time,
            },
            actor: self.actor,
            request_id: self.request_id,
            changed,
        })
    }
}

pub(crate) fn encode_changed(changed: FieldSet) -> String {
    changed
        .iter()
        .map(Field::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fields a save changed: everything provided, for a create.
pub(crate) fn changed_by(current: Option<&ContactInfo>, next: &ContactInfo) -> FieldSet {
    match current {
        Some(c) => c.fields.changed_fields(&next.fields),
        None => ContactFields::default().changed_fields(&next.fields),
    }
}

/// A portal user row of either backend, decoded.
pub(crate) struct UserRow {
    pub partner: String,
    pub id: uuid::Uuid,
    pub email: String,
    pub role: String,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
}

impl UserRow {
    pub(crate) fn into_domain(self) -> Result<PortalUser, Error> {
        Ok(PortalUser {
            name: PortalUserName {
                partner: PartnerId::parse(&self.partner)
                    .map_err(|_| internal("stored partner id is invalid"))?,
                id: self.id,
            },
            email: Email::parse_stored(self.email)
                .map_err(|_| internal("stored email is invalid"))?,
            role: PortalRole::parse(&self.role)
                .ok_or_else(|| internal("stored role is invalid"))?,
            create_time: self.create_time,
            update_time: self.update_time,
        })
    }
}

/// What a portal-user revision keeps of the user.
#[derive(Serialize)]
struct RecordedUser<'a> {
    name: String,
    email: &'a str,
    role: PortalRole,
    create_time: DateTime<Utc>,
    update_time: DateTime<Utc>,
}

pub(crate) fn encode_user(user: &PortalUser) -> Result<String, Error> {
    serde_json::to_string(&RecordedUser {
        name: user.name.to_string(),
        email: user.email.as_str(),
        role: user.role,
        create_time: user.create_time,
        update_time: user.update_time,
    })
    .map_err(|_| internal("could not encode the portal user revision"))
}

/// Administrators left once `target`'s role becomes `new_role` (`None`:
/// removed), given every user's (id, role).
pub(crate) fn administrators_after(
    users: &[(uuid::Uuid, PortalRole)],
    target: uuid::Uuid,
    new_role: Option<PortalRole>,
) -> usize {
    users
        .iter()
        .map(|(id, role)| if *id == target { new_role } else { Some(*role) })
        .filter(|r| *r == Some(PortalRole::Administrator))
        .count()
}

pub(crate) fn last_administrator(
    users: &[(uuid::Uuid, PortalRole)],
    target: uuid::Uuid,
    new_role: Option<PortalRole>,
) -> Result<(), Error> {
    crate::domain::check_administrators_remain(administrators_after(users, target, new_role))
        .map_err(|v| Error::FailedPrecondition {
            violations: vec![v],
        })
}

pub(crate) fn first_user_must_administer(existing: usize, role: PortalRole) -> Result<(), Error> {
    if existing == 0 && role != PortalRole::Administrator {
        return Err(Error::FailedPrecondition {
            violations: vec![crate::error::PreconditionViolation {
                kind: "FIRST_USER_MUST_BE_ADMINISTRATOR",
                subject: "portal_user.role".to_owned(),
                description: "the first portal user of a partner must be an ADMINISTRATOR"
                    .to_owned(),
            }],
        });
    }
    Ok(())
}

pub(crate) fn user_not_found(name: &PortalUserName) -> Error {
    Error::NotFound {
        resource_type: crate::error::PORTAL_USER_TYPE,
        name: name.to_string(),
    }
}

pub(crate) fn user_exists(partner: &PartnerId) -> Error {
    // The message names the partner, not the address: it is personal data.
    Error::AlreadyExists {
        name: format!(
            "a portal user with this email in partners/{}",
            partner.as_str()
        ),
    }
}

/// The file path of a `sqlite:` URL, or `None` for in-memory and other URLs.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then_some(path)
}

/// Creates the directory a SQLite database file will live in.
pub fn prepare_sqlite_dir(url: &str) -> Result<(), String> {
    let Some(parent) = sqlite_path(url).and_then(|p| std::path::Path::new(p).parent()) else {
        return Ok(());
    };
    if parent.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))
}

/// A database URL fit for logs: no user name or password.
pub fn describe_url(url: &str) -> String {
    if let Some(path) = sqlite_path(url) {
        return format!("sqlite {path}");
    }
    if url.starts_with("sqlite:") {
        return "sqlite in memory".to_owned();
    }
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[scheme_end..];
    let host_and_db = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host_and_db = host_and_db.split('?').next().unwrap_or(host_and_db);
    format!("postgres {host_and_db}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_described_without_credentials() {
        assert_eq!(
            describe_url("postgres://app:s3cret@db.internal:5432/contacts?sslmode=require"),
            "postgres db.internal:5432/contacts"
        );
        assert_eq!(
            describe_url("sqlite:data/partner-contacts.sqlite3"),
            "sqlite data/partner-contacts.sqlite3"
        );
        assert_eq!(describe_url("sqlite::memory:"), "sqlite in memory");
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db?mode=rwc"),
            Some("/tmp/x.db")
        );
    }
}
