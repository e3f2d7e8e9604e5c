//! The outbox in the store: every change of whom a field reaches, and every
//! portal user change, written with the change itself, numbered per partner
//! without gaps in commit order; nothing for a save that fails or replays.
use partner_contacts::domain::{ContactFields, Environment, PartnerId, PortalUserName, Update};
use partner_contacts::pb;
use partner_contacts::pb::notified_address::Change;
use partner_contacts::store::DynStore;
use prost::Message;

use super::{ACTOR, acme_store, complete_fields, contact, key, name, prod, replace_all, save};
use crate::common::StoreKind;
use crate::on_every_store;

fn acme() -> PartnerId {
    PartnerId::parse("acme").expect("partner")
}

/// Every event of `partner`, decoded, checked against its stored columns.
async fn events(s: &DynStore, partner: &PartnerId) -> Vec<pb::Event> {
    let stored = s.list_events(partner, 0, 1000).await.expect("list events");
    stored
        .iter()
        .map(|e| {
            let event = pb::Event::decode(e.event.as_slice()).expect("an Event");
            assert_eq!(event.sequence, e.sequence);
            assert_eq!(event.r#type, e.event_type);
            assert_eq!(
                event.name,
                format!("partners/{}/events/{}", partner.as_str(), e.id)
            );
            event
        })
        .collect()
}

fn changed(e: &pb::Event) -> &pb::ContactsChanged {
    match &e.payload {
        Some(pb::event::Payload::ContactsChanged(c)) => c,
        other => panic!("not contacts.changed: {other:?}"),
    }
}

fn recipients(c: &pb::ContactsChanged) -> Vec<(&str, Change)> {
    c.recipients
        .iter()
        .map(|r| (r.email.as_str(), r.change()))
        .collect()
}

async fn changes_of_reach_are_events_numbered_per_partner(kind: StoreKind) {
    let t = acme_store(kind).await;
    let granted = events(&t.store, &acme()).await;
    let types: Vec<_> = granted.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(types, ["portal_user.granted", "portal_user.granted"]);

    let n = prod("acme");
    save(&t.store, &replace_all(&n, complete_fields())).await;
    let all = events(&t.store, &acme()).await;
    let sequences: Vec<_> = all.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5, 6, 7, 8], "gapless, from 1");
    let fields: Vec<_> = all[2..].iter().map(|e| changed(e).field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "alert_contacts",
            "technical_emergency_contacts",
            "technical_non_emergency_contacts",
            "merchant_issues_contacts",
            "platform_operational_contacts",
            "user_facing_operational_contacts",
        ]
    );
    let pager = &all[3];
    assert_eq!(
        (pager.r#type.as_str(), pager.actor.as_str()),
        ("contacts.changed", ACTOR)
    );
    assert_eq!(
        changed(pager).revision,
        "partners/acme/environments/production/contactInfo/revisions/1"
    );
    assert_eq!(
        recipients(changed(pager)),
        [("pager@example.com", Change::Added)]
    );

    // The same mailboxes again (one re-spelt): nobody's reach changed.
    let mut same = complete_fields();
    same.user_facing_operational_contacts = vec![contact("support@EXAMPLE.com")];
    save(&t.store, &replace_all(&n, same)).await;
    assert_eq!(events(&t.store, &acme()).await.len(), 8);

    // The pager moves: the old and the new address both hear of it.
    let mut moved = complete_fields();
    moved.technical_emergency_contacts = vec![contact("attacker@evil.example")];
    let saved = t
        .store
        .update(&replace_all(&n, moved), None, "mallory")
        .await
        .expect("save");
    let all = events(&t.store, &acme()).await;
    assert_eq!(all.len(), 9);
    let notice = &all[8];
    assert_eq!((notice.sequence, notice.actor.as_str()), (9, "mallory"));
    assert_eq!(
        notice.create_time.map(|t| t.seconds),
        Some(saved.update_time.timestamp())
    );
    assert_eq!(changed(notice).field, "technical_emergency_contacts");
    assert_eq!(
        recipients(changed(notice)),
        [
            ("pager@example.com", Change::Removed),
            ("attacker@evil.example", Change::Added)
        ]
    );
    // Nothing but the addresses: no display name or phone number travels.
    let bytes = t.store.list_events(&acme(), 0, 100).await.expect("list");
    for e in &bytes {
        let text = String::from_utf8_lossy(&e.event);
        assert!(!text.contains("Ops Team"), "a display name in {text}");
        assert!(!text.contains("668 18 00"), "a phone number in {text}");
    }

    // Another partner counts its own.
    let other = PartnerId::parse("other").expect("partner");
    let fields = ContactFields {
        technical_emergency_contacts: vec![contact("pager@other.example")],
        ..ContactFields::default()
    };
    save(
        &t.store,
        &replace_all(&name("other", Environment::Sandbox), fields),
    )
    .await;
    let theirs = events(&t.store, &other).await;
    assert_eq!(theirs.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1]);

    // Paging: after a sequence, at most a limit.
    let page = t.store.list_events(&acme(), 7, 1).await.expect("page");
    assert_eq!(page.iter().map(|e| e.sequence).collect::<Vec<_>>(), [8]);
}

