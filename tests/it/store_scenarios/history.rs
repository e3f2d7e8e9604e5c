//! Revision history in the store: every save recorded, listed newest first,
//! readable as of a past time, and immutable.
use partner_contacts::domain::{ContactFields, Environment, Field, FieldSet, Update};

use super::{
    ACTOR, acme_store, complete_fields, contact, get, key, name, prod, raw_execute, replace_all,
    save,
};
use crate::common::StoreKind;
use crate::on_every_store;

async fn every_save_writes_a_revision(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let k = key(9);
    let first = t
        .store
        .update(&replace_all(&n, complete_fields()), Some(&k), "alice")
        .await
        .expect("first");
    let mut fields = complete_fields();
    fields.technical_emergency_contacts = vec![contact("pager-2@example.com")];
    let second = t
        .store
        .update(&replace_all(&n, fields), None, "bob")
        .await
        .expect("second");

    let revisions = t.store.list_revisions(&n, None, 10).await.expect("list");
    assert_eq!(revisions.len(), 2);
    let (newest, oldest) = (&revisions[0], &revisions[1]);
    assert_eq!(newest.info, second);
    assert_eq!(newest.actor, "bob");
    assert_eq!(newest.request_id, None);
    assert_eq!(
        newest.changed,
        [Field::TechnicalEmergencyContacts].into_iter().collect()
    );
    assert_eq!(oldest.info, first);
    assert_eq!(oldest.actor, "alice");
    assert_eq!(oldest.request_id, Some(k.id));
    // A create changes every field it provides.
    assert_eq!(oldest.changed, FieldSet::all());
}

async fn a_request_id_retry_writes_no_revision(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let k = key(5);
    let update = replace_all(&n, complete_fields());
    for _ in 0..3 {
        t.store
            .update(&update, Some(&k), ACTOR)
            .await
            .expect("save or replay");
    }
    assert_eq!(
        t.store
            .list_revisions(&n, None, 10)
            .await
            .expect("list")
            .len(),
        1
    );
}

/// CopyContactInfo's save: the shared fields as the source holds them, the
/// alert contacts as they were, and the revision says which source revision
/// it copied; a save without a source records none.
async fn a_copy_records_its_source_revision(kind: StoreKind) {
    let t = acme_store(kind).await;
    let sandbox = name("acme", Environment::Sandbox);
    let mut sandbox_fields = complete_fields();
    sandbox_fields.alert_contacts.clear();
    sandbox_fields.merchant_issues_contacts.clear();
    save(&t.store, &replace_all(&sandbox, sandbox_fields.clone())).await;
    let mut edited = sandbox_fields.clone();
    edited.technical_emergency_contacts = vec![contact("pager-sandbox@example.com")];
    let source = save(&t.store, &replace_all(&sandbox, edited.clone())).await;

    let n = prod("acme");
    let before = save(&t.store, &replace_all(&n, complete_fields())).await;
    let copy = Update::copy_of(&source, n.clone(), Some(before.etag.clone()));
    let copied = t.store.update(&copy, None, "carol").await.expect("copy");
    assert_eq!(copied.revision, before.revision + 1);
    assert_eq!(copied.fields.alert_contacts, before.fields.alert_contacts);
    assert_eq!(
        copied.fields.technical_emergency_contacts,
        edited.technical_emergency_contacts
    );
    assert!(copied.fields.merchant_issues_contacts.is_empty());
    assert_eq!(
        copied.fields.operational_support,
        edited.operational_support
    );
    assert_eq!(get(&t.store, &n).await, Some(copied));

    let revisions = t.store.list_revisions(&n, None, 10).await.expect("list");
    assert_eq!(revisions.len(), 2);
    assert_eq!(
        revisions[0].source.as_deref(),
        Some("partners/acme/environments/sandbox/contactInfo/revisions/2")
    );
    assert_eq!(revisions[0].actor, "carol");
    assert_eq!(
        revisions[0].changed,
        [
            Field::TechnicalEmergencyContacts,
            Field::MerchantIssuesContacts
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(revisions[1].source, None);

    // The etag the copy was made against is stale now: refused, nothing saved.
    let stale = t.store.update(&copy, None, "carol").await;
    assert!(
        matches!(stale, Err(partner_contacts::error::Error::EtagMismatch)),
        "{stale:?}"
    );
    assert_eq!(
        t.store
            .list_revisions(&n, None, 10)
            .await
            .expect("list")
            .len(),
        2
    );
}

async fn revisions_page_newest_first(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    for i in 0..5 {
        save(
            &t.store,
            &replace_all(
                &n,
                ContactFields {
                    technical_emergency_contacts: vec![contact(&format!("p{i}@example.com"))],
                    ..Default::default()
                },
            ),
        )
        .await;
    }
    let page1 = t.store.list_revisions(&n, None, 2).await.expect("page 1");
    let page2 = t
        .store
        .list_revisions(&n, Some(4), 2)
        .await
        .expect("page 2");
    let page3 = t
        .store
        .list_revisions(&n, Some(2), 2)
        .await
        .expect("page 3");
    let numbers = |p: &[partner_contacts::domain::Revision]| {
        p.iter().map(|r| r.info.revision).collect::<Vec<_>>()
    };
    assert_eq!(numbers(&page1), [5, 4]);
    assert_eq!(numbers(&page2), [3, 2]);
    assert_eq!(numbers(&page3), [1]);
    assert!(
        t.store
            .list_revisions(&prod("nobody"), None, 10)
            .await
            .expect("empty")
            .is_empty()
    );
}

async fn contact_info_as_it_was_at_a_time(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let first = save(&t.store, &replace_all(&n, complete_fields())).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let second = save(&t.store, &replace_all(&n, ContactFields::default())).await;

    let before_any = first.update_time - chrono::Duration::milliseconds(1);
    assert_eq!(t.store.get_at(&n, before_any).await.expect("get_at"), None);
    assert_eq!(
        t.store.get_at(&n, first.update_time).await.expect("get_at"),
        Some(first.clone())
    );
    let between = second.update_time - chrono::Duration::microseconds(1);
    assert_eq!(
        t.store.get_at(&n, between).await.expect("get_at"),
        Some(first)
    );
    assert_eq!(
        t.store
            .get_at(&n, chrono::Utc::now())
            .await
            .expect("get_at"),
        get(&t.store, &n).await
    );
}

async fn history_cannot_be_rewritten_even_with_sql(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    save(&t.store, &replace_all(&n, complete_fields())).await;
    let statements = [
        "UPDATE contact_info_revisions SET actor = 'mallory'",
        "DELETE FROM contact_info_revisions",
        "UPDATE portal_user_revisions SET actor = 'mallory'",
        "DELETE FROM portal_user_revisions",
    ];
    for sql in statements {
        let result = raw_execute(&t, kind, sql).await;
        assert!(result.is_err(), "{sql} was allowed: {result:?}");
    }
    let revisions = t.store.list_revisions(&n, None, 10).await.expect("list");
    assert_eq!(revisions.len(), 1);
    assert_eq!(revisions[0].actor, ACTOR);
}

on_every_store!(
    every_save_writes_a_revision,
    a_request_id_retry_writes_no_revision,
    a_copy_records_its_source_revision,
    revisions_page_newest_first,
    contact_info_as_it_was_at_a_time,
    history_cannot_be_rewritten_even_with_sql,
);
