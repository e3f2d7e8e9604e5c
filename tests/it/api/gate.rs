//! CheckOnboardingGate: findings per required field, per integration type
//! and environment, under the built-in or a configured policy.
use partner_contacts::domain::GatePolicy;
use tonic::Code;

use super::*;
use crate::common::{Backend, TestServer};
use crate::on_both_backends;

const REQUIRED_FIELD_MISSING: i32 = pb::GateFindingReason::RequiredFieldMissing as i32;

/// The fields of the findings, after checking each finding's reason and message.
fn missing(r: &pb::CheckOnboardingGateResponse) -> Vec<&str> {
    for f in &r.findings {
        assert_eq!(f.reason, REQUIRED_FIELD_MISSING, "{f:?}");
        assert!(!f.message.is_empty(), "{f:?}");
    }
    assert_eq!(r.open, r.findings.is_empty(), "open iff no findings: {r:?}");
    assert!(r.evaluate_time.is_some(), "evaluate_time is set: {r:?}");
    r.findings.iter().map(|f| f.field.as_str()).collect()
}

/// The built-in required fields, in proto order.
fn required(merchants: bool, production: bool) -> Vec<&'static str> {
    ALL_FIELDS
        .into_iter()
        .filter(|f| merchants || *f != "merchant_issues_contacts")
        .filter(|f| production || *f != "alert_contacts")
        .collect()
}

async fn empty_account_lists_every_required_field(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();

    for (integration_type, merchants) in [
        ("", false),
        ("reservations-e2e", false),
        ("reservations-e2e-merchants", true),
    ] {
        for (name, production) in [(PROD, true), (SANDBOX, false)] {
            let r = check(&mut c, name, integration_type).await;
            assert!(!r.open);
            assert_eq!(
                missing(&r),
                required(merchants, production),
                "{name} {integration_type:?}"
            );
            assert_eq!(r.etag, "", "nothing saved");
            let want_type = if integration_type.is_empty() {
                "reservations-e2e"
            } else {
                integration_type
            };
            assert_eq!(r.integration_type, want_type);
        }
    }
    // Production, default type: exactly these six, in proto order.
    let r = check(&mut c, PROD, "").await;
    assert_eq!(
        missing(&r),
        [
            "alert_contacts",
            "technical_emergency_contacts",
            "technical_non_emergency_contacts",
            "platform_operational_contacts",
            "user_facing_operational_contacts",
            "operational_support",
        ]
    );
    // Asking never creates anything.
    expect_code(get(&mut c, PROD).await, Code::NotFound);
}

async fn open_after_complete_update(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    for name in [PROD, SANDBOX] {
        let saved = save(&mut c, put(complete_info(name))).await;
        for integration_type in ["", "reservations-e2e", "reservations-e2e-merchants"] {
            let r = check(&mut c, name, integration_type).await;
            assert!(r.open, "{name} {integration_type:?}: {r:?}");
            assert!(missing(&r).is_empty());
            assert_eq!(r.etag, saved.etag);
            let evaluated = r.evaluate_time.expect("evaluate_time");
            let updated = saved.update_time.expect("update_time");
            assert!(
                (evaluated.seconds, evaluated.nanos) >= (updated.seconds, updated.nanos),
                "evaluated before the save it saw"
            );
        }
        assert_eq!(
            check(&mut c, name, "").await.integration_type,
            "reservations-e2e"
        );
    }
}

async fn gate_follows_the_stored_state(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    // A draft: only what is still missing is reported.
    let draft = pb::ContactInfo {
        technical_emergency_contacts: vec![contact("pager@example.com")],
        operational_support: always_open(),
        ..named(PROD)
    };
    let saved = save(&mut c, put(draft)).await;
    let r = check(&mut c, PROD, "").await;
    assert_eq!(
        missing(&r),
        [
            "alert_contacts",
            "technical_non_emergency_contacts",
            "platform_operational_contacts",
            "user_facing_operational_contacts",
        ]
    );
    assert_eq!(r.etag, saved.etag);
    // Clearing a field closes the gate again.
    save(&mut c, put(complete_info(PROD))).await;
    assert!(check(&mut c, PROD, "").await.open);
    let cleared = save(&mut c, put_masked(named(PROD), &["operational_support"])).await;
    let r = check(&mut c, PROD, "").await;
    assert_eq!(missing(&r), ["operational_support"]);
    assert_eq!(r.etag, cleared.etag);
    // validate_only changes nothing the gate sees.
    save(
        &mut c,
        pb::UpdateContactsRequest {
            validate_only: true,
            ..put(complete_info(PROD))
        },
    )
    .await;
    assert_eq!(
        missing(&check(&mut c, PROD, "").await),
        ["operational_support"]
    );
}

