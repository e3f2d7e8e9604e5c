//! CopyContactInfo: a partner's sandbox contacts copied onto production (and
//! back), every shared field copied and alert contacts left alone, recorded
//! in the history with its source; etag, validate_only, request_id and
//! authorisation as UpdateContacts.
use tonic::Code;

use super::*;
use crate::common::{self, Backend, TestServer};
use crate::on_both_backends;

async fn copy(
    c: &mut Client,
    req: impl IntoRequest<pb::CopyContactInfoRequest>,
) -> Result<pb::ContactInfo, Status> {
    c.copy_contact_info(req)
        .await
        .map(tonic::Response::into_inner)
}

fn sandbox_to_prod() -> pb::CopyContactInfoRequest {
    pb::CopyContactInfoRequest {
        name: PROD.to_owned(),
        source: SANDBOX.to_owned(),
        ..Default::default()
    }
}

/// Sandbox contacts unlike production's in every shared field, one of them
/// (merchant issues) empty.
fn sandbox_info() -> pb::ContactInfo {
    pb::ContactInfo {
        technical_emergency_contacts: vec![contact("sandbox-pager@example.com")],
        technical_non_emergency_contacts: vec![contact("sandbox-dev@example.com")],
        merchant_issues_contacts: Vec::new(),
        platform_operational_contacts: vec![contact("sandbox-escalations@example.com")],
        user_facing_operational_contacts: vec![contact("sandbox-support@example.com")],
        operational_support: always_open(),
        ..complete_info(SANDBOX)
    }
}

async fn revisions(c: &mut Client, name: &str) -> Vec<pb::ContactInfoRevision> {
    c.list_contact_info_revisions(pb::ListContactInfoRevisionsRequest {
        name: name.to_owned(),
        page_size: 100,
        page_token: String::new(),
    })
    .await
    .expect("ListContactInfoRevisions")
    .into_inner()
    .revisions
}

async fn copies_every_shared_field_and_leaves_alert_contacts(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let sandbox = save(&mut c, put(sandbox_info())).await;
    let before = save(&mut c, put(complete_info(PROD))).await;

    let copied = copy(&mut c, sandbox_to_prod()).await.expect("copy");
    assert_eq!(copied.name, PROD);
    assert_eq!(copied.alert_contacts, before.alert_contacts);
    let want = pb::ContactInfo {
        name: PROD.to_owned(),
        alert_contacts: before.alert_contacts.clone(),
        ..editable(sandbox.clone())
    };
    assert_eq!(editable(copied.clone()), want);
    assert_ne!(copied.etag, before.etag);
    assert_eq!(copied.create_time, before.create_time);
    assert_eq!(fetch(&mut c, PROD).await, copied);
    // The source is untouched.
    assert_eq!(fetch(&mut c, SANDBOX).await, sandbox);

    let history = revisions(&mut c, PROD).await;
    assert_eq!(history.len(), 2);
    assert_eq!(
        history[0].source,
        "partners/acme/environments/sandbox/contactInfo/revisions/1"
    );
    assert_eq!(history[0].actor, "developer");
    let changed: BTreeSet<&str> = history[0]
        .changed_fields
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        changed,
        BTreeSet::from([
            "technical_emergency_contacts",
            "technical_non_emergency_contacts",
            "merchant_issues_contacts",
            "platform_operational_contacts",
            "user_facing_operational_contacts",
            "operational_support",
        ])
    );
    assert_eq!(history[0].contact_info.as_ref(), Some(&copied));
    assert_eq!(
        history[1].source, "",
        "an UpdateContacts revision has no source"
    );
}

async fn creates_the_target_and_copies_production_back_without_alert_contacts(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let prod = save(&mut c, put(complete_info(PROD))).await;
    let created = copy(
        &mut c,
        pb::CopyContactInfoRequest {
            name: SANDBOX.to_owned(),
            source: PROD.to_owned(),
            ..Default::default()
        },
    )
    .await
    .expect("copy to sandbox");
    assert!(created.alert_contacts.is_empty());
    let want = pb::ContactInfo {
        name: SANDBOX.to_owned(),
        alert_contacts: Vec::new(),
        ..editable(prod)
    };
    assert_eq!(editable(created.clone()), want);
    assert_eq!(
        revisions(&mut c, SANDBOX).await[0].source,
        "partners/acme/environments/production/contactInfo/revisions/1"
    );
}

async fn honours_the_etag(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    save(&mut c, put(sandbox_info())).await;
    let first = save(&mut c, put(complete_info(PROD))).await;
    let second = save(&mut c, put(complete_info(PROD))).await;

    let stale = copy(
        &mut c,
        pb::CopyContactInfoRequest {
            etag: first.etag.clone(),
            ..sandbox_to_prod()
        },
    )
    .await;
    expect_code(stale, Code::Aborted);
    assert_eq!(fetch(&mut c, PROD).await, second);
    assert_eq!(revisions(&mut c, PROD).await.len(), 2);

    let fresh = copy(
        &mut c,
        pb::CopyContactInfoRequest {
            etag: second.etag.clone(),
            ..sandbox_to_prod()
        },
    )
    .await
    .expect("copy with the current etag");
    assert_eq!(fetch(&mut c, PROD).await, fresh);
}

async fn validate_only_saves_nothing(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let sandbox = save(&mut c, put(sandbox_info())).await;
    let before = save(&mut c, put(complete_info(PROD))).await;
    let preview = copy(
        &mut c,
        pb::CopyContactInfoRequest {
            validate_only: true,
            ..sandbox_to_prod()
        },
    )
    .await
    .expect("validate_only");
    assert_eq!(
        preview.technical_emergency_contacts,
        sandbox.technical_emergency_contacts
    );
    assert_eq!(preview.alert_contacts, before.alert_contacts);
    // Nothing saved: the stored etag and times come back unchanged.
    assert_eq!(preview.etag, before.etag);
    assert_eq!(fetch(&mut c, PROD).await, before);
    assert_eq!(revisions(&mut c, PROD).await.len(), 1);
}

