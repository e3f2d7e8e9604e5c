//! Personal data stays out of telemetry: a full scenario (every RPC, every
//! error path) with canary emails, phone numbers and display names runs while
//! a global subscriber captures every span and event at TRACE, from this
//! service and from its dependencies (tonic, h2, hyper, tower, sqlx); no
//! canary may appear in the capture, nor in any error a caller receives.
//!
//! Its own test binary, because it owns the process-wide subscriber. Both
//! backends run in it and share the capture, so each also checks the other's
//! output so far.
//!
//! What the capture cannot see: records of the `log` crate (sqlx-sqlite's
//! `sqlx::explain` query plans, rustls). The binary installs no `log` logger
//! (tracing-subscriber is built without `tracing-log`), so those never reach
//! the service's telemetry either.
#[path = "it/common/mod.rs"]
mod common;

use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use partner_contacts::domain::PortalRole;
use partner_contacts::pb::{self, contacts_service_client::ContactsServiceClient};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;

use crate::common::{Backend, TestServer, as_caller};

// ---------------------------------------------------------------- canaries

const ADMIN_EMAIL: &str = "canary-7f3a1@example.com";
const EDITOR_EMAIL: &str = "canary-7f3a1.editor@example.com";
const STRANGER_EMAIL: &str = "canary-7f3a1.stranger@example.com";
const INVALID_EMAIL: &str = "canary-7f3a1-at-example.com";
const PHONE_GIVEN: &str = "+41 44 668 18 00";
const PHONE_E164: &str = "+41446681800";
/// Not valid: no country code.
const INVALID_PHONE: &str = "044 668 18 00";
const DISPLAY_NAME: &str = "Canary Zeta Person";

/// What must never show, compared case-insensitively: every canary, and the
/// parts of them that a partial leak would show.
const FORBIDDEN: [&str; 7] = [
    "canary-7f3a1",
    "7f3a1",
    "canary zeta",
    "zeta person",
    "44 668 18 00",
    "41446681800",
    "668 18 00",
];

const PROD: &str = "partners/acme/environments/production/contactInfo";
const SANDBOX: &str = "partners/acme/environments/sandbox/contactInfo";

// ---------------------------------------------------------------- capture

/// Everything every subscriber layer wrote, for the whole test binary.
fn capture() -> &'static Arc<Mutex<Vec<u8>>> {
    static CAPTURE: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buffer.clone());
        // As the binary logs (text, or JSON lines), but at TRACE for every
        // target, with span opening and closing recorded with their fields.
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer.clone())
                    .with_ansi(false)
                    .with_target(true)
                    .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE),
            )
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(true)
                    .with_writer(writer),
            );
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        buffer
    })
}

fn captured() -> String {
    String::from_utf8_lossy(&capture().lock().expect("capture lock")).into_owned()
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| io::Error::other("capture lock poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Each line of `text` that shows a canary, with the canary.
fn leaks(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let lower = line.to_lowercase();
            FORBIDDEN
                .iter()
                .find(|c| lower.contains(*c))
                .map(|c| format!("[{c}] {line}"))
        })
        .collect()
}

// ---------------------------------------------------------------- calls

type Client = ContactsServiceClient<Channel>;

/// Records every error a caller received, to check none shows a canary.
#[derive(Default)]
struct Errors(Vec<Status>);

impl Errors {
    /// The response of a call that must succeed.
    fn ok<T>(&mut self, what: &str, result: Result<tonic::Response<T>, Status>) -> T {
        match result {
            Ok(r) => r.into_inner(),
            Err(s) => panic!("{what}: {s:?}"),
        }
    }

    /// A call that must fail with `code`.
    fn fails<T: std::fmt::Debug>(
        &mut self,
        what: &str,
        result: Result<tonic::Response<T>, Status>,
        code: Code,
    ) {
        match result {
            Ok(r) => panic!("{what}: want {code:?}, got {:?}", r.get_ref()),
            Err(s) => {
                assert_eq!(s.code(), code, "{what}: {s:?}");
                self.0.push(s);
            }
        }
    }