async fn a_failed_or_replayed_save_writes_no_event(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let k = key(3);
    let update = replace_all(&n, complete_fields());
    t.store
        .update(&update, Some(&k), ACTOR)
        .await
        .expect("save");
    let before = events(&t.store, &acme()).await.len();
    t.store
        .update(&update, Some(&k), ACTOR)
        .await
        .expect("replay");
    let mut stale = replace_all(&n, ContactFields::default());
    stale.expected_etag = Some("stale".to_owned());
    t.store
        .update(&stale, None, ACTOR)
        .await
        .expect_err("stale etag");
    // A save the domain refuses (an alert contact who is no portal user).
    let mut refused = complete_fields();
    refused.alert_contacts = vec![contact("stranger@example.com")];
    t.store
        .update(&replace_all(&n, refused), None, ACTOR)
        .await
        .expect_err("not a portal user");
    assert_eq!(events(&t.store, &acme()).await.len(), before);
}

async fn portal_user_changes_are_events(kind: StoreKind) {
    let t = acme_store(kind).await;
    let users = t
        .store
        .list_portal_users(&acme(), None, 10)
        .await
        .expect("users");
    let editor: &PortalUserName = &users[1].name;
    t.store
        .update_portal_user_role(
            editor,
            partner_contacts::domain::PortalRole::ReadOnly,
            "root",
        )
        .await
        .expect("role");
    t.store
        .revoke_portal_access(editor, "root")
        .await
        .expect("revoke");
    let all = events(&t.store, &acme()).await;
    let got: Vec<_> = all
        .iter()
        .map(|e| {
            let Some(pb::event::Payload::PortalUserChanged(c)) = &e.payload else {
                panic!("{e:?}")
            };
            let user = c.portal_user.as_ref().expect("user");
            (
                e.r#type.as_str(),
                e.actor.as_str(),
                user.email.as_str(),
                user.role(),
            )
        })
        .collect();
    use pb::PortalRole as R;
    assert_eq!(
        got,
        [
            (
                "portal_user.granted",
                ACTOR,
                "alerts@example.com",
                R::Administrator
            ),
            ("portal_user.granted", ACTOR, "B@example.com", R::Editor),
            (
                "portal_user.role_changed",
                "root",
                "B@example.com",
                R::ReadOnly
            ),
            ("portal_user.revoked", "root", "B@example.com", R::ReadOnly),
        ]
    );
    assert_eq!(
        all.iter()
            .map(|e| e.name.as_str())
            .collect::<std::collections::HashSet<_>>()
            .len(),
        4,
        "each event has its own id"
    );
}

