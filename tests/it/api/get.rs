//! GetContacts: NOT_FOUND before the first save, INVALID_ARGUMENT on bad names.
use tonic::Code;
use tonic_types::StatusExt;

use super::*;
use crate::common::{Backend, TestServer};
use crate::on_both_backends;

/// Names that are not `partners/{partner}/environments/{environment}/contactInfo`.
pub fn bad_names() -> Vec<String> {
    vec![
        String::new(),
        "partners/acme/environments/staging/contactInfo".to_owned(),
        "partners/Acme/environments/production/contactInfo".to_owned(),
        "partners/acme/environments/production".to_owned(),
        "partners/acme/environments/production/contactinfo".to_owned(),
        format!(
            "partners/{}/environments/production/contactInfo",
            "a".repeat(64)
        ),
        "partners/-acme/environments/production/contactInfo".to_owned(),
        "partners/ac_me/environments/production/contactInfo".to_owned(),
        "partners//environments/production/contactInfo".to_owned(),
        "/partners/acme/environments/production/contactInfo".to_owned(),
        "partners/acme/environments/production/contactInfo/".to_owned(),
    ]
}

async fn not_found_when_nothing_saved(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();

    let s = expect_code(get(&mut c, PROD).await, Code::NotFound);
    assert_eq!(error_reason(&s), "RESOURCE_NOT_FOUND");
    let details = s.get_error_details();
    let resource = details.resource_info().expect("ResourceInfo");
    assert_eq!(resource.resource_name, PROD);

    // Each partner and environment is its own resource.
    save(&mut c, put(complete_info(PROD))).await;
    for other in [
        SANDBOX,
        "partners/acme2/environments/production/contactInfo",
    ] {
        let s = expect_code(get(&mut c, other).await, Code::NotFound);
        assert_eq!(error_reason(&s), "RESOURCE_NOT_FOUND");
    }
    assert_eq!(fetch(&mut c, PROD).await.name, PROD);
}

async fn bad_names_are_invalid_argument(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    for name in bad_names() {
        assert_invalid(get(&mut c, &name).await, &["name"]);
    }
}

async fn edge_partner_ids_are_valid_names(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let longest = format!(
        "partners/{}/environments/sandbox/contactInfo",
        "a".repeat(63)
    );
    for name in [
        "partners/12345/environments/production/contactInfo",
        "partners/0-a/environments/sandbox/contactInfo",
        longest.as_str(),
    ] {
        // Valid: NOT_FOUND before the first save, found after it.
        expect_code(get(&mut c, name).await, Code::NotFound);
        save(&mut c, put(named(name))).await;
        assert_eq!(fetch(&mut c, name).await.name, name);
    }
}

on_both_backends!(
    not_found_when_nothing_saved,
    bad_names_are_invalid_argument,
    edge_partner_ids_are_valid_names,
);
