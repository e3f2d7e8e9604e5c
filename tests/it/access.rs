//! The access matrix, end to end: every kind of caller against every RPC, on
//! its own partner and on another one, through a real socket, on both
//! backends.
//!
//! The expected codes come from the explicit tables below ([`SERVICE_MATRIX`],
//! [`PORTAL_MATRIX`]), which mirror the documented matrix; they are not
//! computed with the service's own rules. The test prints the matrix it
//! verified as a markdown table (`cargo test --test it access -- --nocapture`).
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use partner_contacts::domain::PortalRole;
use partner_contacts::pb;
use tonic::{Code, Status};

use crate::api::{
    Client, PROD, as_caller, bearer, complete_info, contact, expect_code, grant_alert_users,
    grant_request, named, prod_of, put, put_masked, save,
};
use crate::common::{self, Backend, TestServer};
use crate::on_both_backends;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rpc {
    GetContacts,
    GetContactsAtTime,
    UpdateContacts,
    CopyContactInfo,
    CheckOnboardingGate,
    ResolveRecipients,
    ListContactInfoRevisions,
    ListPortalUsers,
    GrantPortalAccess,
    UpdatePortalUserRole,
    RevokePortalAccess,
    ListEvents,
    SendVerification,
    ConfirmContact,
}

use Rpc::*;

const ALL_RPCS: [Rpc; 14] = [
    GetContacts,
    GetContactsAtTime,
    UpdateContacts,
    CopyContactInfo,
    CheckOnboardingGate,
    ResolveRecipients,
    ListContactInfoRevisions,
    ListPortalUsers,
    GrantPortalAccess,
    UpdatePortalUserRole,
    RevokePortalAccess,
    ListEvents,
    SendVerification,
    ConfirmContact,
];

impl Rpc {
    fn label(self) -> &'static str {
        match self {
            GetContacts => "GetContacts",
            GetContactsAtTime => "GetContacts with read_time",
            UpdateContacts => "UpdateContacts",
            CopyContactInfo => "CopyContactInfo",
            CheckOnboardingGate => "CheckOnboardingGate",
            ResolveRecipients => "ResolveRecipients",
            ListContactInfoRevisions => "ListContactInfoRevisions",
            ListPortalUsers => "ListPortalUsers",
            GrantPortalAccess => "GrantPortalAccess",
            UpdatePortalUserRole => "UpdatePortalUserRole",
            RevokePortalAccess => "RevokePortalAccess",
            ListEvents => "ListEvents",
            SendVerification => "SendVerification",
            ConfirmContact => "ConfirmContact",
        }
    }
}

/// Platform services: what each set of scopes allows, on any partner.
const SERVICE_MATRIX: &[(&[&str], &[Rpc])] = &[
    (&[], &[]),
    (&["contacts.read"], &[GetContacts, ResolveRecipients]),
    (
        &["contacts.read_user_facing"],
        &[GetContacts, ResolveRecipients],
    ),
    (
        &["contacts.write"],
        &[UpdateContacts, CopyContactInfo, SendVerification],
    ),
    (&["contacts.verify"], &[ConfirmContact]),
    (&["gate.check"], &[CheckOnboardingGate]),
    (
        &["users.manage"],
        &[
            ListPortalUsers,
            GrantPortalAccess,
            UpdatePortalUserRole,
            RevokePortalAccess,
        ],
    ),
    (&["events.read"], &[ListEvents]),
    // History needs a read scope beside it.
    (&["history.read"], &[]),
    (
        &["history.read", "contacts.read"],
        &[
            GetContacts,
            GetContactsAtTime,
            ResolveRecipients,
            ListContactInfoRevisions,
        ],
    ),
    (
        &["history.read", "contacts.read_user_facing"],
        &[
            GetContacts,
            GetContactsAtTime,
            ResolveRecipients,
            ListContactInfoRevisions,
        ],
    ),
];

