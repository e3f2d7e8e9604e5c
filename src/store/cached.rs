//! A bounded in-process cache in front of any store: reads of contact info and
//! portal-user emails (what GetContacts, CheckOnboardingGate and
//! ResolveRecipients need) are served from memory, writes update it at once
//! (a replica always reads its own writes), and the change feed invalidates it
//! for writes made elsewhere.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use moka::sync::Cache;
use tokio::sync::broadcast::error::RecvError;

use super::changes::{Change, ChangeFeed};
use super::{ContactStore, DynStore, RequestKey, UserCursor};
use crate::domain::{
    ContactInfo, ContactInfoName, Email, PartnerId, PortalRole, PortalUser, PortalUserEmails,
    PortalUserName, Revision, Update,
};
use crate::error::Error;

/// Cache sizes and lifetimes.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Approximate bytes each cache may hold (contact infos; partners' user
    /// lists): bounded by memory, not entries, since a contact info ranges
    /// from a few hundred bytes to tens of kilobytes. 0 disables caching.
    pub max_bytes: u64,
    /// A safety net only: invalidation is by change notification.
    pub time_to_live: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            time_to_live: Duration::from_secs(300),
        }
    }
}

/// Roughly what an entry costs in memory: its strings plus fixed overheads.
fn contact_info_weight(_: &ContactInfoName, info: &Option<Arc<ContactInfo>>) -> u32 {
    let Some(info) = info else { return 96 };
    let contacts: usize = crate::domain::Field::ALL
        .iter()
        .filter_map(|f| info.fields.contacts(*f))
        .flatten()
        .map(|c| {
            96 + c.email.as_str().len()
                + c.display_name.as_ref().map_or(0, |d| d.as_str().len())
                + c.phone_number.as_ref().map_or(0, |p| p.as_str().len())
                + c.language_code.as_ref().map_or(0, |l| l.as_str().len())
        })
        .sum();
    let windows = match &info.fields.operational_support {
        Some(crate::domain::OperationalSupport::Windows(ws)) => ws.len() * 96,
        _ => 0,
    };
    u32::try_from(320 + contacts + windows).unwrap_or(u32::MAX)
}

fn users_weight(_: &PartnerId, users: &Arc<PortalUserEmails>) -> u32 {
    let bytes: usize = users.iter().map(|e| 48 + e.len()).sum();
    u32::try_from(96 + bytes).unwrap_or(u32::MAX)
}

#[derive(Debug)]
pub struct CachedStore {
    inner: DynStore,
    /// Changes after they took effect here: a subscriber that re-reads on a
    /// change reads the new state, never a stale cache entry.
    applied: ChangeFeed,
    contacts: Cache<ContactInfoName, Option<Arc<ContactInfo>>>,
    users: Cache<PartnerId, Arc<PortalUserEmails>>,
    /// Bumped before every invalidation. A read that started before a bump
    /// may have seen the old row, so its result is not cached.
    epoch: AtomicU64,
}

impl CachedStore {
    /// Wraps `inner`, and follows the changes other processes make to it
    /// (PostgreSQL) for as long as the store lives.
    pub fn new(inner: DynStore, options: &CacheOptions) -> Arc<Self> {
        let incoming = ChangeFeed::default();
        let mut changes = incoming.subscribe();
        let listener = inner.spawn_change_listener(incoming);
        let store = Arc::new(Self {
            inner,
            contacts: Cache::builder()
                .max_capacity(options.max_bytes)
                .weigher(contact_info_weight)
                .time_to_live(options.time_to_live)
                .build(),
            users: Cache::builder()
                .max_capacity(options.max_bytes)
                .weigher(users_weight)
                .time_to_live(options.time_to_live)
                .build(),
            epoch: AtomicU64::new(0),
            applied: ChangeFeed::default(),
        });
        let weak = Arc::downgrade(&store);
        tokio::spawn(async move {
            loop {
                let change = match changes.recv().await {
                    Ok(change) => change,
                    Err(RecvError::Lagged(_)) => Change::Resync,
                    Err(RecvError::Closed) => break,
                };
                let Some(store) = weak.upgrade() else { break };
                store.apply(&change);
                store.applied.publish(change);
            }
            if let Some(listener) = listener {
                listener.abort();
            }
        });
        store
    }

    /// Changes, once this cache reflects them.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.applied.subscribe()
    }

    fn apply(&self, change: &Change) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match change {
            Change::ContactInfo { name, revision } => {
                // Our own writes come back as notifications too; an entry at
                // least that new stays.
                let current = self
                    .contacts
                    .get(name)
                    .and_then(|v| v.as_ref().map(|i| i.revision));
                if current.is_none_or(|r| r < *revision) {
                    self.contacts.invalidate(name);
                }
            }
            Change::PortalUsers { partner } => self.users.invalidate(partner),
            Change::Resync => {
                self.contacts.invalidate_all();
                self.users.invalidate_all();
            }
        }
    }
}

