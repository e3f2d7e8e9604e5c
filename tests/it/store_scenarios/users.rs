//! Portal users in the store: grants, roles, the last administrator, and
//! alert contacts that must be users.
use partner_contacts::domain::{
    ContactFields, Email, FieldSet, PartnerId, PortalRole, PortalUser, PortalUserName, Update,
};
use partner_contacts::error::Error;
use partner_contacts::store::{DynStore, UserCursor};
use partner_contacts::wire::Ready;

use super::{ACTOR, complete_fields, contact, get, prod, replace_all, user_emails};
use crate::common::{self, StoreKind};
use crate::on_every_store;

fn partner(p: &str) -> PartnerId {
    PartnerId::parse(p).expect("partner")
}

fn email(e: &str) -> Email {
    Email::parse(e).expect("email")
}

async fn grant(s: &DynStore, p: &str, e: &str, role: PortalRole) -> Result<PortalUser, Error> {
    s.grant_portal_access(&partner(p), &email(e), role, ACTOR)
        .await
}

fn precondition_kind(result: Result<impl std::fmt::Debug, Error>) -> &'static str {
    match result {
        Err(Error::FailedPrecondition { violations }) => violations[0].kind,
        other => panic!("expected FAILED_PRECONDITION, got {other:?}"),
    }
}

async fn first_user_must_be_an_administrator(kind: StoreKind) {
    let t = common::store_of(kind).await;
    assert_eq!(
        precondition_kind(grant(&t.store, "acme", "ed@example.com", PortalRole::Editor).await),
        "FIRST_USER_MUST_BE_ADMINISTRATOR"
    );
    let admin = grant(
        &t.store,
        "acme",
        "ad@example.com",
        PortalRole::Administrator,
    )
    .await
    .expect("first admin");
    assert_eq!(admin.role, PortalRole::Administrator);
    assert_eq!(admin.name.partner.as_str(), "acme");
    grant(&t.store, "acme", "ed@example.com", PortalRole::Editor)
        .await
        .expect("editor after an admin");
}

async fn an_email_has_access_once_case_insensitively(kind: StoreKind) {
    let t = common::store_of(kind).await;
    grant(
        &t.store,
        "acme",
        "Ann@Example.com",
        PortalRole::Administrator,
    )
    .await
    .expect("grant");
    assert!(matches!(
        grant(&t.store, "acme", "ann@example.COM", PortalRole::Editor).await,
        Err(Error::AlreadyExists { .. })
    ));
    // Users are per partner.
    grant(
        &t.store,
        "other",
        "ann@example.com",
        PortalRole::Administrator,
    )
    .await
    .expect("same person, other partner");
}

async fn users_list_in_grant_order_with_cursor(kind: StoreKind) {
    let t = common::store_of(kind).await;
    let mut granted = Vec::new();
    for (i, role) in [
        PortalRole::Administrator,
        PortalRole::Editor,
        PortalRole::ReadOnly,
        PortalRole::Editor,
        PortalRole::ReadOnly,
    ]
    .into_iter()
    .enumerate()
    {
        granted.push(
            grant(&t.store, "acme", &format!("u{i}@example.com"), role)
                .await
                .expect("grant"),
        );
    }
    grant(
        &t.store,
        "other",
        "x@example.com",
        PortalRole::Administrator,
    )
    .await
    .expect("other partner");
    let acme = partner("acme");
    let first = t
        .store
        .list_portal_users(&acme, None, 2)
        .await
        .expect("page 1");
    assert_eq!(first, granted[..2]);
    let cursor = UserCursor {
        create_time: first[1].create_time,
        id: first[1].name.id,
    };
    let rest = t
        .store
        .list_portal_users(&acme, Some(&cursor), 10)
        .await
        .expect("page 2");
    assert_eq!(rest, granted[2..]);
    let emails = user_emails(&t.store, &acme).await;
    assert_eq!(emails.len(), 5);
    assert!(emails.contains("u3@example.com"));
}