async fn a_request_id_makes_retries_safe(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    save(&mut c, put(sandbox_info())).await;
    save(&mut c, put(complete_info(PROD))).await;
    let req = pb::CopyContactInfoRequest {
        request_id: new_request_id(),
        ..sandbox_to_prod()
    };
    let first = copy(&mut c, req.clone()).await.expect("copy");
    // The sandbox changes; a retry still answers the first result.
    save(
        &mut c,
        put(pb::ContactInfo {
            technical_emergency_contacts: vec![contact("later@example.com")],
            ..sandbox_info()
        }),
    )
    .await;
    let retry = copy(&mut c, req.clone()).await.expect("retry");
    assert_eq!(retry, first);
    assert_eq!(revisions(&mut c, PROD).await.len(), 2);

    // The same id for another request is refused, an UpdateContacts too.
    let other = copy(
        &mut c,
        pb::CopyContactInfoRequest {
            etag: first.etag.clone(),
            ..req.clone()
        },
    )
    .await;
    assert_invalid_because(other, "REQUEST_ID_REUSED", &["request_id"]);
    let update = update(
        &mut c,
        pb::UpdateContactsRequest {
            request_id: req.request_id.clone(),
            ..put(complete_info(PROD))
        },
    )
    .await;
    assert_invalid_because(update, "REQUEST_ID_REUSED", &["request_id"]);
    assert_eq!(revisions(&mut c, PROD).await.len(), 2);
}

async fn refuses_bad_names_and_a_missing_source(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    save(&mut c, put(sandbox_info())).await;

    let other_partner = copy(
        &mut c,
        pb::CopyContactInfoRequest {
            source: "partners/globex/environments/sandbox/contactInfo".to_owned(),
            ..sandbox_to_prod()
        },
    )
    .await;
    assert_invalid(other_partner, &["source"]);
    let same_environment = copy(
        &mut c,
        pb::CopyContactInfoRequest {
            source: PROD.to_owned(),
            ..sandbox_to_prod()
        },
    )
    .await;
    assert_invalid(same_environment, &["source"]);
    let both_bad = copy(
        &mut c,
        pb::CopyContactInfoRequest {
            name: "partners/acme/environments/staging/contactInfo".to_owned(),
            source: String::new(),
            request_id: "not-a-uuid".to_owned(),
            ..Default::default()
        },
    )
    .await;
    assert_invalid(both_bad, &["name", "source", "request_id"]);

    let nothing_saved = copy(
        &mut c,
        pb::CopyContactInfoRequest {
            name: prod_of("newco"),
            source: "partners/newco/environments/sandbox/contactInfo".to_owned(),
            ..Default::default()
        },
    )
    .await;
    let s = expect_code(nothing_saved, Code::NotFound);
    assert!(s.message().contains("sandbox"), "{s:?}");
    expect_code(get(&mut c, &prod_of("newco")).await, Code::NotFound);
}

async fn authorised_as_an_update(backend: Backend) {
    let server = TestServer::start_with_auth(backend, common::hs256_authenticator()).await;
    let mut c = server.client.clone();
    let setup = common::full_access_token("setup");
    grant_alert_users(&mut c, "acme", Some(&setup)).await;
    save(&mut c, bearer(&setup, put(sandbox_info()))).await;
    let before = save(&mut c, bearer(&setup, put(complete_info(PROD)))).await;

    let read_only = common::portal_token(
        "rita",
        "acme",
        partner_contacts::domain::PortalRole::ReadOnly,
    );
    let reader = common::service_token("reader", &["contacts.read"]);
    let other_partner = common::portal_token(
        "eve",
        "globex",
        partner_contacts::domain::PortalRole::Administrator,
    );
    for token in [&read_only, &reader, &other_partner] {
        expect_code(
            copy(&mut c, bearer(token, sandbox_to_prod())).await,
            Code::PermissionDenied,
        );
    }
    assert_eq!(fetch_as(&mut c, &setup).await, before);

    let editor = common::portal_token("ed", "acme", partner_contacts::domain::PortalRole::Editor);
    let copied = copy(&mut c, bearer(&editor, sandbox_to_prod()))
        .await
        .expect("an editor may copy");
    assert_eq!(
        revisions_as(&mut c, &setup).await[0].actor,
        "ed",
        "{copied:?}"
    );
}

async fn fetch_as(c: &mut Client, token: &str) -> pb::ContactInfo {
    c.get_contacts(bearer(
        token,
        pb::GetContactsRequest {
            name: PROD.to_owned(),
            read_time: None,
        },
    ))
    .await
    .expect("GetContacts")
    .into_inner()
}

async fn revisions_as(c: &mut Client, token: &str) -> Vec<pb::ContactInfoRevision> {
    c.list_contact_info_revisions(bearer(
        token,
        pb::ListContactInfoRevisionsRequest {
            name: PROD.to_owned(),
            page_size: 10,
            page_token: String::new(),
        },
    ))
    .await
    .expect("ListContactInfoRevisions")
    .into_inner()
    .revisions
}

on_both_backends!(
    copies_every_shared_field_and_leaves_alert_contacts,
    creates_the_target_and_copies_production_back_without_alert_contacts,
    honours_the_etag,
    validate_only_saves_nothing,
    a_request_id_makes_retries_safe,
    refuses_bad_names_and_a_missing_source,
    authorised_as_an_update,
);