async fn alert_contacts_required_in_production_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    // The complete sandbox data, saved in both environments.
    for name in [PROD, SANDBOX] {
        save(
            &mut c,
            put(pb::ContactInfo {
                name: name.to_owned(),
                ..complete_info(SANDBOX)
            }),
        )
        .await;
    }
    assert!(check(&mut c, SANDBOX, "").await.open);
    let r = check(&mut c, PROD, "").await;
    assert!(!r.open);
    assert_eq!(missing(&r), ["alert_contacts"]);
}

async fn merchant_contacts_required_only_for_merchant_type(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let without_merchants = pb::ContactInfo {
        merchant_issues_contacts: Vec::new(),
        ..complete_info(PROD)
    };
    save(&mut c, put(without_merchants)).await;
    assert!(check(&mut c, PROD, "").await.open);
    assert!(check(&mut c, PROD, "reservations-e2e").await.open);
    let r = check(&mut c, PROD, "reservations-e2e-merchants").await;
    assert!(!r.open);
    assert_eq!(missing(&r), ["merchant_issues_contacts"]);
    assert_eq!(r.integration_type, "reservations-e2e-merchants");

    let saved = save(
        &mut c,
        put_masked(
            pb::ContactInfo {
                merchant_issues_contacts: vec![contact("merchants@example.com")],
                ..named(PROD)
            },
            &["merchant_issues_contacts"],
        ),
    )
    .await;
    let r = check(&mut c, PROD, "reservations-e2e-merchants").await;
    assert!(r.open, "{r:?}");
    assert_eq!(r.etag, saved.etag);
}

async fn parent_name_is_accepted(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let parent = "partners/acme/environments/production";
    let r = check(&mut c, parent, "").await;
    assert_eq!(missing(&r), required(false, true));

    let saved = save(&mut c, put(complete_info(PROD))).await;
    let r = check(&mut c, parent, "").await;
    assert!(r.open);
    assert_eq!(r.etag, saved.etag);
    // The sandbox parent is its own resource.
    let r = check(&mut c, "partners/acme/environments/sandbox", "").await;
    assert_eq!(missing(&r), required(false, false));
}

async fn unknown_integration_type_is_invalid(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    for unknown in ["nope", "Reservations-E2E", "reservations-e2e "] {
        let s = assert_invalid_because(
            gate(&mut c, PROD, unknown).await,
            "UNKNOWN_INTEGRATION_TYPE",
            &["integration_type"],
        );
        for known in ["reservations-e2e", "reservations-e2e-merchants"] {
            assert!(s.message().contains(known), "{known} not listed: {s:?}");
        }
    }
}

/// AIP-193: one BadRequest lists every violation, here a bad name and an
/// unknown integration type together.
async fn gate_reports_every_violation_at_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let s = expect_code(
        gate(&mut c, "partners/Acme/environments/production", "nope").await,
        Code::InvalidArgument,
    );
    let mut fields = violations(&s);
    fields.sort();
    assert_eq!(fields, ["integration_type", "name"], "{s:?}");
}

async fn bad_gate_names_are_invalid(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let mut names: Vec<String> = super::get::bad_names()
        .into_iter()
        // The parent form is valid here.
        .filter(|n| n != "partners/acme/environments/production")
        .collect();
    names.extend([
        "partners/acme".to_owned(),
        "partners/acme/environments".to_owned(),
        "partners/acme/environments/staging".to_owned(),
    ]);
    for name in names {
        assert_invalid(gate(&mut c, &name, "").await, &["name"]);
    }
}

async fn custom_policy_is_honoured(backend: Backend) {
    let policy = GatePolicy::from_toml(
        "default_integration_type = \"minimal\"\n\
         [integration_types.minimal]\n\
         required_fields = [\"technical_emergency_contacts\"]\n",
    )
    .expect("policy");
    let server = TestServer::start_with(backend, policy).await;
    let mut c = server.client.clone();

    for name in [PROD, SANDBOX] {
        for integration_type in ["", "minimal"] {
            let r = check(&mut c, name, integration_type).await;
            assert_eq!(missing(&r), ["technical_emergency_contacts"]);
            assert_eq!(r.integration_type, "minimal");
        }
    }
    // The built-in types are gone with the built-in policy.
    let s = assert_invalid_because(
        gate(&mut c, PROD, "reservations-e2e").await,
        "UNKNOWN_INTEGRATION_TYPE",
        &["integration_type"],
    );
    assert!(s.message().contains("minimal"), "{s:?}");

    save(
        &mut c,
        put(pb::ContactInfo {
            technical_emergency_contacts: vec![contact("pager@example.com")],
            ..named(PROD)
        }),
    )
    .await;
    assert!(check(&mut c, PROD, "").await.open);
    assert!(!check(&mut c, SANDBOX, "").await.open);
}

on_both_backends!(
    empty_account_lists_every_required_field,
    open_after_complete_update,
    gate_follows_the_stored_state,
    alert_contacts_required_in_production_only,
    merchant_contacts_required_only_for_merchant_type,
    parent_name_is_accepted,
    unknown_integration_type_is_invalid,
    bad_gate_names_are_invalid,
    gate_reports_every_violation_at_once,
    custom_policy_is_honoured,
);