async fn the_last_administrator_stays(kind: StoreKind) {
    let t = common::store_of(kind).await;
    let admin = grant(
        &t.store,
        "acme",
        "ad@example.com",
        PortalRole::Administrator,
    )
    .await
    .expect("admin");
    let editor = grant(&t.store, "acme", "ed@example.com", PortalRole::Editor)
        .await
        .expect("editor");
    assert_eq!(
        precondition_kind(
            t.store
                .update_portal_user_role(&admin.name, PortalRole::Editor, ACTOR)
                .await
        ),
        "LAST_ADMINISTRATOR"
    );
    assert_eq!(
        precondition_kind(t.store.revoke_portal_access(&admin.name, ACTOR).await),
        "LAST_ADMINISTRATOR"
    );
    // Promote someone else first, then the old administrator may go.
    let promoted = t
        .store
        .update_portal_user_role(&editor.name, PortalRole::Administrator, ACTOR)
        .await
        .expect("promote");
    assert_eq!(promoted.role, PortalRole::Administrator);
    assert!(promoted.update_time >= promoted.create_time);
    t.store
        .revoke_portal_access(&admin.name, ACTOR)
        .await
        .expect("revoke the former last admin");
    let left = t
        .store
        .list_portal_users(&partner("acme"), None, 10)
        .await
        .expect("list");
    assert_eq!(left, vec![promoted]);
}

async fn concurrent_demotions_keep_an_administrator(kind: StoreKind) {
    let t = common::store_of(kind).await;
    let mut admins = Vec::new();
    for i in 0..4 {
        admins.push(
            grant(
                &t.store,
                "acme",
                &format!("a{i}@example.com"),
                PortalRole::Administrator,
            )
            .await
            .expect("admin"),
        );
    }
    let tasks: Vec<_> = admins
        .iter()
        .map(|a| {
            let (store, name) = (t.store.clone(), a.name.clone());
            tokio::spawn(async move { store.revoke_portal_access(&name, ACTOR).await })
        })
        .collect();
    let mut revoked = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => revoked += 1,
            Err(Error::FailedPrecondition { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(revoked, 3, "all but one administrator may go");
    let left = t
        .store
        .list_portal_users(&partner("acme"), None, 10)
        .await
        .expect("list");
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].role, PortalRole::Administrator);
}

async fn unknown_users_are_not_found(kind: StoreKind) {
    let t = common::store_of(kind).await;
    grant(
        &t.store,
        "acme",
        "ad@example.com",
        PortalRole::Administrator,
    )
    .await
    .expect("admin");
    let ghost = PortalUserName {
        partner: partner("acme"),
        id: uuid::Uuid::new_v4(),
    };
    assert!(matches!(
        t.store
            .update_portal_user_role(&ghost, PortalRole::Editor, ACTOR)
            .await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        t.store.revoke_portal_access(&ghost, ACTOR).await,
        Err(Error::NotFound { .. })
    ));
}