/// Portal users of `acme`: what each role allows on `acme`. Nothing is
/// allowed on any other partner.
const PORTAL_MATRIX: &[(PortalRole, &[Rpc])] = &[
    (PortalRole::Administrator, &ALL_RPCS),
    (
        PortalRole::Editor,
        &[
            GetContacts,
            GetContactsAtTime,
            UpdateContacts,
            CopyContactInfo,
            CheckOnboardingGate,
            ResolveRecipients,
            ListContactInfoRevisions,
            ListPortalUsers,
            SendVerification,
            ConfirmContact,
        ],
    ),
    (
        PortalRole::ReadOnly,
        &[
            GetContacts,
            GetContactsAtTime,
            CheckOnboardingGate,
            ResolveRecipients,
            ListContactInfoRevisions,
            ListPortalUsers,
            ConfirmContact,
        ],
    ),
];

/// Whose data a call is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `acme`: the portal users' own partner; has data.
    Own,
    /// `other`: another partner with data.
    Other,
    /// `nobody`: a partner with no data at all, only to compare denials with.
    Missing,
}

impl Target {
    fn partner(self) -> &'static str {
        match self {
            Self::Own => "acme",
            Self::Other => "other",
            Self::Missing => "nobody",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum BadToken {
    WrongSecret,
    Expired,
    WrongAudience,
    NotAJwt,
}

#[derive(Debug, Clone, Copy)]
enum Caller {
    /// No auth configured: development mode.
    Developer,
    Service(&'static [&'static str]),
    /// A portal user of `acme`.
    Portal(PortalRole),
    NoCredentials,
    Bad(BadToken),
}

impl Caller {
    fn label(self) -> String {
        match self {
            Self::Developer => "developer (no auth configured)".to_owned(),
            Self::Service([]) => "service, no scope".to_owned(),
            Self::Service(scopes) => format!("service `{}`", scopes.join("` + `")),
            Self::Portal(role) => format!("portal user, {}", role.as_str()),
            Self::NoCredentials => "no credentials".to_owned(),
            Self::Bad(BadToken::WrongSecret) => "token signed with another secret".to_owned(),
            Self::Bad(BadToken::Expired) => "expired token".to_owned(),
            Self::Bad(BadToken::WrongAudience) => "token for another audience".to_owned(),
            Self::Bad(BadToken::NotAJwt) => "bearer that is not a JWT".to_owned(),
        }
    }

    fn token(self) -> Option<String> {
        match self {
            Self::Developer | Self::NoCredentials => None,
            Self::Service(scopes) => Some(common::service_token("matrix-service", scopes)),
            Self::Portal(role) => Some(common::portal_token(
                &format!("portal-{}", role.as_str().to_lowercase()),
                "acme",
                role,
            )),
            Self::Bad(BadToken::WrongSecret) => Some(common::wrong_secret_token()),
            Self::Bad(BadToken::Expired) => Some(common::expired_token()),
            Self::Bad(BadToken::WrongAudience) => Some(common::wrong_audience_token()),
            Self::Bad(BadToken::NotAJwt) => Some("not-a-jwt".to_owned()),
        }
    }