/// Saves of both environments of one partner at once (two rows, so no row
/// lock orders them): their events still get distinct numbers without
/// gaps, and each environment's notices follow its revisions.
async fn concurrent_saves_number_events_in_commit_order(kind: StoreKind) {
    let t = acme_store(kind).await;
    let base = events(&t.store, &acme()).await.len();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let store = t.store.clone();
        let env = if i % 2 == 0 {
            Environment::Sandbox
        } else {
            Environment::Production
        };
        tasks.push(tokio::spawn(async move {
            let fields = ContactFields {
                technical_emergency_contacts: vec![contact(&format!("pager-{i}@example.com"))],
                ..ContactFields::default()
            };
            let update: Update = replace_all(&name("acme", env), fields);
            store.update(&update, None, ACTOR).await.expect("save")
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let all = events(&t.store, &acme()).await;
    let sequences: Vec<_> = all.iter().map(|e| e.sequence).collect();
    let expected: Vec<i64> = (1..=i64::try_from(base + 12).expect("count")).collect();
    assert_eq!(sequences, expected);
    for env in ["sandbox", "production"] {
        let revisions: Vec<i64> = all[base..]
            .iter()
            .map(changed)
            .filter(|c| c.contact_info.contains(env))
            .map(|c| {
                c.revision
                    .rsplit('/')
                    .next()
                    .and_then(|r| r.parse().ok())
                    .expect("revision number")
            })
            .collect();
        assert_eq!(revisions, (1..=6).collect::<Vec<i64>>(), "{env}");
    }
}

on_every_store!(
    changes_of_reach_are_events_numbered_per_partner,
    a_failed_or_replayed_save_writes_no_event,
    portal_user_changes_are_events,
    concurrent_saves_number_events_in_commit_order,
    relay_leases_are_exclusive_and_expire,
);

/// The relay's leases: one owner per partner at a time, taken over when
/// it ends; progress recorded only by the owner; only published events pruned.
async fn relay_leases_are_exclusive_and_expire(kind: StoreKind) {
    use std::time::Duration;
    let t = acme_store(kind).await;
    let s = &t.store;
    let long = Duration::from_secs(60);
    let leased = s.lease_event_partners("a", long, 10).await.expect("lease");
    assert_eq!(leased, [(acme(), 0)], "acme has 2 unpublished grants");
    assert!(
        s.lease_event_partners("b", long, 10)
            .await
            .expect("lease")
            .is_empty(),
        "held by a"
    );
    assert!(
        !s.mark_events_published(&acme(), "b", 2, long)
            .await
            .expect("mark"),
        "b holds no lease"
    );
    assert!(
        s.mark_events_published(&acme(), "a", 1, long)
            .await
            .expect("mark")
    );
    assert!(
        s.oldest_unpublished_event()
            .await
            .expect("oldest")
            .is_some(),
        "event 2 is not published"
    );
    s.release_event_partner(&acme(), "a")
        .await
        .expect("release");
    // b takes it, with a lease that ends at once; a then takes it over.
    let taken = s
        .lease_event_partners("b", Duration::ZERO, 10)
        .await
        .expect("lease");
    assert_eq!(taken, [(acme(), 1)], "from where a got to");
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        s.lease_event_partners("a", long, 10).await.expect("lease"),
        [(acme(), 1)],
        "b's lease ended"
    );
    assert!(
        s.mark_events_published(&acme(), "a", 2, long)
            .await
            .expect("mark")
    );
    assert_eq!(s.oldest_unpublished_event().await.expect("oldest"), None);
    assert!(
        s.lease_event_partners("a", long, 10)
            .await
            .expect("lease")
            .is_empty(),
        "nothing left to publish"
    );

    // A new event is unpublished; pruning takes only the published two.
    let n = prod("acme");
    save(&t.store, &replace_all(&n, complete_fields())).await;
    let future = chrono::Utc::now() + chrono::Duration::hours(1);
    assert_eq!(s.prune_events(future).await.expect("prune"), 2);
    let left = events(&t.store, &acme()).await;
    assert_eq!(left.first().map(|e| e.sequence), Some(3));
    assert_eq!(left.len(), 6);
}