async fn alert_contacts_must_be_portal_users(kind: StoreKind) {
    let t = common::store_of(kind).await;
    let n = prod("acme");
    let err = t
        .store
        .update(&replace_all(&n, complete_fields()), None, ACTOR)
        .await
        .expect_err("no portal users yet");
    match err {
        Error::FailedPrecondition { violations } => {
            let subjects: Vec<_> = violations.iter().map(|v| v.subject.as_str()).collect();
            assert_eq!(
                subjects,
                [
                    "contact_info.alert_contacts[0].email",
                    "contact_info.alert_contacts[1].email"
                ]
            );
            assert!(violations.iter().all(|v| v.kind == "NOT_A_PORTAL_USER"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(get(&t.store, &n).await, None, "nothing saved");

    grant(
        &t.store,
        "acme",
        "ALERTS@example.com",
        PortalRole::Administrator,
    )
    .await
    .expect("grant");
    grant(&t.store, "acme", "b@example.com", PortalRole::ReadOnly)
        .await
        .expect("grant");
    let saved = t
        .store
        .update(&replace_all(&n, complete_fields()), None, ACTOR)
        .await
        .expect("alert contacts are users now");
    assert_eq!(get(&t.store, &n).await, Some(saved.clone()));

    // Revoking a user keeps the contact (nothing is deleted silently);
    // later updates that do not name alert contacts still succeed.
    let users = t
        .store
        .list_portal_users(&partner("acme"), None, 10)
        .await
        .expect("list");
    t.store
        .revoke_portal_access(&users[1].name, ACTOR)
        .await
        .expect("revoke");
    let mut mask = FieldSet::EMPTY;
    mask.insert(partner_contacts::domain::Field::TechnicalEmergencyContacts);
    let later = t
        .store
        .update(
            &Update {
                name: n.clone(),
                patch: ContactFields {
                    technical_emergency_contacts: vec![contact("pager2@example.com")],
                    ..Default::default()
                },
                mask,
                expected_etag: None,
                copied_from: None,
            },
            None,
            ACTOR,
        )
        .await
        .expect("update without alert contacts in the mask");
    assert_eq!(later.fields.alert_contacts, saved.fields.alert_contacts);
    // The reads that loaded the users before the revoke see it at once.
    assert!(
        !user_emails(&t.store, &partner("acme"))
            .await
            .contains("b@example.com")
    );
    assert_eq!(get(&t.store, &n).await, Some(later));
}

/// What the gate and ResolveRecipients read (the ready form with the
/// partner's users) follows every change of users at once, from memory on
/// the cached arm.
async fn user_changes_reach_the_gates_read_at_once(kind: StoreKind) {
    let t = common::store_of(kind).await;
    let n = prod("acme");
    let gate_read = || async {
        let (ready, users) = t
            .store
            .get_ready_and_users(&n)
            .await
            .expect("get_ready_and_users")
            .expect("saved");
        assert_eq!(users, user_emails(&t.store, &partner("acme")).await);
        let mut users: Vec<String> = users.into_iter().collect();
        users.sort();
        (ready, users)
    };
    let admin = grant(
        &t.store,
        "acme",
        "Ad@Example.com",
        PortalRole::Administrator,
    )
    .await
    .expect("admin");
    // Nothing saved: the read says so, whoever the users are.
    assert_eq!(t.store.get_ready_and_users(&n).await.expect("read"), None);
    let saved = t
        .store
        .update(
            &replace_all(
                &n,
                ContactFields {
                    technical_emergency_contacts: vec![contact("pager@example.com")],
                    ..Default::default()
                },
            ),
            None,
            ACTOR,
        )
        .await
        .expect("save");
    let (ready, users) = gate_read().await;
    assert_eq!(ready, Ready::of(&saved));
    assert_eq!(users, ["ad@example.com"]);

    let editor = grant(&t.store, "acme", "ed@example.com", PortalRole::Editor)
        .await
        .expect("editor");
    assert_eq!(gate_read().await.1, ["ad@example.com", "ed@example.com"]);
    // Another partner's users are not acme's.
    grant(
        &t.store,
        "other",
        "x@example.com",
        PortalRole::Administrator,
    )
    .await
    .expect("other partner");
    assert_eq!(gate_read().await.1, ["ad@example.com", "ed@example.com"]);
    t.store
        .update_portal_user_role(&editor.name, PortalRole::Administrator, ACTOR)
        .await
        .expect("promote");
    t.store
        .revoke_portal_access(&admin.name, ACTOR)
        .await
        .expect("revoke");
    let (ready, users) = gate_read().await;
    assert_eq!(users, ["ed@example.com"]);
    // User changes leave the contact info as it was.
    assert_eq!(ready, Ready::of(&saved));
    assert_eq!(get(&t.store, &n).await, Some(saved));
    if let Some(cache) = &t.cache {
        assert!(cache.stats().cache_hits > 0, "the cache served reads");
    }
}

on_every_store!(
    first_user_must_be_an_administrator,
    an_email_has_access_once_case_insensitively,
    users_list_in_grant_order_with_cursor,
    the_last_administrator_stays,
    concurrent_demotions_keep_an_administrator,
    unknown_users_are_not_found,
    alert_contacts_must_be_portal_users,
    user_changes_reach_the_gates_read_at_once,
);
