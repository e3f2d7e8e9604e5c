//! A bounded in-process cache in front of any store: reads of contact info and
//! portal-user emails (what GetContacts, CheckOnboardingGate and
//! ResolveRecipients need) are served from memory, writes update it at once
//! (a replica always reads its own writes), and the change feed invalidates it
//! for writes made elsewhere.
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use quick_cache::Equivalent;
use tokio::sync::broadcast::error::RecvError;

use super::changes::{Change, ChangeFeed};
use super::{
    ContactStore, DynStore, NewChallenge, RequestKey, Saved, StoredEvent, UserCursor, UserDecision,
};
use crate::domain::{
    ContactInfo, ContactInfoName, Environment, Event, PartnerId, PartnerVerifications, PortalUser,
    PortalUserEmails, Revision, Update, VerificationFacts,
};
use crate::error::Error;
use crate::wire::Ready;

/// Cache sizes and lifetimes.
#[derive(Debug, Clone)]
pub struct CacheOptions {
    /// Approximate heap bytes the cache may hold, contact infos and partners'
    /// user lists together: bounded by memory, not entries, since a contact
    /// info ranges from a few hundred bytes to tens of kilobytes. 0 disables
    /// caching.
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

/// What one cache holds: both kinds share one byte budget, so the operator's
/// `--cache-max-mb` is the whole cache, not a figure per kind.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Contacts(ContactInfoName),
    Users(PartnerId),
}

/// A key looked up by reference: a hit clones nothing (see `Equivalent`).
#[derive(Debug, Clone, Copy)]
enum KeyRef<'a> {
    Contacts(&'a ContactInfoName),
    Users(&'a PartnerId),
}

impl Key {
    fn as_ref(&self) -> KeyRef<'_> {
        match self {
            Self::Contacts(name) => KeyRef::Contacts(name),
            Self::Users(partner) => KeyRef::Users(partner),
        }
    }
}

// Key and KeyRef hash alike (the cache finds one by the other): both through
// KeyRef's.
impl Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Self::Contacts(name) => {
                state.write_u8(0);
                state.write(name.partner.as_str().as_bytes());
                state.write_u8(name.environment as u8);
            }
            Self::Users(partner) => {
                state.write_u8(1);
                state.write(partner.as_str().as_bytes());
            }
        }
    }
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        match (self, key) {
            (Self::Contacts(a), Key::Contacts(b)) => *a == b,
            (Self::Users(a), Key::Users(b)) => *a == b,
            _ => false,
        }
    }
}

/// An entry and when it stops being served (the time to live).
#[derive(Debug, Clone)]
struct Held {
    entry: Entry,
    expires: Instant,
}

#[derive(Debug, Clone, Copy)]
struct Weigher;

impl quick_cache::Weighter<Key, Held> for Weigher {
    fn weight(&self, key: &Key, value: &Held) -> u64 {
        u64::from(weigh::entry(key, &value.entry))
    }
}

type Cache = quick_cache::sync::Cache<Key, Held, Weigher, Hasher>;

#[derive(Debug, Clone)]
enum Entry {
    /// The ready form; `None`: known not to exist (the gate asks about
    /// partners that have saved nothing yet).
    Contacts(Option<Arc<Ready>>),
    Users(Arc<PortalUserEmails>),
}

type Hasher = foldhash::fast::RandomState;

/// What metrics report of the cache and the store behind it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheStats {
    pub pool: super::PoolStats,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub cache_bytes: u64,
    pub cache_entries: u64,
    pub calls_in_flight: u64,
}

/// The store behind the cache, for one call.
struct Database<'a> {
    store: &'a DynStore,
    in_flight: &'a AtomicU64,
}

impl std::ops::Deref for Database<'_> {
    type Target = DynStore;

    fn deref(&self) -> &DynStore {
        self.store
    }
}

