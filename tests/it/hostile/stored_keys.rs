//! The stored-key migration, on a database written by the previous release:
//! keys recomputed, two users who turn out to share a mailbox both kept and
//! reported, a look-alike saved back then no longer passing as a portal user,
//! and values saved under the old rules still readable (canonicalised).
use partner_contacts::domain::{ContactInfoName, Environment, PartnerId, PortalUserName};
use partner_contacts::pb;
use sqlx::Connection;

use crate::common::{self, Backend, EmptyDatabase, TestServer};
use crate::on_both_backends;

/// The previous release's last migration.
const PREVIOUS_RELEASE_SCHEMA: i64 = 2;

struct OldUser {
    partner: &'static str,
    id: uuid::Uuid,
    email: &'static str,
    /// Seconds after the epoch: the grant order.
    created: i64,
}

fn old_users() -> Vec<OldUser> {
    let id = |n: u128| uuid::Uuid::from_u128(n);
    vec![
        // Acme granted its bookshop address twice, in Unicode and in ASCII
        // form: two keys under Unicode lower-casing, one mailbox in truth.
        OldUser {
            partner: "acme",
            id: id(1),
            email: "kim@acme.example",
            created: 1_000,
        },
        OldUser {
            partner: "acme",
            id: id(2),
            email: "info@bücher.example",
            created: 2_000,
        },
        OldUser {
            partner: "acme",
            id: id(3),
            email: "INFO@xn--bcher-kva.example",
            created: 3_000,
        },
        // Other's real portal user; its alert contact below is a look-alike.
        OldUser {
            partner: "other",
            id: id(4),
            email: "kim@other.example",
            created: 1_000,
        },
        // Globex granted a look-alike address itself.
        OldUser {
            partner: "globex",
            id: id(5),
            email: "\u{212A}im@globex.example",
            created: 1_000,
        },
    ]
}

/// Other's production contact info as the previous release saved it: a
/// KELVIN SIGN alert contact (which its Unicode lower-casing matched to
/// kim@other.example, so the save passed and the gate opened), and values
/// written as typed.
const OLD_FIELDS: &str = r#"{
  "alert_contacts": [{"email": "\u212aim@other.example"}],
  "technical_emergency_contacts": [{"email": "pager@other.example", "display_name": "Pager\u202eesrever", "language_code": "EN-us"}],
  "technical_non_emergency_contacts": [{"email": "dev@other.example"}],
  "merchant_issues_contacts": [],
  "platform_operational_contacts": [{"email": "esc@other.example"}],
  "user_facing_operational_contacts": [{"email": "help@other.example"}],
  "operational_support": {"windows": [{"time_zone": "US/Pacific", "days": ["tuesday", "monday"], "open_time": 1080, "close_time": 0}]}
}"#;

/// A database at the previous release's schema, with its rows.
async fn previous_release(backend: Backend) -> EmptyDatabase {
    let db = common::database_at_schema(backend, PREVIOUS_RELEASE_SCHEMA).await;
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&db.url)
                .await
                .expect("connect");
            for u in old_users() {
                sqlx::query(
                    "INSERT INTO portal_users (partner, id, email, email_key, role, create_time, update_time)
                     VALUES (?1, ?2, ?3, ?4, 'ADMINISTRATOR', ?5, ?5)",
                )
                .bind(u.partner)
                .bind(u.id.hyphenated().to_string())
                .bind(u.email)
                .bind(u.email.to_lowercase())
                .bind(u.created * 1_000_000)
                .execute(&mut c)
                .await
                .expect("old user");
            }
            sqlx::query(
                "INSERT INTO contact_info (partner, environment, revision, etag, fields, create_time, update_time)
                 VALUES ('other', 'production', 1, 'W/old', ?1, 5000000000, 5000000000)",
            )
            .bind(OLD_FIELDS)
            .execute(&mut c)
            .await
            .expect("old contact info");
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&db.url).await.expect("connect");
            for u in old_users() {
                sqlx::query(
                    "INSERT INTO portal_users (partner, id, email, email_key, role, create_time, update_time)
                     VALUES ($1, $2, $3, $4, 'ADMINISTRATOR', to_timestamp($5), to_timestamp($5))",
                )
                .bind(u.partner)
                .bind(u.id)
                .bind(u.email)
                .bind(u.email.to_lowercase())
                .bind(u.created as f64)
                .execute(&mut c)
                .await
                .expect("old user");
            }
            sqlx::query(
                "INSERT INTO contact_info (partner, environment, revision, etag, fields, create_time, update_time)
                 VALUES ('other', 'production', 1, 'W/old', $1::jsonb, to_timestamp(5000), to_timestamp(5000))",
            )
            .bind(OLD_FIELDS)
            .execute(&mut c)
            .await
            .expect("old contact info");
        }
    }
    db
}

fn user(partner: &str, n: u128) -> PortalUserName {
    PortalUserName {
        partner: PartnerId::parse(partner).expect("partner"),
        id: uuid::Uuid::from_u128(n),
    }
}

