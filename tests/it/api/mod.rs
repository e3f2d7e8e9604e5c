//! The end-to-end gRPC suite: every RPC and every error rule of the contract,
//! through a real socket, on both backends.
//!
//! Helpers shared by the submodules live here so each scenario reads as the
//! rule it checks.
use std::collections::BTreeSet;
use std::fmt::Debug;

use partner_contacts::pb::{self, contacts_service_client::ContactsServiceClient};
use tonic::transport::Channel;
use tonic::{Code, IntoRequest, Status};
use tonic_types::{ErrorDetail, StatusExt};

pub use crate::common::as_caller;
use crate::common::{Backend, TestServer};

mod audience;
mod copy;
mod events;
mod gate;
mod get;
mod history;
mod infra;
mod metrics;
mod recipients;
mod update;
mod users;
mod validation;
mod verification;
mod watch;

pub type Client = ContactsServiceClient<Channel>;

pub const PROD: &str = "partners/acme/environments/production/contactInfo";
pub const SANDBOX: &str = "partners/acme/environments/sandbox/contactInfo";

/// The production contact info of `partner`.
pub fn prod_of(partner: &str) -> String {
    format!("partners/{partner}/environments/production/contactInfo")
}

/// `ErrorInfo.domain` of every error the service returns.
pub const DOMAIN: &str = "partner-contacts";

/// The mask paths of the contract, in the order of the `ContactInfo` fields.
pub const ALL_FIELDS: [&str; 7] = [
    "alert_contacts",
    "technical_emergency_contacts",
    "technical_non_emergency_contacts",
    "merchant_issues_contacts",
    "platform_operational_contacts",
    "user_facing_operational_contacts",
    "operational_support",
];

// ---------------------------------------------------------------- messages

pub fn contact(email: &str) -> pb::Contact {
    pb::Contact {
        email: email.to_owned(),
        ..Default::default()
    }
}

/// A contact with every optional part given.
pub fn full_contact(email: &str, display_name: &str, phone: &str, language: &str) -> pb::Contact {
    pb::Contact {
        email: email.to_owned(),
        display_name: display_name.to_owned(),
        phone_number: phone.to_owned(),
        language_code: language.to_owned(),
        verification: None,
    }
}

pub fn window(tz: &str, days: &[pb::DayOfWeek], open: &str, close: &str) -> pb::SupportWindow {
    pb::SupportWindow {
        time_zone: tz.to_owned(),
        days: days.iter().map(|d| *d as i32).collect(),
        open_time: open.to_owned(),
        close_time: close.to_owned(),
    }
}

pub fn weekdays() -> Vec<pb::DayOfWeek> {
    use pb::DayOfWeek::*;
    vec![Monday, Tuesday, Wednesday, Thursday, Friday]
}

pub fn windows(ws: Vec<pb::SupportWindow>) -> Option<pb::OperationalSupport> {
    Some(pb::OperationalSupport {
        always_open: false,
        windows: ws,
    })
}

pub fn always_open() -> Option<pb::OperationalSupport> {
    Some(pb::OperationalSupport {
        always_open: true,
        windows: Vec::new(),
    })
}

/// A contact info with only its name: every field empty.
pub fn named(name: &str) -> pb::ContactInfo {
    pb::ContactInfo {
        name: name.to_owned(),
        ..Default::default()
    }
}

/// The alert contacts `complete_info` names in production, and the roles
/// [`server`] grants them in partner `acme` (a partner's first portal user must
/// be an ADMINISTRATOR).
pub const ALERT_USERS: [(&str, pb::PortalRole); 2] = [
    ("alerts@example.com", pb::PortalRole::Administrator),
    ("oncall@example.com", pb::PortalRole::Editor),
];

/// Every field filled, so the gate opens for every built-in integration type
/// (alert contacts only outside the sandbox, where they are not allowed).
pub fn complete_info(name: &str) -> pb::ContactInfo {
    let sandbox = name.contains("/environments/sandbox");
    pb::ContactInfo {
        name: name.to_owned(),
        alert_contacts: if sandbox {
            Vec::new()
        } else {
            ALERT_USERS
                .iter()
                .map(|(email, _)| contact(email))
                .collect()
        },
        technical_emergency_contacts: vec![full_contact(
            "Pager.Team@Example.COM",
            "Pager — 日本",
            "+16502530000",
            "pt-BR",
        )],
        technical_non_emergency_contacts: vec![contact("dev@example.com")],
        merchant_issues_contacts: vec![contact("merchants@example.com")],
        platform_operational_contacts: vec![contact("escalations@example.com")],
        user_facing_operational_contacts: vec![contact("Support@Example.com")],
        operational_support: windows(vec![window(
            "America/Los_Angeles",
            &weekdays(),
            "09:00",
            "17:30",
        )]),
        ..Default::default()
    }
}