    fn assert_none_echoes_a_canary(&self) {
        assert!(self.0.len() > 20, "the scenario covers the error paths");
        for s in &self.0 {
            let mut text = s.message().to_owned();
            for d in s.get_error_details_vec() {
                text.push_str(&format!("\n{d:?}"));
            }
            text.push_str(&String::from_utf8_lossy(s.details()));
            let found = leaks(&text);
            assert!(
                found.is_empty(),
                "an error shows a canary: {found:?} in {s:?}"
            );
        }
    }
}

fn contact(email: &str, name: &str, phone: &str) -> pb::Contact {
    pb::Contact {
        email: email.to_owned(),
        display_name: name.to_owned(),
        phone_number: phone.to_owned(),
        language_code: "de-CH".to_owned(),
        verification: None,
    }
}

/// Every field filled with canaries; alert contact: the admin.
fn canary_info(name: &str) -> pb::ContactInfo {
    let admin = contact(ADMIN_EMAIL, DISPLAY_NAME, PHONE_GIVEN);
    let editor = contact(EDITOR_EMAIL, DISPLAY_NAME, PHONE_GIVEN);
    pb::ContactInfo {
        name: name.to_owned(),
        alert_contacts: vec![admin.clone()],
        technical_emergency_contacts: vec![editor.clone(), admin.clone()],
        technical_non_emergency_contacts: vec![admin.clone()],
        merchant_issues_contacts: vec![editor.clone()],
        platform_operational_contacts: vec![admin],
        user_facing_operational_contacts: vec![editor],
        operational_support: Some(pb::OperationalSupport {
            always_open: true,
            windows: Vec::new(),
        }),
        ..Default::default()
    }
}

fn put(info: pb::ContactInfo) -> pb::UpdateContactsRequest {
    pb::UpdateContactsRequest {
        contact_info: Some(info),
        ..Default::default()
    }
}

fn grant_req(parent: &str, email: &str, role: pb::PortalRole) -> pb::GrantPortalAccessRequest {
    pb::GrantPortalAccessRequest {
        parent: parent.to_owned(),
        portal_user: Some(pb::PortalUser {
            email: email.to_owned(),
            role: role as i32,
            ..Default::default()
        }),
    }
}

fn get_req(name: &str, read_time: Option<prost_types::Timestamp>) -> pb::GetContactsRequest {
    pb::GetContactsRequest {
        name: name.to_owned(),
        read_time,
    }
}

fn gate_req(integration_type: &str) -> pb::CheckOnboardingGateRequest {
    pb::CheckOnboardingGateRequest {
        name: PROD.to_owned(),
        integration_type: integration_type.to_owned(),
    }
}

fn revisions_req(page_token: &str) -> pb::ListContactInfoRevisionsRequest {
    pb::ListContactInfoRevisionsRequest {
        name: PROD.to_owned(),
        page_size: 1,
        page_token: page_token.to_owned(),
    }
}

// ---------------------------------------------------------------- scenario

