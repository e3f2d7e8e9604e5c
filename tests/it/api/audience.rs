//! The audience filter on every RPC that returns contact information: a
//! service whose only read scope is `contacts.read_user_facing` receives only
//! `user_facing_operational_contacts` and `operational_support`; a
//! `contacts.read` service (and a portal user) receives everything.
use tonic::Code;

use super::*;
use crate::common::{self, Backend, TestServer};
use crate::on_both_backends;

/// The only contact fields a user-facing reader ever sees.
const VISIBLE: [&str; 2] = ["user_facing_operational_contacts", "operational_support"];

/// What a user-facing reader must receive for `full`: the name, the output
/// fields and the two visible fields; every other contact field empty.
fn user_facing(full: &pb::ContactInfo) -> pb::ContactInfo {
    pb::ContactInfo {
        name: full.name.clone(),
        user_facing_operational_contacts: full.user_facing_operational_contacts.clone(),
        operational_support: full.operational_support.clone(),
        etag: full.etag.clone(),
        create_time: full.create_time,
        update_time: full.update_time,
        ..Default::default()
    }
}

/// Every contact field of `info` is filled, so a filter has something to remove.
fn assert_every_field_filled(info: &pb::ContactInfo) {
    assert!(
        !info.alert_contacts.is_empty()
            && !info.technical_emergency_contacts.is_empty()
            && !info.technical_non_emergency_contacts.is_empty()
            && !info.merchant_issues_contacts.is_empty()
            && !info.platform_operational_contacts.is_empty()
            && !info.user_facing_operational_contacts.is_empty()
            && info.operational_support.is_some(),
        "{info:?}"
    );
}

/// A server with identity on and three saved revisions of `PROD`, saved by
/// a full-access service: complete; then only the emergency contacts changed;
/// then only the user-facing contacts changed. Returns them oldest first.
async fn seeded(backend: Backend) -> (TestServer, Vec<pb::ContactInfo>) {
    let server = TestServer::start_with_auth(backend, common::hs256_authenticator()).await;
    let mut c = server.client.clone();
    let admin = common::full_access_token("seeder");
    grant_alert_users(&mut c, "acme", Some(&admin)).await;
    let first = save(&mut c, bearer(&admin, put(complete_info(PROD)))).await;
    let second = save(
        &mut c,
        bearer(
            &admin,
            put_masked(
                pb::ContactInfo {
                    technical_emergency_contacts: vec![contact("pager-2@example.com")],
                    ..named(PROD)
                },
                &["technical_emergency_contacts"],
            ),
        ),
    )
    .await;
    let third = save(
        &mut c,
        bearer(
            &admin,
            put_masked(
                pb::ContactInfo {
                    user_facing_operational_contacts: vec![contact("help@example.com")],
                    ..named(PROD)
                },
                &["user_facing_operational_contacts"],
            ),
        ),
    )
    .await;
    for saved in [&first, &second, &third] {
        assert_every_field_filled(saved);
    }
    (server, vec![first, second, third])
}

async fn get_at(
    c: &mut Client,
    token: &str,
    read_time: Option<prost_types::Timestamp>,
) -> pb::ContactInfo {
    let req = pb::GetContactsRequest {
        name: PROD.to_owned(),
        read_time,
    };
    c.get_contacts(bearer(token, req))
        .await
        .unwrap_or_else(|s| panic!("GetContacts: {s:?}"))
        .into_inner()
}

async fn revisions(c: &mut Client, token: &str) -> Vec<pb::ContactInfoRevision> {
    let req = pb::ListContactInfoRevisionsRequest {
        name: PROD.to_owned(),
        page_size: 0,
        page_token: String::new(),
    };
    let page = c
        .list_contact_info_revisions(bearer(token, req))
        .await
        .unwrap_or_else(|s| panic!("ListContactInfoRevisions: {s:?}"))
        .into_inner();
    assert!(page.next_page_token.is_empty());
    page.revisions
}

async fn get_contacts_is_filtered(backend: Backend) {
    let (server, saved) = seeded(backend).await;
    let mut c = server.client.clone();
    let latest = &saved[2];

    let storefront = common::service_token("storefront", &["contacts.read_user_facing"]);
    assert_eq!(get_at(&mut c, &storefront, None).await, user_facing(latest));

    // A full read scope beside it wins; so does a portal user's view.
    for full_reader in [
        common::service_token("ops", &["contacts.read"]),
        common::service_token("ops", &["contacts.read", "contacts.read_user_facing"]),
        common::portal_token("ro", "acme", partner_contacts::domain::PortalRole::ReadOnly),
    ] {
        assert_eq!(get_at(&mut c, &full_reader, None).await, *latest);
    }
}