#[async_trait]
impl ContactStore for CachedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    async fn ping(&self) -> Result<(), Error> {
        self.inner.ping().await
    }

    async fn get(&self, name: &ContactInfoName) -> Result<Option<ContactInfo>, Error> {
        if let Some(hit) = self.contacts.get(name) {
            return Ok(hit.as_deref().cloned());
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let found = self.inner.get(name).await?;
        if self.epoch.load(Ordering::SeqCst) == epoch {
            self.contacts
                .insert(name.clone(), found.clone().map(Arc::new));
        }
        Ok(found)
    }

    async fn get_at(
        &self,
        name: &ContactInfoName,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactInfo>, Error> {
        self.inner.get_at(name, at).await
    }

    async fn update(
        &self,
        update: &Update,
        request: Option<&RequestKey>,
        actor: &str,
    ) -> Result<ContactInfo, Error> {
        let saved = self.inner.update(update, request, actor).await?;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        // A replayed request may return an older revision than the cache has.
        let newer = self
            .contacts
            .get(&saved.name)
            .and_then(|v| v.as_ref().map(|i| i.revision))
            .is_none_or(|r| r < saved.revision);
        if newer {
            self.contacts
                .insert(saved.name.clone(), Some(Arc::new(saved.clone())));
        }
        self.applied.publish(Change::ContactInfo {
            name: saved.name.clone(),
            revision: saved.revision,
        });
        Ok(saved)
    }

    async fn list_revisions(
        &self,
        name: &ContactInfoName,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Revision>, Error> {
        self.inner.list_revisions(name, before, limit).await
    }

    async fn purge_request_ids(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        self.inner.purge_request_ids(before).await
    }

    async fn list_portal_users(
        &self,
        partner: &PartnerId,
        after: Option<&UserCursor>,
        limit: usize,
    ) -> Result<Vec<PortalUser>, Error> {
        self.inner.list_portal_users(partner, after, limit).await
    }

    async fn portal_user_emails(&self, partner: &PartnerId) -> Result<PortalUserEmails, Error> {
        if let Some(hit) = self.users.get(partner) {
            return Ok((*hit).clone());
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let found = self.inner.portal_user_emails(partner).await?;
        if self.epoch.load(Ordering::SeqCst) == epoch {
            self.users.insert(partner.clone(), Arc::new(found.clone()));
        }
        Ok(found)
    }

    async fn grant_portal_access(
        &self,
        partner: &PartnerId,
        email: &Email,
        role: PortalRole,
        actor: &str,
    ) -> Result<PortalUser, Error> {
        let user = self
            .inner
            .grant_portal_access(partner, email, role, actor)
            .await?;
        self.users_changed(partner);
        Ok(user)
    }

    async fn update_portal_user_role(
        &self,
        name: &PortalUserName,
        role: PortalRole,
        actor: &str,
    ) -> Result<PortalUser, Error> {
        let user = self
            .inner
            .update_portal_user_role(name, role, actor)
            .await?;
        self.users_changed(&name.partner);
        Ok(user)
    }

    async fn revoke_portal_access(&self, name: &PortalUserName, actor: &str) -> Result<(), Error> {
        self.inner.revoke_portal_access(name, actor).await?;
        self.users_changed(&name.partner);
        Ok(())
    }
}

impl CachedStore {
    fn users_changed(&self, partner: &PartnerId) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.users.invalidate(partner);
        self.applied.publish(Change::PortalUsers {
            partner: partner.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ContactFields, Environment, FieldSet};
    use crate::store::StoreOptions;

    fn name(i: usize) -> ContactInfoName {
        ContactInfoName::new(
            PartnerId::parse(&format!("p{i}")).expect("partner"),
            Environment::Sandbox,
        )
    }

    #[tokio::test]
    async fn memory_stays_within_the_byte_budget() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite:{}", dir.path().join("c.sqlite3").display());
        let inner = crate::store::open(&url, &StoreOptions::default())
            .await
            .expect("open");
        let budget = 16 * 1024;
        let cache = CachedStore::new(
            inner,
            &CacheOptions {
                max_bytes: budget,
                ..Default::default()
            },
        );
        for i in 0..200 {
            let update = Update {
                name: name(i),
                patch: ContactFields::default(),
                mask: FieldSet::all(),
                expected_etag: None,
            };
            cache.update(&update, None, "test").await.expect("save");
            assert!(cache.get(&name(i)).await.expect("get").is_some());
        }
        cache.contacts.run_pending_tasks();
        assert!(
            cache.contacts.weighted_size() <= budget,
            "{} bytes cached",
            cache.contacts.weighted_size()
        );
        assert!(cache.contacts.entry_count() > 0);
        // Evicted entries are read from the store again.
        assert!(cache.get(&name(0)).await.expect("get").is_some());
    }
}