/// Every RPC, and every error path, with canaries in the requests.
async fn scenario(c: &mut Client, e: &mut Errors) -> Vec<String> {
    let ops = common::full_access_token("canary-scenario-ops");
    let ops = Some(ops.as_str());
    let admin_token = common::portal_token("portal-admin", "acme", PortalRole::Administrator);
    let admin = Some(admin_token.as_str());
    let outsider_token =
        common::portal_token("portal-outsider", "other", PortalRole::Administrator);
    let outsider = Some(outsider_token.as_str());
    let storefront_token =
        common::service_token("storefront", &["contacts.read_user_facing", "history.read"]);
    let storefront = Some(storefront_token.as_str());
    let scopeless_token = common::service_token("scopeless", &[]);
    let scopeless = Some(scopeless_token.as_str());
    let bad_token = common::wrong_secret_token();
    let tokens = vec![
        ops.map(str::to_owned).unwrap_or_default(),
        admin_token.clone(),
        outsider_token.clone(),
        storefront_token.clone(),
        scopeless_token.clone(),
        bad_token.clone(),
    ];

    // Portal users: grant, list, the error paths.
    let first = e.ok(
        "grant admin",
        c.grant_portal_access(as_caller(
            ops,
            grant_req("partners/acme", ADMIN_EMAIL, pb::PortalRole::Administrator),
        ))
        .await,
    );
    assert_eq!(first.email, ADMIN_EMAIL, "the canary went through");
    let editor = e.ok(
        "grant editor",
        c.grant_portal_access(as_caller(
            admin,
            grant_req("partners/acme", EDITOR_EMAIL, pb::PortalRole::Editor),
        ))
        .await,
    );
    e.fails(
        "grant again",
        c.grant_portal_access(as_caller(
            ops,
            grant_req(
                "partners/acme",
                &ADMIN_EMAIL.to_uppercase(),
                pb::PortalRole::ReadOnly,
            ),
        ))
        .await,
        Code::AlreadyExists,
    );
    e.fails(
        "grant invalid email",
        c.grant_portal_access(as_caller(
            ops,
            grant_req("partners/acme", INVALID_EMAIL, pb::PortalRole::Editor),
        ))
        .await,
        Code::InvalidArgument,
    );
    e.fails(
        "grant without role",
        c.grant_portal_access(as_caller(
            ops,
            grant_req("partners/acme", STRANGER_EMAIL, pb::PortalRole::Unspecified),
        ))
        .await,
        Code::InvalidArgument,
    );
    e.fails(
        "first user not an administrator",
        c.grant_portal_access(as_caller(
            ops,
            grant_req("partners/fresh", STRANGER_EMAIL, pb::PortalRole::Editor),
        ))
        .await,
        Code::FailedPrecondition,
    );
    let page = e.ok(
        "list users",
        c.list_portal_users(as_caller(
            admin,
            pb::ListPortalUsersRequest {
                parent: "partners/acme".to_owned(),
                page_size: 1,
                page_token: String::new(),
            },
        ))
        .await,
    );
    assert_eq!(page.portal_users[0].email, ADMIN_EMAIL);
    let page = e.ok(
        "list users, page 2",
        c.list_portal_users(as_caller(
            admin,
            pb::ListPortalUsersRequest {
                parent: "partners/acme".to_owned(),
                page_size: 1,
                page_token: page.next_page_token,
            },
        ))
        .await,
    );
    assert_eq!(page.portal_users[0].email, EDITOR_EMAIL);
    e.fails(
        "list users, bad page token",
        c.list_portal_users(as_caller(
            admin,
            pb::ListPortalUsersRequest {
                parent: "partners/acme".to_owned(),
                page_size: 1,
                page_token: "garbage".to_owned(),
            },
        ))
        .await,
        Code::InvalidArgument,
    );

    // Contact info: saves, retries, and every validation error.
    let request_id = uuid::Uuid::new_v4().to_string();
    let save = pb::UpdateContactsRequest {
        request_id: request_id.clone(),
        ..put(canary_info(PROD))
    };
    let saved = e.ok(
        "save",
        c.update_contacts(as_caller(admin, save.clone())).await,
    );
    assert_eq!(
        saved.technical_emergency_contacts[0].phone_number, PHONE_E164,
        "the canary phone went through"
    );
    assert_eq!(saved.alert_contacts[0].display_name, DISPLAY_NAME);
    let retried = e.ok("retry", c.update_contacts(as_caller(admin, save)).await);
    assert_eq!(retried, saved);
    let mut reused = put(canary_info(PROD));
    reused.request_id = request_id;
    reused
        .contact_info
        .as_mut()
        .expect("info")
        .merchant_issues_contacts
        .clear();
    e.fails(
        "request_id reused",
        c.update_contacts(as_caller(admin, reused)).await,
        Code::InvalidArgument,
    );
    let mut stale = canary_info(PROD);
    stale.etag = "W/stale".to_owned();
    e.fails(
        "stale etag",
        c.update_contacts(as_caller(admin, put(stale))).await,
        Code::Aborted,
    );
    let mut invalid = canary_info(PROD);
    invalid.technical_emergency_contacts = vec![
        contact(INVALID_EMAIL, DISPLAY_NAME, PHONE_GIVEN),
        contact(EDITOR_EMAIL, DISPLAY_NAME, INVALID_PHONE),
        contact(
            STRANGER_EMAIL,
            &format!("{DISPLAY_NAME}\u{7}"),
            "+1 555 7f3a1",
        ),
        contact(&EDITOR_EMAIL.to_uppercase(), DISPLAY_NAME, PHONE_GIVEN),
    ];
    invalid.technical_non_emergency_contacts[0].display_name = DISPLAY_NAME.repeat(10);
    invalid.technical_non_emergency_contacts[0].language_code = "canary-7f3a1!".to_owned();
    e.fails(
        "invalid contacts",
        c.update_contacts(as_caller(admin, put(invalid))).await,
        Code::InvalidArgument,
    );
    let too_many = pb::ContactInfo {
        platform_operational_contacts: (0..21)
            .map(|i| {
                contact(
                    &format!("canary-7f3a1.{i}@example.com"),
                    DISPLAY_NAME,
                    PHONE_GIVEN,
                )
            })
            .collect(),
        ..canary_info(PROD)
    };
    e.fails(
        "too many contacts",
        c.update_contacts(as_caller(admin, put(too_many))).await,
        Code::InvalidArgument,
    );
    let mut sandbox = canary_info(SANDBOX);
    sandbox.alert_contacts = vec![contact(ADMIN_EMAIL, DISPLAY_NAME, PHONE_GIVEN)];
    e.fails(
        "alert contacts in the sandbox",
        c.update_contacts(as_caller(admin, put(sandbox))).await,
        Code::InvalidArgument,
    );
    let not_a_user = pb::UpdateContactsRequest {
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["alert_contacts".to_owned()],
        }),
        ..put(pb::ContactInfo {
            alert_contacts: vec![contact(STRANGER_EMAIL, DISPLAY_NAME, PHONE_GIVEN)],
            ..canary_info(PROD)
        })
    };
    e.fails(
        "alert contact not a portal user",
        c.update_contacts(as_caller(admin, not_a_user.clone()))
            .await,
        Code::FailedPrecondition,
    );
    e.fails(
        "alert contact not a portal user, validate_only",
        c.update_contacts(as_caller(
            admin,
            pb::UpdateContactsRequest {
                validate_only: true,
                ..not_a_user
            },
        ))
        .await,
        Code::FailedPrecondition,
    );
    let preview = e.ok(
        "validate_only",
        c.update_contacts(as_caller(
            admin,
            pb::UpdateContactsRequest {
                validate_only: true,
                ..put(canary_info(PROD))
            },
        ))
        .await,
    );
    assert_eq!(preview.alert_contacts[0].email, ADMIN_EMAIL);
    let sandbox_saved = e.ok(
        "save the sandbox",
        c.update_contacts(as_caller(
            ops,
            put(pb::ContactInfo {
                alert_contacts: Vec::new(),
                ..canary_info(SANDBOX)
            }),
        ))
        .await,
    );
    assert_eq!(
        sandbox_saved.user_facing_operational_contacts[0].email,
        EDITOR_EMAIL
    );

    // Reads, now and in the past, full and user-facing.
    let read = e.ok(
        "get",
        c.get_contacts(as_caller(ops, get_req(PROD, None))).await,
    );
    assert_eq!(read, saved);
    let at = e.ok(
        "get at the save",
        c.get_contacts(as_caller(ops, get_req(PROD, saved.update_time)))
            .await,
    );
    assert_eq!(at, saved);
    e.fails(
        "get before the first save",
        c.get_contacts(as_caller(
            ops,
            get_req(PROD, Some(prost_types::Timestamp::default())),
        ))
        .await,
        Code::NotFound,
    );
    e.fails(
        "get, invalid read_time",
        c.get_contacts(as_caller(
            ops,
            get_req(
                PROD,
                Some(prost_types::Timestamp {
                    seconds: 1,
                    nanos: -1,
                }),
            ),
        ))
        .await,
        Code::InvalidArgument,
    );
    e.fails(
        "get a resource never saved",
        c.get_contacts(as_caller(
            ops,
            get_req("partners/nobody/environments/production/contactInfo", None),
        ))
        .await,
        Code::NotFound,
    );
    let recipients = e.ok(
        "resolve recipients",
        c.resolve_recipients(as_caller(
            ops,
            pb::ResolveRecipientsRequest {
                name: PROD.into(),
                purpose: pb::Purpose::TechnicalEmergency as i32,
                at_time: None,
            },
        ))
        .await,
    );
    assert!(!recipients.recipients.is_empty());
    e.fails(
        "resolve recipients, unspecified purpose",
        c.resolve_recipients(as_caller(
            ops,
            pb::ResolveRecipientsRequest {
                name: PROD.into(),
                purpose: 0,
                at_time: None,
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    let filtered = e.ok(
        "user-facing get",
        c.get_contacts(as_caller(storefront, get_req(PROD, None)))
            .await,
    );
    assert!(filtered.alert_contacts.is_empty());
    let revisions = e.ok(
        "revisions",
        c.list_contact_info_revisions(as_caller(admin, revisions_req("")))
            .await,
    );
    assert_eq!(
        revisions.revisions[0]
            .contact_info
            .as_ref()
            .map(|i| i.etag.as_str()),
        Some(saved.etag.as_str())
    );
    e.ok(
        "user-facing revisions",
        c.list_contact_info_revisions(as_caller(storefront, revisions_req("")))
            .await,
    );
    e.fails(
        "revisions, bad page token",
        c.list_contact_info_revisions(as_caller(admin, revisions_req("garbage")))
            .await,
        Code::InvalidArgument,
    );

    // The gate.
    let open = e.ok(
        "gate",
        c.check_onboarding_gate(as_caller(admin, gate_req("")))
            .await,
    );
    assert!(open.open, "{open:?}");
    e.fails(
        "unknown integration type",
        c.check_onboarding_gate(as_caller(admin, gate_req("no-such-type")))
            .await,
        Code::InvalidArgument,
    );

    // Roles, the last administrator, revocation of an alert contact.
    e.fails(
        "demote the last administrator",
        c.update_portal_user_role(as_caller(
            admin,
            pb::UpdatePortalUserRoleRequest {
                name: first.name.clone(),
                role: pb::PortalRole::Editor as i32,
            },
        ))
        .await,
        Code::FailedPrecondition,
    );
    e.ok(
        "promote the editor",
        c.update_portal_user_role(as_caller(
            admin,
            pb::UpdatePortalUserRoleRequest {
                name: editor.name.clone(),
                role: pb::PortalRole::Administrator as i32,
            },
        ))
        .await,
    );
    e.fails(
        "update an unknown user",
        c.update_portal_user_role(as_caller(
            admin,
            pb::UpdatePortalUserRoleRequest {
                name: format!("partners/acme/portalUsers/{}", uuid::Uuid::new_v4()),
                role: pb::PortalRole::Editor as i32,
            },
        ))
        .await,
        Code::NotFound,
    );
    e.fails(
        "a user named by email",
        c.update_portal_user_role(as_caller(
            admin,
            pb::UpdatePortalUserRoleRequest {
                name: format!("partners/acme/portalUsers/{ADMIN_EMAIL}"),
                role: pb::PortalRole::Editor as i32,
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    e.fails(
        "revoke a user named by email",
        c.revoke_portal_access(as_caller(
            admin,
            pb::RevokePortalAccessRequest {
                name: format!("partners/acme/portalUsers/{ADMIN_EMAIL}"),
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    e.ok(
        "revoke the alert contact",
        c.revoke_portal_access(as_caller(
            admin,
            pb::RevokePortalAccessRequest {
                name: first.name.clone(),
            },
        ))
        .await,
    );
    let closed = e.ok(
        "gate after revoke",
        c.check_onboarding_gate(as_caller(admin, gate_req("")))
            .await,
    );
    assert!(!closed.open);
    e.fails(
        "revoke a revoked user",
        c.revoke_portal_access(as_caller(
            admin,
            pb::RevokePortalAccessRequest {
                name: first.name.clone(),
            },
        ))
        .await,
        Code::NotFound,
    );
    e.fails(
        "revoke the last administrator",
        c.revoke_portal_access(as_caller(
            admin,
            pb::RevokePortalAccessRequest {
                name: editor.name.clone(),
            },
        ))
        .await,
        Code::FailedPrecondition,
    );
    e.ok(
        "grant the alert contact again",
        c.grant_portal_access(as_caller(
            admin,
            grant_req("partners/acme", ADMIN_EMAIL, pb::PortalRole::ReadOnly),
        ))
        .await,
    );
    let reopened = e.ok(
        "gate after grant",
        c.check_onboarding_gate(as_caller(admin, gate_req("")))
            .await,
    );
    assert!(reopened.open);

    // Callers who may not, and callers who are nobody.
    e.fails(
        "another partner's user reads",
        c.get_contacts(as_caller(outsider, get_req(PROD, None)))
            .await,
        Code::PermissionDenied,
    );
    e.fails(
        "another partner's user grants",
        c.grant_portal_access(as_caller(
            outsider,
            grant_req(
                "partners/acme",
                STRANGER_EMAIL,
                pb::PortalRole::Administrator,
            ),
        ))
        .await,
        Code::PermissionDenied,
    );
    e.fails(
        "a service without scopes saves",
        c.update_contacts(as_caller(scopeless, put(canary_info(PROD))))
            .await,
        Code::PermissionDenied,
    );
    e.fails(
        "no credentials",
        c.update_contacts(as_caller(None, put(canary_info(PROD))))
            .await,
        Code::Unauthenticated,
    );
    e.fails(
        "a forged token",
        c.grant_portal_access(as_caller(
            Some(&bad_token),
            grant_req(
                "partners/acme",
                STRANGER_EMAIL,
                pb::PortalRole::Administrator,
            ),
        ))
        .await,
        Code::Unauthenticated,
    );
    e.fails(
        "an email as the bearer",
        c.get_contacts(as_caller(Some(ADMIN_EMAIL), get_req(PROD, None)))
            .await,
        Code::Unauthenticated,
    );
    tokens
}

async fn no_canary_reaches_telemetry(backend: Backend) {
    capture();
    let server = TestServer::start_with_auth(backend, common::hs256_authenticator()).await;
    let mut c = server.client.clone();
    let mut errors = Errors::default();
    let tokens = scenario(&mut c, &mut errors).await;
    errors.assert_none_echoes_a_canary();
    server.stop().await.expect("clean stop");

    let text = captured();
    if let Some(path) = std::env::var_os("PII_CANARY_DUMP") {
        // For a human to read what was captured.
        std::fs::write(path, &text).expect("write the capture");
    }
    // The check itself finds each canary in the forms they were sent in.
    for canary in [
        ADMIN_EMAIL,
        EDITOR_EMAIL,
        STRANGER_EMAIL,
        INVALID_EMAIL,
        PHONE_GIVEN,
        PHONE_E164,
        INVALID_PHONE,
        DISPLAY_NAME,
        &ADMIN_EMAIL.to_uppercase(),
    ] {
        assert_eq!(leaks(&format!("x={canary:?}")).len(), 1, "{canary}");
    }
    // Not vacuous: the capture holds TRACE output of the dependencies, a span
    // for every RPC handler, this backend's store spans and its SQL.
    assert!(
        text.len() > 100_000,
        "little was captured: {} bytes",
        text.len()
    );
    assert!(text.contains(" TRACE h2::"), "no TRACE from h2");
    assert!(
        text.contains("\"level\":\"TRACE\""),
        "no TRACE in the JSON layer"
    );
    for rpc in [
        "GetContacts",
        "UpdateContacts",
        "CheckOnboardingGate",
        "ResolveRecipients",
        "ListContactInfoRevisions",
        "ListPortalUsers",
        "GrantPortalAccess",
        "UpdatePortalUserRole",
        "RevokePortalAccess",
    ] {
        assert!(
            text.contains(&format!("rpc.method=\"{rpc}\"")),
            "no span of {rpc}"
        );
    }
    let store_target = match backend {
        Backend::Sqlite => "partner_contacts::store::sqlite",
        Backend::Postgres => "partner_contacts::store::postgres",
    };
    assert!(text.contains(store_target), "no span of {store_target}");
    assert!(text.contains("sqlx::query"), "no SQL statements");
    assert!(
        text.contains("INSERT INTO portal_users"),
        "no portal-user SQL"
    );

    let found = leaks(&text);
    assert!(
        found.is_empty(),
        "{} captured lines show a canary; the first ones:\n{}",
        found.len(),
        found
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Nor do credentials end up in the logs.
    for token in tokens.iter().filter(|t| !t.is_empty()) {
        let signature = token.rsplit('.').next().unwrap_or(token);
        assert!(
            !text.contains(signature),
            "a bearer token's signature was logged"
        );
    }
}

on_both_backends!(no_canary_reaches_telemetry);