async fn get_contacts_at_a_past_time_is_filtered(backend: Backend) {
    let (server, saved) = seeded(backend).await;
    let mut c = server.client.clone();
    let storefront =
        common::service_token("storefront", &["contacts.read_user_facing", "history.read"]);
    let ops = common::service_token("ops", &["contacts.read", "history.read"]);
    for revision in &saved {
        let at = revision.update_time;
        assert_eq!(get_at(&mut c, &storefront, at).await, user_facing(revision));
        assert_eq!(get_at(&mut c, &ops, at).await, *revision);
    }
}

async fn revisions_are_filtered(backend: Backend) {
    let (server, saved) = seeded(backend).await;
    let mut c = server.client.clone();
    let storefront =
        common::service_token("storefront", &["contacts.read_user_facing", "history.read"]);
    let ops = common::service_token("ops", &["contacts.read", "history.read"]);

    let filtered = revisions(&mut c, &storefront).await;
    let full = revisions(&mut c, &ops).await;
    assert_eq!(filtered.len(), 3);
    assert_eq!(full.len(), 3);
    // Newest first.
    let newest_first: Vec<&pb::ContactInfo> = saved.iter().rev().collect();
    for ((f, r), want) in filtered.iter().zip(&full).zip(newest_first) {
        assert_eq!(r.contact_info.as_ref(), Some(want));
        assert_eq!(f.contact_info, Some(user_facing(want)));
        // Everything but the contact fields is the same for both readers.
        assert_eq!(
            (&f.name, &f.actor, &f.create_time, &f.request_id),
            (&r.name, &r.actor, &r.create_time, &r.request_id)
        );
        for field in &f.changed_fields {
            assert!(VISIBLE.contains(&field.as_str()), "{field} leaked: {f:?}");
        }
    }
    // changed_fields name only what the reader may see.
    assert_eq!(full[0].changed_fields, ["user_facing_operational_contacts"]);
    assert_eq!(
        filtered[0].changed_fields,
        ["user_facing_operational_contacts"]
    );
    assert_eq!(full[1].changed_fields, ["technical_emergency_contacts"]);
    assert!(filtered[1].changed_fields.is_empty(), "{:?}", filtered[1]);
    assert_eq!(full[2].changed_fields, ALL_FIELDS);
    assert_eq!(filtered[2].changed_fields, VISIBLE);
}

async fn update_responses_are_filtered(backend: Backend) {
    let (server, _) = seeded(backend).await;
    let mut c = server.client.clone();
    let ops = common::service_token("ops", &["contacts.read"]);
    let storefront_writer = common::service_token(
        "storefront-writer",
        &["contacts.write", "contacts.read_user_facing"],
    );
    let full_writer = common::service_token("ops-writer", &["contacts.write", "contacts.read"]);
    // Without any read scope, a writer sees no more than the user-facing fields.
    let blind_writer = common::service_token("blind-writer", &["contacts.write"]);

    let change = pb::ContactInfo {
        technical_emergency_contacts: vec![contact("pager-3@example.com")],
        ..complete_info(PROD)
    };
    for writer in [&storefront_writer, &blind_writer] {
        let saved = save(&mut c, bearer(writer, put(change.clone()))).await;
        let stored = get_at(&mut c, &ops, None).await;
        assert_every_field_filled(&stored);
        assert_eq!(saved, user_facing(&stored));
    }
    let saved = save(&mut c, bearer(&full_writer, put(change.clone()))).await;
    assert_eq!(saved, get_at(&mut c, &ops, None).await);

    // The validate_only preview goes through the same filter.
    let preview = |token: &str| {
        bearer(
            token,
            pb::UpdateContactsRequest {
                validate_only: true,
                ..put_masked(change.clone(), &["merchant_issues_contacts"])
            },
        )
    };
    let full_preview = save(&mut c, preview(&full_writer)).await;
    assert_every_field_filled(&full_preview);
    let filtered_preview = save(&mut c, preview(&storefront_writer)).await;
    assert_eq!(filtered_preview, user_facing(&full_preview));

    // So does the answer replayed for a retried request_id.
    let retried = pb::UpdateContactsRequest {
        request_id: new_request_id(),
        ..put(complete_info(PROD))
    };
    let first = save(&mut c, bearer(&storefront_writer, retried.clone())).await;
    let replay = save(&mut c, bearer(&storefront_writer, retried)).await;
    let stored = get_at(&mut c, &ops, None).await;
    assert_eq!(first, user_facing(&stored));
    assert_eq!(replay, first);

    // A user-facing reader may not look at history without history.read.
    let storefront = common::service_token("storefront", &["contacts.read_user_facing"]);
    let req = pb::GetContactsRequest {
        name: PROD.to_owned(),
        read_time: stored.update_time,
    };
    expect_code(
        c.get_contacts(bearer(&storefront, req)).await,
        Code::PermissionDenied,
    );
}

on_both_backends!(
    get_contacts_is_filtered,
    get_contacts_at_a_past_time_is_filtered,
    revisions_are_filtered,
    update_responses_are_filtered,
);