impl Drop for Database<'_> {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub struct CachedStore {
    /// Reached only through `database()` (but for `ping`, which is how
    /// reachability is learnt, and metrics): every call then fails fast alike
    /// while the database is down.
    inner: DynStore,
    /// Changes after they took effect here: a subscriber that re-reads on a
    /// change reads the new state, never a stale cache entry.
    applied: ChangeFeed,
    cache: Cache,
    /// Bumped before every invalidation. A read that started before a bump
    /// may have seen the old row, so its result is not cached.
    epoch: AtomicU64,
    /// Bumped with every portal-user or verification change:
    /// a save that read a partner's verification facts before such a bump
    /// does not cache them (saves alone bump only `epoch`, which would make
    /// every save under load skip its entry).
    facts_epoch: AtomicU64,
    /// Held while an invalidation or a save bumps the epoch and changes
    /// entries, and while a read checks the epoch and inserts: each is then
    /// one step, so a read of the old row cannot land after a save's entry,
    /// nor an older save's entry after a newer one's. Never held across an
    /// await; hits never take it.
    writing: std::sync::Mutex<()>,
    /// How long an entry may be served; also how often a watch re-reads
    /// when no change notification woke it (`--change-feed ttl`).
    time_to_live: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Calls this cache has passed to the database and not yet had back.
    in_flight: AtomicU64,
    /// False while health's probe cannot reach the database: calls that need
    /// it fail at once with UNAVAILABLE instead of each waiting out the
    /// pool's acquire timeout. Cached reads are still answered.
    reachable: AtomicBool,
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
            cache: Cache::with(
                // What the table is sized for at first: entries of a typical
                // contact info's weight.
                usize::try_from(options.max_bytes / weigh::TYPICAL)
                    .unwrap_or(usize::MAX)
                    .max(1),
                options.max_bytes,
                Weigher,
                Hasher::default(),
                Default::default(),
            ),
            epoch: AtomicU64::new(0),
            facts_epoch: AtomicU64::new(0),
            writing: std::sync::Mutex::new(()),
            reachable: AtomicBool::new(true),
            time_to_live: options.time_to_live,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
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

    /// The cache's time to live: the longest another replica's write may go
    /// unseen here when no notification carries it.
    pub fn time_to_live(&self) -> Duration {
        self.time_to_live
    }

    /// Health's verdict on the database (see `reachable`).
    pub fn set_reachable(&self, reachable: bool) {
        self.reachable.store(reachable, Ordering::Relaxed);
    }

    /// Whether health's probe last found the database reachable.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// UNAVAILABLE at once while the database is known to be unreachable.
    /// The handle counts the call as in flight until it is dropped (the end
    /// of the statement that awaits the call).
    fn database(&self) -> Result<Database<'_>, Error> {
        if self.reachable.load(Ordering::Relaxed) {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
            Ok(Database {
                store: &self.inner,
                in_flight: &self.in_flight,
            })
        } else {
            Err(Error::Unavailable {
                detail: "the database cannot be reached".to_owned(),
            })
        }
    }

    /// Changes, once this cache reflects them.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<Change> {
        self.applied.subscribe()
    }

    /// The weight the cache holds now (approximate heap bytes): for tests
    /// and metrics.
    pub fn weighted_size(&self) -> u64 {
        self.cache.weight()
    }

    /// Counters and sizes for metrics.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            pool: self.inner.pool_stats(),
            cache_hits: self.hits.load(Ordering::Relaxed),
            cache_misses: self.misses.load(Ordering::Relaxed),
            cache_bytes: self.weighted_size(),
            cache_entries: self.entry_count(),
            calls_in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }

    /// Entries held now.
    pub fn entry_count(&self) -> u64 {
        u64::try_from(self.cache.len()).unwrap_or(u64::MAX)
    }

    /// The entry of `key` while its time to live lasts.
    fn cached(&self, key: KeyRef<'_>) -> Option<Entry> {
        self.cached_at(key, Instant::now())
    }

    /// `cached` as of `now`: a call that looks up two keys reads the clock
    /// once.
    fn cached_at(&self, key: KeyRef<'_>, now: Instant) -> Option<Entry> {
        let held = self.cache.get(&key)?;
        (held.expires > now).then_some(held.entry)
    }

    fn hold(&self, key: Key, entry: Entry) {
        let expires = Instant::now() + self.time_to_live;
        self.cache.insert(key, Held { entry, expires });
    }

    /// The contact info's ready form, from the cache or the database: the
    /// read path of every hot RPC, so a hit copies nothing.
    pub async fn ready(&self, name: &ContactInfoName) -> Result<Option<Ready>, Error> {
        Ok(self.ready_shared(name).await?.as_deref().cloned())
    }

    /// `ready`, shared with the cache.
    async fn ready_shared(&self, name: &ContactInfoName) -> Result<Option<Arc<Ready>>, Error> {
        let entry = self
            .read_through(KeyRef::Contacts(name), |db| async move {
                Ok(Entry::Contacts(db.get_ready(name).await?.map(Arc::new)))
            })
            .await?;
        match entry {
            Entry::Contacts(found) => Ok(found),
            Entry::Users(_) => Err(wrong_entry()),
        }
    }

    /// The ready form and the partner's portal users, with at most one
    /// round trip to the database whatever the cache holds: what the gate and
    /// ResolveRecipients read, both shared with the cache (a hit copies
    /// nothing). `None` when nothing is saved.
    pub async fn ready_and_users(
        &self,
        name: &ContactInfoName,
    ) -> Result<Option<(Arc<Ready>, Arc<PortalUserEmails>)>, Error> {
        let now = Instant::now();
        let cached_users = match self.cached_at(KeyRef::Users(&name.partner), now) {
            Some(Entry::Users(users)) => Some(users),
            _ => None,
        };
        let cached_ready = match self.cached_at(KeyRef::Contacts(name), now) {
            Some(Entry::Contacts(ready)) => Some(ready),
            _ => None,
        };
        match (cached_ready, cached_users) {
            (Some(None), _) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            (Some(Some(ready)), Some(users)) => {
                self.hits.fetch_add(2, Ordering::Relaxed);
                Ok(Some((ready, users)))
            }
            (Some(Some(ready)), None) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                let users = self.portal_user_emails_shared(&name.partner).await?;
                Ok(Some((ready, users)))
            }
            (None, Some(users)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(self.ready_shared(name).await?.map(|ready| (ready, users)))
            }
            (None, None) => {
                self.misses.fetch_add(2, Ordering::Relaxed);
                let epoch = self.epoch.load(Ordering::SeqCst);
                let found = self.database()?.get_ready_and_users(name).await?;
                let found = found.map(|(ready, mut users)| {
                    users.shrink_to_fit();
                    (Arc::new(ready), Arc::new(users))
                });
                let _writing = self.lock_writing();
                if self.epoch.load(Ordering::SeqCst) == epoch {
                    let ready = found.as_ref().map(|(r, _)| r.clone());
                    self.hold(Key::Contacts(name.clone()), Entry::Contacts(ready));
                    if let Some((_, users)) = &found {
                        self.hold(
                            Key::Users(name.partner.clone()),
                            Entry::Users(users.clone()),
                        );
                    }
                }
                Ok(found)
            }
        }
    }

    /// The partner's portal-user emails, shared with the cache.
    pub async fn portal_user_emails_shared(
        &self,
        partner: &PartnerId,
    ) -> Result<Arc<PortalUserEmails>, Error> {
        let entry = self
            .read_through(KeyRef::Users(partner), |db| async move {
                let mut found = db.portal_user_emails(partner).await?;
                found.shrink_to_fit();
                Ok(Entry::Users(Arc::new(found)))
            })
            .await?;
        match entry {
            Entry::Users(found) => Ok(found),
            Entry::Contacts(_) => Err(wrong_entry()),
        }
    }

    /// The cached entry of `key`, or what `load` reads from the database,
    /// cached unless a change was applied meanwhile (the read may have seen
    /// the state from before it).
    async fn read_through<'a, F, Fut>(&'a self, key: KeyRef<'_>, load: F) -> Result<Entry, Error>
    where
        F: FnOnce(Database<'a>) -> Fut,
        Fut: std::future::Future<Output = Result<Entry, Error>>,
    {
        if let Some(hit) = self.cached(key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let epoch = self.epoch.load(Ordering::SeqCst);
        let found = load(self.database()?).await?;
        let _writing = self.lock_writing();
        if self.epoch.load(Ordering::SeqCst) == epoch {
            let owned = match key {
                KeyRef::Contacts(name) => Key::Contacts(name.clone()),
                KeyRef::Users(partner) => Key::Users(partner.clone()),
            };
            self.hold(owned, found.clone());
        }
        Ok(found)
    }

    /// The revision cached for `name`, if any.
    fn cached_revision(&self, name: &ContactInfoName) -> Option<i64> {
        match self.cache.peek(&KeyRef::Contacts(name)).map(|h| h.entry) {
            Some(Entry::Contacts(Some(ready))) => Some(ready.revision()),
            _ => None,
        }
    }

    /// See `writing`. A panic while it was held left no half-made entry
    /// (every step under it is a single cache call), so a poisoned lock is
    /// taken as it is.
    fn lock_writing(&self) -> std::sync::MutexGuard<'_, ()> {
        self.writing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn apply(&self, change: &Change) {
        let _writing = self.lock_writing();
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match change {
            Change::ContactInfo { name, revision } => {
                // Our own writes come back as notifications too; an entry at
                // least that new stays.
                if self.cached_revision(name).is_none_or(|r| r < *revision) {
                    self.cache.remove(&KeyRef::Contacts(name));
                }
            }
            Change::PortalUsers { partner } => self.forget_partner(partner),
            // Not a facts change: a save in flight read its facts in its own
            // transaction, as fresh as any read after the resync would be.
            Change::Resync => self.cache.clear(),
        }
    }

    /// Drops the partner's users and, since they carry its verification
    /// facts, its contact infos: a portal-user or verification change.
    fn forget_partner(&self, partner: &PartnerId) {
        self.facts_epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.remove(&KeyRef::Users(partner));
        for environment in [Environment::Sandbox, Environment::Production] {
            let name = ContactInfoName::new(partner.clone(), environment);
            self.cache.remove(&KeyRef::Contacts(&name));
        }
    }

    fn users_changed(&self, partner: &PartnerId) {
        {
            let _writing = self.lock_writing();
            self.epoch.fetch_add(1, Ordering::SeqCst);
            self.forget_partner(partner);
        }
        self.applied.publish(Change::PortalUsers {
            partner: partner.clone(),
        });
    }
}

/// A cached copy, without spare capacity: what the weigher counts.
/// A key's entry is always of the key's kind; this answers the impossible.
fn wrong_entry() -> Error {
    Error::Internal {
        detail: "cache entry of another kind than its key".to_owned(),
    }
}

/// What an entry costs on the heap, counted the way the allocator sees it:
/// every allocation rounded up to its malloc chunk, plus the cache's own
/// per-entry bookkeeping. `tests/cache_memory.rs` checks it against a
/// counting allocator.
pub mod weigh {
    use super::{Entry, Held, Key};
    use crate::wire::Ready;

    /// quick_cache's bookkeeping per entry: its slab slot (the key, the
    /// value, the hash and the links) and its table's index, with room for
    /// the spare capacity both grow with.
    pub const PER_ENTRY: usize = 3 * (std::mem::size_of::<(Key, Held)>() + 24) / 2 + 16;

    /// A typical entry's weight (a contact info like the benchmark's), to
    /// size the table up front.
    pub const TYPICAL: u64 = 1024;

    /// A glibc malloc chunk for `n` requested bytes (16-byte granularity, 8
    /// bytes of header, 32 at least); nothing for an empty allocation.
    pub fn chunk(n: usize) -> usize {
        if n == 0 {
            0
        } else {
            ((n + 8 + 15) & !15).max(32)
        }
    }

    fn string(s: &str) -> usize {
        chunk(s.len())
    }

    /// The `Arc` holding it, its encoded bytes, and the `Bytes` header
    /// shared by its clones.
    fn ready(r: &Ready) -> usize {
        chunk(16 + std::mem::size_of::<Ready>()) + chunk(r.heap_bytes()) + chunk(32)
    }

    pub(super) fn entry(key: &Key, value: &Entry) -> u32 {
        let key_bytes = match key {
            Key::Contacts(name) => string(name.partner.as_str()),
            Key::Users(partner) => string(partner.as_str()),
        };
        let value_bytes = match value {
            Entry::Contacts(None) => 0,
            Entry::Contacts(Some(r)) => ready(r),
            Entry::Users(users) => {
                // hashbrown: one allocation of (capacity x (slot + control byte)).
                let slots = users.capacity().max(users.len());
                chunk(16 + std::mem::size_of::<super::PortalUserEmails>())
                    + chunk(slots * (std::mem::size_of::<String>() + 1) + 16)
                    + users.iter().map(|e| string(e)).sum::<usize>()
            }
        };
        u32::try_from(PER_ENTRY + key_bytes + value_bytes).unwrap_or(u32::MAX)
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
        self.database()?.get(name).await
    }

    async fn get_ready(&self, name: &ContactInfoName) -> Result<Option<Ready>, Error> {
        self.ready(name).await
    }

    async fn get_ready_and_users(
        &self,
        name: &ContactInfoName,
    ) -> Result<Option<(Ready, PortalUserEmails)>, Error> {
        Ok(self
            .ready_and_users(name)
            .await?
            .map(|(ready, users)| ((*ready).clone(), (*users).clone())))
    }

    async fn backfill_ready(&self, batch: usize) -> Result<super::Backfill, Error> {
        self.database()?.backfill_ready(batch).await
    }

    async fn get_at(
        &self,
        name: &ContactInfoName,
        at: DateTime<Utc>,
    ) -> Result<Option<ContactInfo>, Error> {
        self.database()?.get_at(name, at).await
    }

    async fn save(
        &self,
        update: &Update,
        request: Option<&RequestKey>,
        actor: &str,
    ) -> Result<Saved, Error> {
        let facts_epoch = self.facts_epoch.load(Ordering::SeqCst);
        let saved = self.database()?.save(update, request, actor).await?;
        let info = &saved.info;
        // Held with the verification facts read in the save's transaction;
        // a replayed request read none, so its entry is dropped instead and
        // the next read goes to the database.
        let ready = saved
            .verifications
            .clone()
            .map(|facts| Arc::new(Ready::of(info).with_verifications(facts)));
        {
            let _writing = self.lock_writing();
            self.epoch.fetch_add(1, Ordering::SeqCst);
            // A verification or user change since the save began may be
            // newer than the facts it read.
            let ready = ready.filter(|_| self.facts_epoch.load(Ordering::SeqCst) == facts_epoch);
            // A replayed request, or a save that finished after a newer
            // one, may return an older revision than the cache has.
            if self
                .cached_revision(&info.name)
                .is_none_or(|r| r < info.revision)
            {
                match ready {
                    Some(ready) => self.hold(
                        Key::Contacts(info.name.clone()),
                        Entry::Contacts(Some(ready)),
                    ),
                    None => {
                        self.cache.remove(&KeyRef::Contacts(&info.name));
                    }
                }
            }
        }
        self.applied.publish(Change::ContactInfo {
            name: info.name.clone(),
            revision: info.revision,
        });
        Ok(saved)
    }

    async fn list_revisions(
        &self,
        name: &ContactInfoName,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Revision>, Error> {
        self.database()?.list_revisions(name, before, limit).await
    }

    async fn lease_event_partners(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<(PartnerId, i64)>, Error> {
        self.database()?
            .lease_event_partners(owner, lease, limit)
            .await
    }

    async fn mark_events_published(
        &self,
        partner: &PartnerId,
        owner: &str,
        through: i64,
        lease: Duration,
    ) -> Result<bool, Error> {
        self.database()?
            .mark_events_published(partner, owner, through, lease)
            .await
    }

    async fn release_event_partner(&self, partner: &PartnerId, owner: &str) -> Result<(), Error> {
        self.database()?.release_event_partner(partner, owner).await
    }

    async fn oldest_unpublished_event(&self) -> Result<Option<DateTime<Utc>>, Error> {
        self.database()?.oldest_unpublished_event().await
    }

    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        self.database()?.prune_events(before).await
    }

    async fn verifications(&self, partner: &PartnerId) -> Result<PartnerVerifications, Error> {
        self.database()?.verifications(partner).await
    }

    async fn record_challenges(
        &self,
        partner: &PartnerId,
        challenges: &[NewChallenge],
        events: &[Event],
    ) -> Result<(), Error> {
        self.database()?
            .record_challenges(partner, challenges, events)
            .await?;
        self.users_changed(partner);
        Ok(())
    }

    async fn confirm_challenge(
        &self,
        partner: &PartnerId,
        hash: &[u8; 32],
        now: DateTime<Utc>,
    ) -> Result<Option<(String, VerificationFacts)>, Error> {
        let confirmed = self
            .database()?
            .confirm_challenge(partner, hash, now)
            .await?;
        if confirmed.is_some() {
            self.users_changed(partner);
        }
        Ok(confirmed)
    }

    async fn purge_request_ids(&self, before: DateTime<Utc>) -> Result<u64, Error> {
        self.database()?.purge_request_ids(before).await
    }

    async fn list_events(
        &self,
        partner: &PartnerId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, Error> {
        self.database()?.list_events(partner, after, limit).await
    }

    async fn list_portal_users(
        &self,
        partner: &PartnerId,
        after: Option<&UserCursor>,
        limit: usize,
    ) -> Result<Vec<PortalUser>, Error> {
        self.database()?
            .list_portal_users(partner, after, limit)
            .await
    }

    async fn portal_user_emails(&self, partner: &PartnerId) -> Result<PortalUserEmails, Error> {
        Ok((*self.portal_user_emails_shared(partner).await?).clone())
    }

    async fn mutate_portal_users(
        &self,
        partner: &PartnerId,
        actor: &str,
        decide: UserDecision<'_>,
    ) -> Result<PortalUser, Error> {
        let user = self
            .database()?
            .mutate_portal_users(partner, actor, decide)
            .await?;
        self.users_changed(partner);
        Ok(user)
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
                copied_from: None,
            };
            cache.update(&update, None, "test").await.expect("save");
            assert!(cache.get(&name(i)).await.expect("get").is_some());
        }
        let held = cache.weighted_size();
        assert!(held <= budget, "{held} bytes cached");
        assert!(cache.entry_count() > 0);
        // Evicted entries are read from the store again.
        assert!(cache.get(&name(0)).await.expect("get").is_some());
    }
}
