//! Revision history through the API: every save recorded with its actor,
//! request id and changed fields, listed newest first, readable as of a past
//! moment with GetContacts' read_time, and never changed by any RPC.
use std::time::Duration;

use prost::Message;
use tonic::Code;

use super::*;
use crate::common::{self, Backend, TestServer};
use crate::on_both_backends;

async fn revisions_page(
    c: &mut Client,
    name: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListContactInfoRevisionsResponse, Status> {
    c.list_contact_info_revisions(pb::ListContactInfoRevisionsRequest {
        name: name.to_owned(),
        page_size,
        page_token: page_token.to_owned(),
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn get_as_of(
    c: &mut Client,
    name: &str,
    read_time: prost_types::Timestamp,
) -> Result<pb::ContactInfo, Status> {
    c.get_contacts(pb::GetContactsRequest {
        name: name.to_owned(),
        read_time: Some(read_time),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// `t` moved by `micros` microseconds.
fn shifted(t: Option<prost_types::Timestamp>, micros: i64) -> prost_types::Timestamp {
    let t = t.expect("timestamp");
    let total =
        i128::from(t.seconds) * 1_000_000_000 + i128::from(t.nanos) + i128::from(micros) * 1000;
    prost_types::Timestamp {
        seconds: i64::try_from(total.div_euclid(1_000_000_000)).expect("seconds"),
        nanos: i32::try_from(total.rem_euclid(1_000_000_000)).expect("nanos"),
    }
}

fn emergency(email: &str) -> pb::ContactInfo {
    pb::ContactInfo {
        technical_emergency_contacts: vec![contact(email)],
        ..complete_info(PROD)
    }
}

async fn every_save_is_a_revision_with_its_actor(backend: Backend) {
    let server = TestServer::start_with_auth(backend, common::hs256_authenticator()).await;
    let mut c = server.client.clone();
    let setup = common::full_access_token("setup");
    grant_alert_users(&mut c, "acme", Some(&setup)).await;

    let service = common::service_token("contacts-sync", &["contacts.write", "contacts.read"]);
    let editor = common::portal_token(
        "portal-user-42",
        "acme",
        partner_contacts::domain::PortalRole::Editor,
    );
    let reader = common::service_token("auditor", &["contacts.read", "history.read"]);

    let id = new_request_id();
    let with_id = pb::UpdateContactsRequest {
        request_id: id.clone(),
        ..put(complete_info(PROD))
    };
    let first = save(&mut c, bearer(&service, with_id.clone())).await;
    let second = save(
        &mut c,
        bearer(
            &editor,
            put_masked(
                emergency("pager-2@example.com"),
                &["technical_emergency_contacts"],
            ),
        ),
    )
    .await;
    // Neither a retry nor a validate_only call is a save.
    assert_eq!(save(&mut c, bearer(&service, with_id)).await, first);
    save(
        &mut c,
        bearer(
            &service,
            pb::UpdateContactsRequest {
                validate_only: true,
                ..put(complete_info(PROD))
            },
        ),
    )
    .await;
    // Saving the same content again is a save that changes nothing.
    let third = save(&mut c, bearer(&service, put(editable(second.clone())))).await;
    assert_ne!(third.etag, second.etag);

    let req = pb::ListContactInfoRevisionsRequest {
        name: PROD.to_owned(),
        page_size: 10,
        page_token: String::new(),
    };
    let page = c
        .list_contact_info_revisions(bearer(&reader, req))
        .await
        .expect("list")
        .into_inner();
    assert!(page.next_page_token.is_empty());
    let got: Vec<_> = page
        .revisions
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                r.actor.as_str(),
                r.request_id.as_str(),
                r.changed_fields.clone(),
            )
        })
        .collect();
    let all: Vec<String> = ALL_FIELDS.iter().map(|f| (*f).to_owned()).collect();
    assert_eq!(
        got,
        [
            (&*format!("{PROD}/revisions/3"), "contacts-sync", "", vec![]),
            (
                &*format!("{PROD}/revisions/2"),
                "portal-user-42",
                "",
                vec!["technical_emergency_contacts".to_owned()]
            ),
            (
                &*format!("{PROD}/revisions/1"),
                "contacts-sync",
                id.as_str(),
                all
            ),
        ]
    );
    // Each holds the whole resource as saved, stamped with the save's time.
    for (revision, saved) in page.revisions.iter().zip([&third, &second, &first]) {
        assert_eq!(revision.contact_info.as_ref(), Some(saved));
        assert_eq!(revision.create_time, saved.update_time);
    }
}

async fn developer_is_the_actor_without_auth(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let saved = save(&mut c, put(complete_info(PROD))).await;
    let page = revisions_page(&mut c, PROD, 0, "").await.expect("list");
    assert_eq!(page.revisions.len(), 1);
    assert_eq!(page.revisions[0].actor, "developer");
    assert_eq!(page.revisions[0].contact_info.as_ref(), Some(&saved));
}

async fn revisions_page_newest_first(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    // Nothing saved: an empty list.
    let empty = revisions_page(&mut c, PROD, 2, "").await.expect("list");
    assert!(empty.revisions.is_empty() && empty.next_page_token.is_empty());

    for i in 1..=5 {
        save(
            &mut c,
            put(pb::ContactInfo {
                technical_emergency_contacts: vec![contact(&format!("pager-{i}@example.com"))],
                ..named(PROD)
            }),
        )
        .await;
    }
    save(&mut c, put(named(SANDBOX))).await;

    let mut names = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = revisions_page(&mut c, PROD, 2, &token).await.expect("page");
        sizes.push(page.revisions.len());
        names.extend(page.revisions.into_iter().map(|r| r.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(sizes, [2, 2, 1]);
    let want: Vec<String> = (1..=5)
        .rev()
        .map(|n| format!("{PROD}/revisions/{n}"))
        .collect();
    assert_eq!(names, want);
    // The sandbox is its own resource with its own history.
    let sandbox = revisions_page(&mut c, SANDBOX, 0, "").await.expect("list");
    assert_eq!(sandbox.revisions.len(), 1);
    assert_eq!(sandbox.revisions[0].name, format!("{SANDBOX}/revisions/1"));

    // Page tokens belong to their request.
    let token = revisions_page(&mut c, PROD, 2, "")
        .await
        .expect("page")
        .next_page_token;
    assert_invalid(
        revisions_page(&mut c, SANDBOX, 2, &token).await,
        &["page_token"],
    );
    for bad in ["garbage", "abc", "%%"] {
        assert_invalid(revisions_page(&mut c, PROD, 2, bad).await, &["page_token"]);
    }
    assert_invalid(revisions_page(&mut c, PROD, -1, "").await, &["page_size"]);
    for name in super::get::bad_names() {
        assert_invalid(revisions_page(&mut c, &name, 2, "").await, &["name"]);
    }
    assert_invalid(
        revisions_page(&mut c, "partners/acme", -3, "").await,
        &["name", "page_size"],
    );
}

/// "Who was the emergency contact when that alert fired?"
async fn read_time_returns_the_state_at_that_moment(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let mut saved = Vec::new();
    for pager in [
        "pager-1@example.com",
        "pager-2@example.com",
        "pager-3@example.com",
    ] {
        saved.push(save(&mut c, put(emergency(pager))).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (first, second, third) = (&saved[0], &saved[1], &saved[2]);

    // An alert that fired between the first and the second save.
    let alert_fired = shifted(second.update_time, -1);
    let then = get_as_of(&mut c, PROD, alert_fired)
        .await
        .expect("as of then");
    assert_eq!(then, *first);
    assert_eq!(
        then.technical_emergency_contacts[0].email,
        "pager-1@example.com"
    );
    // At the very moment of a save, that save counts.
    for s in [first, second, third] {
        assert_eq!(
            get_as_of(&mut c, PROD, s.update_time.expect("t"))
                .await
                .expect("at"),
            *s
        );
    }
    // Later (even in the future): the current state.
    let later = shifted(third.update_time, 3_600_000_000);
    assert_eq!(get_as_of(&mut c, PROD, later).await.expect("later"), *third);
    assert_eq!(fetch(&mut c, PROD).await, *third);

    // Before the first save, and for a resource never saved: NOT_FOUND.
    for (name, at) in [
        (PROD, shifted(first.update_time, -1)),
        (
            PROD,
            prost_types::Timestamp {
                seconds: 0,
                nanos: 0,
            },
        ),
        (SANDBOX, later),
    ] {
        let s = expect_code(get_as_of(&mut c, name, at).await, Code::NotFound);
        assert_eq!(error_reason(&s), "RESOURCE_NOT_FOUND");
    }

    // Timestamps that are not valid moments.
    for at in [
        prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 1_000_000_000,
        },
        prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: -1,
        },
        prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        },
        prost_types::Timestamp {
            seconds: i64::MIN,
            nanos: 0,
        },
    ] {
        assert_invalid(get_as_of(&mut c, PROD, at).await, &["read_time"]);
    }
}

/// The methods of ContactsService, as server reflection describes them.
async fn service_methods(channel: &tonic::transport::Channel) -> Vec<String> {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::FileContainingSymbol(
            "partnerportal.contacts.v1.ContactsService".to_owned(),
        )),
    };
    let mut responses = ServerReflectionClient::new(channel.clone())
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let mut methods = Vec::new();
    while let Some(r) = responses.message().await.expect("reflection response") {
        let Some(MessageResponse::FileDescriptorResponse(files)) = r.message_response else {
            panic!("unexpected reflection response: {r:?}");
        };
        for bytes in files.file_descriptor_proto {
            let file =
                prost_types::FileDescriptorProto::decode(bytes.as_slice()).expect("descriptor");
            for service in file
                .service
                .iter()
                .filter(|s| s.name() == "ContactsService")
            {
                methods.extend(service.method.iter().map(|m| m.name().to_owned()));
            }
        }
    }
    methods
}

async fn no_rpc_changes_or_deletes_revisions(backend: Backend) {
    let server = TestServer::start(backend).await;
    let methods = service_methods(&server.channel).await;
    for known in ["GetContacts", "UpdateContacts", "ListContactInfoRevisions"] {
        assert!(
            methods.iter().any(|m| m == known),
            "{known} missing: {methods:?}"
        );
    }
    // Revisions can be listed, and nothing else: no method touches them.
    let about_revisions: Vec<&String> = methods
        .iter()
        .filter(|m| m.to_lowercase().contains("revision"))
        .collect();
    assert_eq!(about_revisions, ["ListContactInfoRevisions"], "{methods:?}");
    for m in &methods {
        assert!(
            !m.starts_with("Delete") && !m.starts_with("Purge"),
            "{m} deletes something: {methods:?}"
        );
    }
}

on_both_backends!(
    every_save_is_a_revision_with_its_actor,
    developer_is_the_actor_without_auth,
    revisions_page_newest_first,
    read_time_returns_the_state_at_that_moment,
    no_rpc_changes_or_deletes_revisions,
);