/// (id, email_key, email_key_scheme, shares_mailbox_with) of every portal user.
async fn stored_keys(backend: Backend, url: &str) -> Vec<(String, String, i64, Option<String>)> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT id, email_key, email_key_scheme, shares_mailbox_with FROM portal_users ORDER BY id"
        }
        Backend::Postgres => {
            "SELECT id::text, email_key, email_key_scheme::bigint, shares_mailbox_with::text
             FROM portal_users ORDER BY id"
        }
    };
    match backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(url).await.expect("connect");
            sqlx::query_as(sql).fetch_all(&mut c).await.expect("keys")
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(url).await.expect("connect");
            sqlx::query_as(sql).fetch_all(&mut c).await.expect("keys")
        }
    }
}

async fn keys_are_recomputed_and_shared_mailboxes_reported(backend: Backend) {
    let db = previous_release(backend).await;
    let (t, report) = db.open().await;

    // Every user is still there; the pair that is one mailbox is reported,
    // as is the look-alike address the old rules let in.
    assert_eq!(report.rekeyed, 5);
    assert_eq!(
        report.shared_mailboxes,
        vec![(user("acme", 2), user("acme", 3))]
    );
    assert_eq!(report.no_longer_valid, vec![user("globex", 5)]);
    let lines = report.lines().join("\n");
    assert!(lines.contains(&user("acme", 3).to_string()), "{lines}");
    assert!(
        !lines.contains("bücher") && !lines.contains("globex.example"),
        "no addresses in {lines}"
    );
    for (partner, count) in [("acme", 3), ("other", 1), ("globex", 1)] {
        let users = t
            .store
            .list_portal_users(&PartnerId::parse(partner).expect("partner"), None, 10)
            .await
            .expect("list");
        assert_eq!(users.len(), count, "{partner}");
    }

    let keys = stored_keys(backend, &t.url).await;
    let by_id = |n: u128| {
        keys.iter()
            .find(|k| k.0 == uuid::Uuid::from_u128(n).hyphenated().to_string())
            .cloned()
            .expect("row")
    };
    assert!(keys.iter().all(|k| k.2 == 2), "{keys:?}");
    assert_eq!(by_id(2).1, "info@xn--bcher-kva.example");
    assert_eq!(by_id(3).1, "info@xn--bcher-kva.example");
    assert_eq!(by_id(2).3, None);
    assert_eq!(
        by_id(3).3,
        Some(uuid::Uuid::from_u128(2).hyphenated().to_string())
    );
    assert_ne!(by_id(5).1, "kim@globex.example");

    // Opening again finds nothing left to do.
    let (_again, second) = common::store_reopened(&t).await;
    assert_eq!(second.rekeyed, 0);
    assert!(second.lines().is_empty());

    // One of the pair can be revoked; the other keeps the mailbox's access.
    t.store
        .revoke_portal_access(&user("acme", 3), "test")
        .await
        .expect("revoke the newer");
    let emails = t
        .store
        .portal_user_emails(&PartnerId::parse("acme").expect("partner"))
        .await
        .expect("emails");
    assert!(emails.contains("info@xn--bcher-kva.example"));
}

async fn a_look_alike_saved_before_no_longer_passes(backend: Backend) {
    let db = previous_release(backend).await;
    let (t, _) = db.open().await;
    let server = TestServer::start_on(t, partner_contacts::domain::GatePolicy::builtin()).await;
    let mut c = server.client.clone();
    let name = ContactInfoName::new(
        PartnerId::parse("other").expect("partner"),
        Environment::Production,
    )
    .to_string();

    // Saved under the old rules, still readable, canonicalised where it can be.
    let info = c
        .get_contacts(pb::GetContactsRequest {
            name: name.clone(),
            read_time: None,
        })
        .await
        .expect("legacy values read back")
        .into_inner();
    assert_eq!(info.alert_contacts[0].email, "\u{212A}im@other.example");
    let pager = &info.technical_emergency_contacts[0];
    assert_eq!(pager.language_code, "en-US");
    assert_eq!(pager.display_name, "Pager\u{202E}esrever");
    let window = &info.operational_support.expect("support").windows[0];
    assert_eq!(window.time_zone, "America/Los_Angeles");
    assert_eq!(window.close_time, "24:00");
    assert_eq!(
        window.days,
        [pb::DayOfWeek::Monday as i32, pb::DayOfWeek::Tuesday as i32]
    );

    // The look-alike is no portal user: the gate closes, the dispatcher
    // skips it (the old rules opened the gate and paged it).
    let gate = c
        .check_onboarding_gate(pb::CheckOnboardingGateRequest {
            name: name.clone(),
            integration_type: String::new(),
        })
        .await
        .expect("gate")
        .into_inner();
    assert!(!gate.open);
    assert!(
        gate.findings.iter().any(|f| f.field == "alert_contacts"
            && f.reason == pb::GateFindingReason::NotAPortalUser as i32),
        "{gate:?}"
    );
    let resolved = c
        .resolve_recipients(pb::ResolveRecipientsRequest {
            name,
            purpose: pb::Purpose::ProductionAlert as i32,
            at_time: None,
        })
        .await
        .expect("resolve")
        .into_inner();
    assert!(
        resolved
            .recipients
            .iter()
            .all(|r| r.email != "\u{212A}im@other.example"),
        "{resolved:?}"
    );
}

on_both_backends!(
    keys_are_recomputed_and_shared_mailboxes_reported,
    a_look_alike_saved_before_no_longer_passes,
);
