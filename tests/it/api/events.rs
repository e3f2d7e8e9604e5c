//! ListEvents through the API: a change notice followed the way a consumer
//! without a broker follows it (grpcurl, tests), paging, validation, and the
//! change that emits nothing (validate_only).
use tonic::Code;

use super::*;
use crate::common::{Backend, TestServer};
use crate::on_both_backends;

async fn list(
    c: &mut Client,
    req: pb::ListEventsRequest,
) -> Result<pb::ListEventsResponse, Status> {
    c.list_events(req).await.map(tonic::Response::into_inner)
}

fn after(sequence: i64, page_size: i32) -> pb::ListEventsRequest {
    pb::ListEventsRequest {
        parent: "partners/acme".to_owned(),
        after_sequence: sequence,
        page_size,
        page_token: String::new(),
    }
}

/// Every event of acme, through every page of `page_size`.
async fn all_events(c: &mut Client, page_size: i32) -> Vec<pb::Event> {
    let mut out = Vec::new();
    let mut req = after(0, page_size);
    loop {
        let page = list(c, req.clone()).await.expect("ListEvents");
        out.extend(page.events);
        if page.next_page_token.is_empty() {
            return out;
        }
        req.page_token = page.next_page_token;
    }
}

async fn a_replaced_pager_is_told_to_the_old_and_new_address(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    save(&mut c, put(complete_info(PROD))).await;
    let before = all_events(&mut c, 0).await;
    let last = before.last().expect("events").sequence;

    // A preview saves nothing and tells no one.
    let mut moved = complete_info(PROD);
    moved.technical_emergency_contacts = vec![contact("new-pager@example.com")];
    let mut preview = put(moved.clone());
    preview.validate_only = true;
    update(&mut c, preview).await.expect("preview");
    assert_eq!(all_events(&mut c, 0).await.len(), before.len());

    save(&mut c, put(moved)).await;
    let new = list(&mut c, after(last, 0)).await.expect("ListEvents");
    assert_eq!(new.events.len(), 1, "{new:?}");
    let e = &new.events[0];
    assert_eq!(
        (e.r#type.as_str(), e.sequence),
        ("contacts.changed", last + 1)
    );
    assert_eq!(e.actor, "developer");
    assert!(e.name.starts_with("partners/acme/events/"), "{}", e.name);
    let Some(pb::event::Payload::ContactsChanged(changed)) = &e.payload else {
        panic!("{e:?}")
    };
    assert_eq!(changed.contact_info, PROD);
    assert_eq!(changed.field, "technical_emergency_contacts");
    use pb::notified_address::Change;
    let told: Vec<_> = changed
        .recipients
        .iter()
        .map(|r| (r.email.as_str(), r.change()))
        .collect();
    assert_eq!(
        told,
        [
            ("Pager.Team@Example.COM", Change::Removed),
            ("new-pager@example.com", Change::Added)
        ]
    );
}

async fn pages_follow_the_sequence(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    save(&mut c, put(complete_info(PROD))).await;
    let one_page = all_events(&mut c, 1000).await;
    // 2 grants, then one notice per contact field of complete_info.
    assert_eq!(one_page.len(), 8);
    let sequences: Vec<_> = one_page.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=8).collect::<Vec<i64>>());
    assert_eq!(all_events(&mut c, 3).await, one_page, "pages of 3");

    // A token belongs to its listing: another start or parent is refused.
    let first = list(&mut c, after(2, 2)).await.expect("page");
    assert_eq!(
        first.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [3, 4]
    );
    let mut next = after(2, 2);
    next.page_token = first.next_page_token.clone();
    let second = list(&mut c, next.clone()).await.expect("next page");
    assert_eq!(
        second.events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [5, 6]
    );
    let mut elsewhere = next.clone();
    elsewhere.after_sequence = 0;
    assert_invalid(list(&mut c, elsewhere).await, &["page_token"]);
    let mut other = next;
    other.parent = "partners/other".to_owned();
    assert_invalid(list(&mut c, other).await, &["page_token"]);

    // Past the newest: empty, and no token.
    let tail = list(&mut c, after(8, 0)).await.expect("tail");
    assert!(tail.events.is_empty() && tail.next_page_token.is_empty());
    // A partner with no events lists none.
    let none = list(
        &mut c,
        pb::ListEventsRequest {
            parent: "partners/nobody".to_owned(),
            ..Default::default()
        },
    )
    .await
    .expect("empty");
    assert!(none.events.is_empty());
}

async fn refuses_bad_requests_all_at_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let bad = pb::ListEventsRequest {
        parent: "partners/".to_owned(),
        after_sequence: -1,
        page_size: -5,
        page_token: String::new(),
    };
    assert_invalid(
        list(&mut c, bad).await,
        &["parent", "after_sequence", "page_size"],
    );
    let forged = pb::ListEventsRequest {
        page_token: "zz".to_owned(),
        ..after(0, 0)
    };
    let s = assert_invalid(list(&mut c, forged).await, &["page_token"]);
    assert_eq!(s.code(), Code::InvalidArgument);
}

on_both_backends!(
    a_replaced_pager_is_told_to_the_old_and_new_address,
    pages_follow_the_sequence,
    refuses_bad_requests_all_at_once,
);
