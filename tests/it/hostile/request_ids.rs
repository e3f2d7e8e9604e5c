//! request_ids belong to the partner: another partner reusing one (by chance,
//! or to learn which ids were used) gets an ordinary save, never
//! REQUEST_ID_REUSED and never the first partner's result.
use partner_contacts::pb;

use crate::api::{complete_info, grant_alert_users, new_request_id, prod_of, put, save, update};
use crate::common::{Backend, TestServer};
use crate::on_both_backends;

async fn another_partner_reusing_a_request_id_learns_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    grant_alert_users(&mut c, "acme", None).await;
    grant_alert_users(&mut c, "globex", None).await;
    let id = new_request_id();
    let with_id = |info: pb::ContactInfo| pb::UpdateContactsRequest {
        request_id: id.clone(),
        ..put(info)
    };
    let acme = save(&mut c, with_id(complete_info(&prod_of("acme")))).await;
    let mut theirs = complete_info(&prod_of("globex"));
    theirs.merchant_issues_contacts.clear();
    let globex = update(&mut c, with_id(theirs.clone()))
        .await
        .expect("the same id for another partner is a new request");
    assert_eq!(globex.name, prod_of("globex"));
    assert!(globex.merchant_issues_contacts.is_empty());
    assert_ne!(globex.etag, acme.etag);
    // Each partner's retry answers with its own first result.
    assert_eq!(save(&mut c, with_id(theirs)).await, globex);
    assert_eq!(
        save(&mut c, with_id(complete_info(&prod_of("acme")))).await,
        acme
    );
}

on_both_backends!(another_partner_reusing_a_request_id_learns_nothing);