/// Clears the output-only fields, to compare what was saved with what was sent.
pub fn editable(mut info: pb::ContactInfo) -> pb::ContactInfo {
    info.etag.clear();
    info.create_time = None;
    info.update_time = None;
    info
}

// ---------------------------------------------------------------- servers

/// A development-mode server (every caller has full access) on which partner
/// `acme` already has the alert contacts of [`complete_info`] as portal users:
/// in production, an update naming alert contacts that are not portal users
/// is FAILED_PRECONDITION. Tests that save `complete_info(PROD)` start here;
/// the rest start a bare `TestServer`.
pub async fn server(backend: Backend) -> TestServer {
    let server = TestServer::start(backend).await;
    grant_alert_users(&mut server.client.clone(), "acme", None).await;
    server
}

/// Grants [`ALERT_USERS`] portal access to `partner`, through the API, as
/// `token`'s caller (the developer when `None`), so that
/// `complete_info("partners/{partner}/environments/production/contactInfo")`
/// can be saved.
pub async fn grant_alert_users(c: &mut Client, partner: &str, token: Option<&str>) {
    for (email, role) in ALERT_USERS {
        let req = grant_request(&format!("partners/{partner}"), email, role);
        c.grant_portal_access(as_caller(token, req))
            .await
            .unwrap_or_else(|s| panic!("GrantPortalAccess for an alert contact failed: {s:?}"));
    }
}

// ---------------------------------------------------------------- callers

/// `message` with `token`'s bearer.
pub fn bearer<T>(token: &str, message: T) -> tonic::Request<T> {
    as_caller(Some(token), message)
}

// ---------------------------------------------------------------- requests

/// A full replace (empty mask), unconditional, no request id.
pub fn put(info: pb::ContactInfo) -> pb::UpdateContactsRequest {
    pb::UpdateContactsRequest {
        contact_info: Some(info),
        ..Default::default()
    }
}

/// An update of the fields `paths` names.
pub fn put_masked(info: pb::ContactInfo, paths: &[&str]) -> pb::UpdateContactsRequest {
    pb::UpdateContactsRequest {
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
        ..put(info)
    }
}

/// A full replace conditional on `etag`.
pub fn put_if(mut info: pb::ContactInfo, etag: &str) -> pb::UpdateContactsRequest {
    info.etag = etag.to_owned();
    put(info)
}

pub fn new_request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub fn grant_request(
    parent: &str,
    email: &str,
    role: pb::PortalRole,
) -> pb::GrantPortalAccessRequest {
    pb::GrantPortalAccessRequest {
        parent: parent.to_owned(),
        portal_user: Some(pb::PortalUser {
            email: email.to_owned(),
            role: role as i32,
            ..Default::default()
        }),
    }
}

// ---------------------------------------------------------------- calls

pub async fn update(
    c: &mut Client,
    req: impl IntoRequest<pb::UpdateContactsRequest>,
) -> Result<pb::ContactInfo, Status> {
    c.update_contacts(req)
        .await
        .map(tonic::Response::into_inner)
}

/// An update that must succeed.
pub async fn save(
    c: &mut Client,
    req: impl IntoRequest<pb::UpdateContactsRequest>,
) -> pb::ContactInfo {
    update(c, req)
        .await
        .unwrap_or_else(|s| panic!("UpdateContacts failed: {s:?}"))
}

pub async fn get(c: &mut Client, name: &str) -> Result<pb::ContactInfo, Status> {
    c.get_contacts(pb::GetContactsRequest {
        name: name.to_owned(),
        ..Default::default()
    })
    .await
    .map(tonic::Response::into_inner)
}

/// A GetContacts that must succeed.
pub async fn fetch(c: &mut Client, name: &str) -> pb::ContactInfo {
    get(c, name)
        .await
        .unwrap_or_else(|s| panic!("GetContacts {name} failed: {s:?}"))
}

/// GrantPortalAccess of `email` with `role` to `parent` (`partners/{partner}`),
/// as the developer.
pub async fn grant(
    c: &mut Client,
    parent: &str,
    email: &str,
    role: pb::PortalRole,
) -> Result<pb::PortalUser, Status> {
    c.grant_portal_access(grant_request(parent, email, role))
        .await
        .map(tonic::Response::into_inner)
}

