//! While the database is known to be unreachable, every call the cache passes
//! to the store fails at once with UNAVAILABLE: none waits out the pool's
//! acquire timeout, none slips past (GrantPortalAccess and
//! UpdatePortalUserRole once did).
use std::time::{Duration, Instant};

use partner_contacts::domain::{
    ContactFields, ContactInfoName, Email, Environment, FieldSet, PartnerId, PortalRole,
    PortalUserName, Update,
};
use partner_contacts::error::Error;
use partner_contacts::store::{CacheOptions, CachedStore, ContactStore};

use crate::common::{self, Backend};
use crate::on_both_backends;

async fn every_store_call_fails_fast_while_unreachable(backend: Backend) {
    let t = common::store(backend).await;
    let acme = PartnerId::parse("acme").expect("partner");
    let admin = t
        .store
        .grant_portal_access(
            &acme,
            &Email::parse("kim@acme.example").expect("email"),
            PortalRole::Administrator,
            "test",
        )
        .await
        .expect("grant");
    let cache = CachedStore::new(t.store.clone(), &CacheOptions::default());
    cache.set_reachable(false);

    let name = ContactInfoName::new(acme.clone(), Environment::Production);
    let email = Email::parse("new@acme.example").expect("email");
    let user = PortalUserName {
        partner: acme.clone(),
        id: admin.name.id,
    };
    let update = Update {
        name: name.clone(),
        patch: ContactFields::default(),
        mask: FieldSet::all(),
        expected_etag: None,
        copied_from: None,
    };
    let started = Instant::now();
    let results: Vec<(&str, Result<(), Error>)> = vec![
        ("get", cache.get(&name).await.map(drop)),
        (
            "get_at",
            cache.get_at(&name, chrono::Utc::now()).await.map(drop),
        ),
        (
            "update",
            cache.update(&update, None, "test").await.map(drop),
        ),
        (
            "list_revisions",
            cache.list_revisions(&name, None, 1).await.map(drop),
        ),
        (
            "purge_request_ids",
            cache.purge_request_ids(chrono::Utc::now()).await.map(drop),
        ),
        (
            "list_portal_users",
            cache.list_portal_users(&acme, None, 1).await.map(drop),
        ),
        (
            "portal_user_emails",
            cache.portal_user_emails(&acme).await.map(drop),
        ),
        (
            "grant_portal_access",
            cache
                .grant_portal_access(&acme, &email, PortalRole::Editor, "test")
                .await
                .map(drop),
        ),
        (
            "update_portal_user_role",
            cache
                .update_portal_user_role(&user, PortalRole::Administrator, "test")
                .await
                .map(drop),
        ),
        (
            "revoke_portal_access",
            cache.revoke_portal_access(&user, "test").await.map(drop),
        ),
    ];
    for (call, result) in &results {
        assert!(
            matches!(result, Err(Error::Unavailable { .. })),
            "{call}: {result:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Nothing reached the database.
    let users = t
        .store
        .list_portal_users(&acme, None, 10)
        .await
        .expect("list");
    assert_eq!(users, vec![admin]);
}

on_both_backends!(every_store_call_fails_fast_while_unreachable);