    /// The documented answer, from the tables above. Every allowed call in
    /// this test is built to succeed, so "allowed" means OK.
    fn expected(self, rpc: Rpc, target: Target) -> Code {
        let allowed = match self {
            Self::NoCredentials | Self::Bad(_) => return Code::Unauthenticated,
            Self::Developer => true,
            Self::Service(scopes) => SERVICE_MATRIX
                .iter()
                .find(|(s, _)| *s == scopes)
                .unwrap_or_else(|| panic!("{scopes:?} is not in SERVICE_MATRIX"))
                .1
                .contains(&rpc),
            Self::Portal(role) => {
                target == Target::Own
                    && PORTAL_MATRIX
                        .iter()
                        .find(|(r, _)| *r == role)
                        .expect("every role is in PORTAL_MATRIX")
                        .1
                        .contains(&rpc)
            }
        };
        if allowed {
            Code::Ok
        } else {
            Code::PermissionDenied
        }
    }
}

/// A server with `acme` and `other` seeded (portal users, complete sandbox
/// and production contact info), and `nobody` left empty.
struct World {
    server: TestServer,
    /// A full-access service token for preparing calls; `None` in development mode.
    setup: Option<String>,
    /// A moment after the seeding, for GetContacts with read_time.
    read_time: prost_types::Timestamp,
}

impl World {
    async fn new(backend: Backend, with_auth: bool) -> Self {
        let server = if with_auth {
            TestServer::start_with_auth(backend, common::hs256_authenticator()).await
        } else {
            TestServer::start(backend).await
        };
        let setup = with_auth.then(|| common::full_access_token("matrix-setup"));
        let mut c = server.client.clone();
        for partner in ["acme", "other"] {
            grant_alert_users(&mut c, partner, setup.as_deref()).await;
            for name in [prod_of(partner), sandbox_of(partner)] {
                save(
                    &mut c,
                    as_caller(setup.as_deref(), put(complete_info(&name))),
                )
                .await;
            }
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
        let read_time = prost_types::Timestamp {
            seconds: i64::try_from(now.as_secs()).expect("seconds"),
            nanos: i32::try_from(now.subsec_nanos()).expect("nanos"),
        };
        Self {
            server,
            setup,
            read_time,
        }
    }

    fn client(&self) -> Client {
        self.server.client.clone()
    }

    /// A portal user to change or revoke: a fresh READ_ONLY user of a partner
    /// with data, an unknown id under `nobody`.
    async fn user_to_change(&self, target: Target) -> String {
        if target == Target::Missing {
            return format!("partners/nobody/portalUsers/{}", uuid::Uuid::new_v4());
        }
        let req = grant_request(
            &format!("partners/{}", target.partner()),
            &format!("{}@example.com", uuid::Uuid::new_v4().simple()),
            pb::PortalRole::ReadOnly,
        );
        self.client()
            .grant_portal_access(as_caller(self.setup.as_deref(), req))
            .await
            .unwrap_or_else(|s| panic!("setup grant failed: {s:?}"))
            .into_inner()
            .name
    }

    /// A fresh challenge for an address of `target`'s production contacts,
    /// sent and read from its events by the setup caller; any well-formed
    /// string for `nobody`.
    async fn challenge_for(&self, target: Target) -> String {
        if target == Target::Missing {
            return "0".repeat(64);
        }
        let partner = target.partner();
        let mut c = self.client();
        let send = pb::SendVerificationRequest {
            name: prod_of(partner),
            emails: vec!["merchants@example.com".to_owned()],
        };
        c.send_verification(as_caller(self.setup.as_deref(), send))
            .await
            .unwrap_or_else(|s| panic!("setup SendVerification failed: {s:?}"));
        let list = pb::ListEventsRequest {
            parent: format!("partners/{partner}"),
            page_size: 1000,
            ..Default::default()
        };
        let events = c
            .list_events(as_caller(self.setup.as_deref(), list))
            .await
            .unwrap_or_else(|s| panic!("setup ListEvents failed: {s:?}"))
            .into_inner()
            .events;
        events
            .iter()
            .rev()
            .find_map(|e| match &e.payload {
                Some(pb::event::Payload::VerificationRequested(v)) => Some(v.challenge.clone()),
                _ => None,
            })
            .expect("a verification.requested event")
    }

    /// `rpc` on `target`'s data as `token`'s caller. Each request is valid and,
    /// when allowed, succeeds whatever ran before it.
    async fn call(&self, token: Option<&str>, rpc: Rpc, target: Target) -> Result<(), Status> {
        let partner = target.partner();
        let name = prod_of(partner);
        let parent = format!("partners/{partner}");
        let mut c = self.client();
        match rpc {
            GetContacts | GetContactsAtTime => {
                let req = pb::GetContactsRequest {
                    name,
                    read_time: (rpc == GetContactsAtTime).then_some(self.read_time),
                };
                c.get_contacts(as_caller(token, req)).await.map(drop)
            }
            UpdateContacts => {
                // A masked update that names no alert contact.
                let info = pb::ContactInfo {
                    technical_non_emergency_contacts: vec![contact("dev@example.com")],
                    ..named(&name)
                };
                let req = put_masked(info, &["technical_non_emergency_contacts"]);
                c.update_contacts(as_caller(token, req)).await.map(drop)
            }
            CopyContactInfo => {
                let req = pb::CopyContactInfoRequest {
                    name,
                    source: sandbox_of(partner),
                    ..Default::default()
                };
                c.copy_contact_info(as_caller(token, req)).await.map(drop)
            }
            CheckOnboardingGate => {
                let req = pb::CheckOnboardingGateRequest {
                    name,
                    integration_type: String::new(),
                };
                c.check_onboarding_gate(as_caller(token, req))
                    .await
                    .map(drop)
            }
            ResolveRecipients => {
                let req = pb::ResolveRecipientsRequest {
                    name,
                    purpose: pb::Purpose::UserSupport as i32,
                    at_time: None,
                };
                c.resolve_recipients(as_caller(token, req)).await.map(drop)
            }
            ListContactInfoRevisions => {
                let req = pb::ListContactInfoRevisionsRequest {
                    name,
                    page_size: 1,
                    page_token: String::new(),
                };
                c.list_contact_info_revisions(as_caller(token, req))
                    .await
                    .map(drop)
            }
            ListPortalUsers => {
                let req = pb::ListPortalUsersRequest {
                    parent,
                    page_size: 1,
                    page_token: String::new(),
                };
                c.list_portal_users(as_caller(token, req)).await.map(drop)
            }
            GrantPortalAccess => {
                let req = grant_request(
                    &parent,
                    &format!("{}@example.com", uuid::Uuid::new_v4().simple()),
                    pb::PortalRole::ReadOnly,
                );
                c.grant_portal_access(as_caller(token, req)).await.map(drop)
            }
            UpdatePortalUserRole => {
                let req = pb::UpdatePortalUserRoleRequest {
                    name: self.user_to_change(target).await,
                    role: pb::PortalRole::Editor as i32,
                };
                c.update_portal_user_role(as_caller(token, req))
                    .await
                    .map(drop)
            }
            RevokePortalAccess => {
                let req = pb::RevokePortalAccessRequest {
                    name: self.user_to_change(target).await,
                };
                c.revoke_portal_access(as_caller(token, req))
                    .await
                    .map(drop)
            }
            ListEvents => {
                let req = pb::ListEventsRequest {
                    parent,
                    page_size: 1,
                    ..Default::default()
                };
                c.list_events(as_caller(token, req)).await.map(drop)
            }
            SendVerification => {
                let req = pb::SendVerificationRequest {
                    name,
                    emails: vec!["dev@example.com".to_owned()],
                };
                c.send_verification(as_caller(token, req)).await.map(drop)
            }
            ConfirmContact => {
                let req = pb::ConfirmContactRequest {
                    challenge: self.challenge_for(target).await,
                    parent,
                };
                c.confirm_contact(as_caller(token, req)).await.map(drop)
            }
        }
    }
}

fn sandbox_of(partner: &str) -> String {
    format!("partners/{partner}/environments/sandbox/contactInfo")
}

fn code_of(result: &Result<(), Status>) -> Code {
    result.as_ref().err().map_or(Code::Ok, Status::code)
}

fn short(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::Unauthenticated => "UNAUTHENTICATED",
        _ => "unexpected",
    }
}

/// Runs every RPC for `caller` on `acme` and `other` and records what
/// differs from the table in `failures`. A denial is also compared with the
/// denial of the same call on a partner with no data: it must read the same.
async fn run_caller(
    world: &World,
    caller: Caller,
    failures: &mut Vec<String>,
) -> Vec<(Code, Code)> {
    let token = caller.token();
    let token = token.as_deref();
    let mut row = Vec::new();
    for rpc in ALL_RPCS {
        let mut codes = [Code::Ok; 2];
        for (i, target) in [Target::Own, Target::Other].into_iter().enumerate() {
            let result = world.call(token, rpc, target).await;
            let want = caller.expected(rpc, target);
            let got = code_of(&result);
            codes[i] = got;
            if got != want {
                failures.push(format!(
                    "{} {} on {}: want {want:?}, got {result:?}",
                    caller.label(),
                    rpc.label(),
                    target.partner()
                ));
                continue;
            }
            if let Err(denied) = &result {
                assert!(!denied.message().is_empty(), "{denied:?}");
                if want == Code::PermissionDenied {
                    let twin = world.call(token, rpc, Target::Missing).await;
                    match twin {
                        Err(t)
                            if t.code() == Code::PermissionDenied
                                && t.message() == denied.message()
                                && t.details() == denied.details() => {}
                        other => failures.push(format!(
                            "{} {}: the denial on {} ({denied:?}) differs from the one on a \
                             partner without data ({other:?})",
                            caller.label(),
                            rpc.label(),
                            target.partner()
                        )),
                    }
                }
            }
        }
        row.push((codes[0], codes[1]));
    }
    row
}

fn markdown(rows: &[(String, Vec<(Code, Code)>)]) -> String {
    let mut out = String::from("| caller | ");
    out.push_str(
        &ALL_RPCS
            .iter()
            .map(|r| r.label())
            .collect::<Vec<_>>()
            .join(" | "),
    );
    out.push_str(" |\n|---|");
    out.push_str(&"---|".repeat(ALL_RPCS.len()));
    out.push('\n');
    for (label, cells) in rows {
        let _ = write!(out, "| {label} |");
        for (own, other) in cells {
            if own == other {
                let _ = write!(out, " {} |", short(*own));
            } else {
                let _ = write!(out, " {} / {} |", short(*own), short(*other));
            }
        }
        out.push('\n');
    }
    out
}

async fn access_matrix(backend: Backend) {
    let mut callers: Vec<Caller> = SERVICE_MATRIX
        .iter()
        .map(|(scopes, _)| Caller::Service(scopes))
        .collect();
    callers.extend(PORTAL_MATRIX.iter().map(|(role, _)| Caller::Portal(*role)));
    callers.extend([
        Caller::NoCredentials,
        Caller::Bad(BadToken::WrongSecret),
        Caller::Bad(BadToken::Expired),
        Caller::Bad(BadToken::WrongAudience),
        Caller::Bad(BadToken::NotAJwt),
    ]);

    let mut failures = Vec::new();
    let mut rows = Vec::new();
    let secured = World::new(backend, true).await;
    for caller in callers {
        let row = run_caller(&secured, caller, &mut failures).await;
        rows.push((caller.label(), row));
    }
    let development = World::new(backend, false).await;
    let row = run_caller(&development, Caller::Developer, &mut failures).await;
    rows.push((Caller::Developer.label(), row));

    println!(
        "Access matrix ({backend:?}); a cell with two codes reads \"own partner / other \
         partner\", where the portal users' own partner is `acme`:\n\n{}",
        markdown(&rows)
    );
    assert!(
        failures.is_empty(),
        "{} cells differ from the documented matrix:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// AIP-211: a caller that may not act learns nothing from validation, so a
/// malformed request for another partner is PERMISSION_DENIED, not
/// INVALID_ARGUMENT; the same mistake on the caller's own partner is
/// INVALID_ARGUMENT. And without credentials, nothing else is looked at.
async fn authorisation_comes_before_validation(backend: Backend) {
    let server = TestServer::start_with_auth(backend, common::hs256_authenticator()).await;
    let mut c = server.client.clone();
    let admin = common::portal_token("ann", "acme", PortalRole::Administrator);

    // Malformed names that still point at another partner, or at none.
    for name in [
        "partners/other/environments/staging/contactInfo",
        "partners/other/environments/production/contactinfo",
        "partners/Other/environments/production/contactInfo",
        "partners/other",
        "",
        "nonsense",
    ] {
        let req = pb::GetContactsRequest {
            name: name.to_owned(),
            read_time: Some(prost_types::Timestamp {
                seconds: 0,
                nanos: -5,
            }),
        };
        expect_code(
            c.get_contacts(bearer(&admin, req)).await,
            Code::PermissionDenied,
        );
        let mut bad = complete_info(PROD);
        bad.name = name.to_owned();
        bad.technical_emergency_contacts = vec![contact("not an email")];
        expect_code(
            c.update_contacts(bearer(&admin, put_masked(bad, &["bogus"])))
                .await,
            Code::PermissionDenied,
        );
        let req = pb::CheckOnboardingGateRequest {
            name: name.to_owned(),
            integration_type: "no-such-type".to_owned(),
        };
        expect_code(
            c.check_onboarding_gate(bearer(&admin, req)).await,
            Code::PermissionDenied,
        );
        let req = pb::ListContactInfoRevisionsRequest {
            name: name.to_owned(),
            page_size: -1,
            page_token: "garbage".to_owned(),
        };
        expect_code(
            c.list_contact_info_revisions(bearer(&admin, req)).await,
            Code::PermissionDenied,
        );
    }
    for parent in ["partners/other/x", "partners/Other", "other"] {
        let req = pb::ListPortalUsersRequest {
            parent: parent.to_owned(),
            page_size: -1,
            page_token: "garbage".to_owned(),
        };
        expect_code(
            c.list_portal_users(bearer(&admin, req)).await,
            Code::PermissionDenied,
        );
        let req = grant_request(parent, "not an email", pb::PortalRole::Unspecified);
        expect_code(
            c.grant_portal_access(bearer(&admin, req)).await,
            Code::PermissionDenied,
        );
    }
    for name in ["partners/other/portalUsers/not-a-uuid", "partners/other"] {
        let req = pb::UpdatePortalUserRoleRequest {
            name: name.to_owned(),
            role: 0,
        };
        expect_code(
            c.update_portal_user_role(bearer(&admin, req)).await,
            Code::PermissionDenied,
        );
        let req = pb::RevokePortalAccessRequest {
            name: name.to_owned(),
        };
        expect_code(
            c.revoke_portal_access(bearer(&admin, req)).await,
            Code::PermissionDenied,
        );
    }

    // The same mistakes on the admin's own partner reach validation.
    let req = pb::GetContactsRequest {
        name: "partners/acme/environments/staging/contactInfo".to_owned(),
        read_time: None,
    };
    crate::api::assert_invalid(c.get_contacts(bearer(&admin, req)).await, &["name"]);
    let req = pb::ListPortalUsersRequest {
        parent: "partners/acme".to_owned(),
        page_size: -1,
        page_token: String::new(),
    };
    crate::api::assert_invalid(
        c.list_portal_users(bearer(&admin, req)).await,
        &["page_size"],
    );
    let req = pb::RevokePortalAccessRequest {
        name: "partners/acme/portalUsers/not-a-uuid".to_owned(),
    };
    crate::api::assert_invalid(c.revoke_portal_access(bearer(&admin, req)).await, &["name"]);

    // A service without contacts.write learns nothing about its invalid
    // update, whatever is wrong with it; with the scope, it does.
    let mut invalid = complete_info(PROD);
    invalid.technical_emergency_contacts = vec![contact("not an email")];
    let invalid_requests = [
        pb::UpdateContactsRequest::default(),
        put(invalid.clone()),
        put_masked(complete_info(PROD), &["etag"]),
        pb::UpdateContactsRequest {
            request_id: "not-a-uuid".to_owned(),
            ..put(complete_info(PROD))
        },
    ];
    let no_write = common::service_token(
        "no-write",
        &[
            "contacts.read",
            "contacts.read_user_facing",
            "gate.check",
            "users.manage",
            "history.read",
        ],
    );
    let writer = common::service_token("writer", &["contacts.write"]);
    for req in invalid_requests {
        let s = expect_code(
            c.update_contacts(bearer(&no_write, req.clone())).await,
            Code::PermissionDenied,
        );
        crate::api::error_reason(&s);
        expect_code(
            c.update_contacts(bearer(&writer, req.clone())).await,
            Code::InvalidArgument,
        );
        // No credentials: UNAUTHENTICATED before anything else.
        expect_code(
            c.update_contacts(as_caller(None, req)).await,
            Code::Unauthenticated,
        );
    }
    // history.read alone does not open GetContacts with an invalid read_time.
    let history_only = common::service_token("history-only", &["history.read"]);
    let req = pb::GetContactsRequest {
        name: PROD.to_owned(),
        read_time: Some(prost_types::Timestamp {
            seconds: 0,
            nanos: 2_000_000_000,
        }),
    };
    expect_code(
        c.get_contacts(bearer(&history_only, req)).await,
        Code::PermissionDenied,
    );
}

on_both_backends!(access_matrix, authorisation_comes_before_validation);