pub async fn gate(
    c: &mut Client,
    name: &str,
    integration_type: &str,
) -> Result<pb::CheckOnboardingGateResponse, Status> {
    c.check_onboarding_gate(pb::CheckOnboardingGateRequest {
        name: name.to_owned(),
        integration_type: integration_type.to_owned(),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// A CheckOnboardingGate that must succeed.
pub async fn check(
    c: &mut Client,
    name: &str,
    integration_type: &str,
) -> pb::CheckOnboardingGateResponse {
    gate(c, name, integration_type)
        .await
        .unwrap_or_else(|s| panic!("CheckOnboardingGate {name} {integration_type:?} failed: {s:?}"))
}

// ---------------------------------------------------------------- errors

/// The error of a call that must fail with `code`.
pub fn expect_code<T: Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(v) => panic!("expected {code:?}, got OK: {v:?}"),
        Err(s) => {
            assert_eq!(s.code(), code, "unexpected status: {s:?}");
            s
        }
    }
}

/// The `ErrorInfo.reason`, after checking the error carries exactly one
/// `ErrorInfo`, in the service's domain.
pub fn error_reason(s: &Status) -> String {
    let infos: Vec<_> = s
        .get_error_details_vec()
        .into_iter()
        .filter_map(|d| match d {
            ErrorDetail::ErrorInfo(info) => Some(info),
            _ => None,
        })
        .collect();
    assert_eq!(infos.len(), 1, "want exactly one ErrorInfo: {s:?}");
    assert_eq!(infos[0].domain, DOMAIN, "{s:?}");
    let reason = &infos[0].reason;
    assert!(
        !reason.is_empty()
            && reason
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
        "ErrorInfo.reason must be UPPER_SNAKE: {reason:?}"
    );
    reason.clone()
}

/// The field paths of the one `BadRequest` an INVALID_ARGUMENT carries, in
/// the order given. Fails unless there is exactly one `BadRequest` and every
/// violation describes itself.
pub fn violations(s: &Status) -> Vec<String> {
    let bad: Vec<_> = s
        .get_error_details_vec()
        .into_iter()
        .filter_map(|d| match d {
            ErrorDetail::BadRequest(b) => Some(b),
            _ => None,
        })
        .collect();
    assert_eq!(bad.len(), 1, "want exactly one BadRequest: {s:?}");
    for v in &bad[0].field_violations {
        assert!(
            !v.description.is_empty(),
            "violation without description: {v:?}"
        );
    }
    bad[0]
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

/// The (type, subject) of each violation of the one `PreconditionFailure` a
/// FAILED_PRECONDITION carries, after checking its `ErrorInfo.reason` is
/// the first violation's type and every violation describes itself.
pub fn precondition_violations(s: &Status) -> Vec<(String, String)> {
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    let failures: Vec<_> = s
        .get_error_details_vec()
        .into_iter()
        .filter_map(|d| match d {
            ErrorDetail::PreconditionFailure(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(
        failures.len(),
        1,
        "want exactly one PreconditionFailure: {s:?}"
    );
    let violations = &failures[0].violations;
    assert!(!violations.is_empty(), "{s:?}");
    for v in violations {
        assert!(
            !v.description.is_empty(),
            "violation without description: {v:?}"
        );
    }
    assert_eq!(error_reason(s), violations[0].r#type, "{s:?}");
    violations
        .iter()
        .map(|v| (v.r#type.clone(), v.subject.clone()))
        .collect()
}

/// Asserts an AIP-193 INVALID_ARGUMENT with reason `reason` whose violations
/// are exactly `fields` (in any order).
pub fn assert_invalid_because<T: Debug>(
    result: Result<T, Status>,
    reason: &str,
    fields: &[&str],
) -> Status {
    let s = expect_code(result, Code::InvalidArgument);
    let got: BTreeSet<String> = violations(&s).into_iter().collect();
    let want: BTreeSet<String> = fields.iter().map(|f| (*f).to_owned()).collect();
    assert_eq!(got, want, "violation fields of {s:?}");
    assert_eq!(error_reason(&s), reason, "{s:?}");
    s
}

/// Asserts a FIELD_VIOLATIONS INVALID_ARGUMENT naming exactly `fields`.
pub fn assert_invalid<T: Debug>(result: Result<T, Status>, fields: &[&str]) -> Status {
    assert_invalid_because(result, "FIELD_VIOLATIONS", fields)
}

/// Everything an error shows a caller, as text: the message, every detail's
/// text fields, and the raw details bytes (lossily).
pub fn error_text(s: &Status) -> String {
    let mut out = s.message().to_owned();
    for d in s.get_error_details_vec() {
        out.push('\n');
        out.push_str(&format!("{d:?}"));
    }
    out.push('\n');
    out.push_str(&String::from_utf8_lossy(s.details()));
    out
}

/// Fails when an error shows any of `secrets` (compared case-insensitively).
pub fn assert_not_echoed(s: &Status, secrets: &[&str]) {
    let text = error_text(s).to_lowercase();
    for secret in secrets {
        assert!(
            !text.contains(&secret.to_lowercase()),
            "the error echoes {secret:?}: {s:?}"
        );
    }
}
