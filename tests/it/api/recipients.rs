//! ResolveRecipients: every purpose and fallback rule, revoked alert contacts,
//! the audience filter, and support hours at an instant (DST included).
use tonic::Code;

use super::*;
use crate::common::{Backend, TestServer, hs256_authenticator, service_token};
use crate::on_both_backends;

fn ask(name: &str, purpose: pb::Purpose, at: Option<&str>) -> pb::ResolveRecipientsRequest {
    pb::ResolveRecipientsRequest {
        name: name.to_owned(),
        purpose: purpose as i32,
        at_time: at.map(|t| {
            let t = chrono::DateTime::parse_from_rfc3339(t).expect("rfc3339");
            prost_types::Timestamp {
                seconds: t.timestamp(),
                nanos: 0,
            }
        }),
    }
}

async fn resolve(
    c: &mut Client,
    req: pb::ResolveRecipientsRequest,
) -> Result<pb::ResolveRecipientsResponse, Status> {
    c.resolve_recipients(req)
        .await
        .map(tonic::Response::into_inner)
}

fn emails(r: &pb::ResolveRecipientsResponse) -> Vec<(&str, &str)> {
    r.recipients
        .iter()
        .map(|x| (x.email.as_str(), x.field.as_str()))
        .collect()
}

fn fallback(r: &pb::ResolveRecipientsResponse) -> Option<(&str, &str)> {
    r.fallback
        .as_ref()
        .map(|f| (f.requested_field.as_str(), f.used_field.as_str()))
}

async fn each_purpose_asks_its_own_field(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let saved = save(&mut c, put(complete_info(PROD))).await;
    let cases = [
        (
            pb::Purpose::ProductionAlert,
            "alerts@example.com",
            "alert_contacts",
        ),
        (
            pb::Purpose::TechnicalEmergency,
            "Pager.Team@Example.COM",
            "technical_emergency_contacts",
        ),
        (
            pb::Purpose::TechnicalSupport,
            "dev@example.com",
            "technical_non_emergency_contacts",
        ),
        (
            pb::Purpose::MerchantIssue,
            "merchants@example.com",
            "merchant_issues_contacts",
        ),
        (
            pb::Purpose::UserEscalation,
            "escalations@example.com",
            "platform_operational_contacts",
        ),
        (
            pb::Purpose::UserSupport,
            "Support@Example.com",
            "user_facing_operational_contacts",
        ),
    ];
    for (purpose, first, field) in cases {
        let r = resolve(&mut c, ask(PROD, purpose, None))
            .await
            .expect("resolve");
        assert_eq!(emails(&r)[0], (first, field), "{purpose:?}");
        assert_eq!(fallback(&r), None, "{purpose:?}");
        assert_eq!(r.etag, saved.etag);
        assert!(r.at_time.is_some());
    }
    // The recipient carries what a notification needs.
    let r = resolve(&mut c, ask(PROD, pb::Purpose::TechnicalEmergency, None))
        .await
        .expect("resolve");
    let pager = &r.recipients[0];
    assert_eq!(pager.display_name, "Pager — 日本");
    assert_eq!(pager.language_code, "pt-BR");
    assert_eq!(pager.phone_number, "+16502530000");
}

async fn fallbacks_apply_in_the_documented_order(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    // Only technical non-emergency and user-facing contacts.
    let sparse = pb::ContactInfo {
        technical_non_emergency_contacts: vec![contact("dev@example.com")],
        user_facing_operational_contacts: vec![contact("help@example.com")],
        ..named(PROD)
    };
    save(&mut c, put(sparse)).await;
    let cases = [
        (pb::Purpose::ProductionAlert, None, None),
        (
            pb::Purpose::TechnicalEmergency,
            Some("dev@example.com"),
            Some((
                "technical_emergency_contacts",
                "technical_non_emergency_contacts",
            )),
        ),
        (pb::Purpose::TechnicalSupport, Some("dev@example.com"), None),
        (pb::Purpose::MerchantIssue, None, None),
        (
            pb::Purpose::UserEscalation,
            Some("help@example.com"),
            Some((
                "platform_operational_contacts",
                "user_facing_operational_contacts",
            )),
        ),
        (pb::Purpose::UserSupport, Some("help@example.com"), None),
    ];
    for (purpose, first, rule) in cases {
        let r = resolve(&mut c, ask(PROD, purpose, None))
            .await
            .expect("resolve");
        assert_eq!(
            r.recipients.first().map(|x| x.email.as_str()),
            first,
            "{purpose:?}"
        );
        assert_eq!(fallback(&r), rule, "{purpose:?}");
    }
    // Production alerts fall back to the emergency contacts.
    save(
        &mut c,
        put_masked(
            pb::ContactInfo {
                technical_emergency_contacts: vec![contact("pager@example.com")],
                ..named(PROD)
            },
            &["technical_emergency_contacts"],
        ),
    )
    .await;
    let r = resolve(&mut c, ask(PROD, pb::Purpose::ProductionAlert, None))
        .await
        .expect("resolve");
    assert_eq!(
        emails(&r),
        [("pager@example.com", "technical_emergency_contacts")],
        "deduplicated"
    );
    let f = r.fallback.expect("fallback");
    assert_eq!(f.requested_field, "alert_contacts");
    assert!(f.rule.contains("alert_contacts is empty"), "{}", f.rule);
}

async fn revoked_alert_contacts_stop_receiving_alerts(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    save(&mut c, put(complete_info(PROD))).await;
    let users = c
        .list_portal_users(pb::ListPortalUsersRequest {
            parent: "partners/acme".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .portal_users;
    let oncall = users
        .iter()
        .find(|u| u.email == "oncall@example.com")
        .expect("oncall is a user");
    c.revoke_portal_access(pb::RevokePortalAccessRequest {
        name: oncall.name.clone(),
    })
    .await
    .expect("revoke");
    let r = resolve(&mut c, ask(PROD, pb::Purpose::ProductionAlert, None))
        .await
        .expect("resolve");
    assert_eq!(emails(&r), [("alerts@example.com", "alert_contacts")]);
    // The saved list still names both.
    assert_eq!(fetch(&mut c, PROD).await.alert_contacts.len(), 2);
}

async fn user_facing_callers_only_reach_user_facing_contacts(backend: Backend) {
    let server = TestServer::start_with_auth(backend, hs256_authenticator()).await;
    let mut c = server.client.clone();
    let admin = crate::common::full_access_token("setup");
    grant_alert_users(&mut c, "acme", Some(&admin)).await;
    c.update_contacts(bearer(&admin, put(complete_info(PROD))))
        .await
        .expect("save");
    let site = service_token("help-center", &["contacts.read_user_facing"]);
    let r = c
        .resolve_recipients(bearer(&site, ask(PROD, pb::Purpose::UserEscalation, None)))
        .await
        .expect("allowed")
        .into_inner();
    // The platform-facing contacts are invisible, so the fallback is all it gets.
    assert_eq!(
        emails(&r),
        [("Support@Example.com", "user_facing_operational_contacts")]
    );
    let r = c
        .resolve_recipients(bearer(&site, ask(PROD, pb::Purpose::ProductionAlert, None)))
        .await
        .expect("allowed")
        .into_inner();
    assert!(r.recipients.is_empty(), "{r:?}");
    let denied = c
        .resolve_recipients(bearer(
            &service_token("writer", &["contacts.write"]),
            ask(PROD, pb::Purpose::UserSupport, None),
        ))
        .await;
    expect_code(denied, Code::PermissionDenied);
}

async fn support_open_follows_windows_and_dst(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    // complete_info: Monday to Friday 09:00-17:30 in Los Angeles.
    save(&mut c, put(complete_info(PROD))).await;
    let open_at = |t: &'static str| ask(PROD, pb::Purpose::UserSupport, Some(t));
    for (t, want) in [
        // Friday 2026-03-06, PST (UTC-8): 09:00 local is 17:00 UTC.
        ("2026-03-06T16:30:00Z", false),
        ("2026-03-06T17:00:00Z", true),
        // Monday 2026-03-09, PDT (UTC-7): 09:00 local is 16:00 UTC.
        ("2026-03-09T16:30:00Z", true),
        ("2026-03-10T00:29:00Z", true),
        ("2026-03-10T00:30:00Z", false),
        // Saturday.
        ("2026-03-07T20:00:00Z", false),
        // Monday 2026-11-02, back on PST.
        ("2026-11-02T16:30:00Z", false),
        ("2026-11-02T17:30:00Z", true),
    ] {
        let r = resolve(&mut c, open_at(t)).await.expect("resolve");
        assert_eq!(r.support_open, want, "{t}");
    }
    // Always open, and unset.
    save(
        &mut c,
        put_masked(
            pb::ContactInfo {
                operational_support: always_open(),
                ..named(PROD)
            },
            &["operational_support"],
        ),
    )
    .await;
    assert!(
        resolve(&mut c, open_at("2026-03-07T20:00:00Z"))
            .await
            .expect("resolve")
            .support_open
    );
    save(&mut c, put_masked(named(PROD), &["operational_support"])).await;
    assert!(
        !resolve(&mut c, open_at("2026-03-06T18:00:00Z"))
            .await
            .expect("resolve")
            .support_open
    );
}

async fn bad_requests_and_missing_contact_info(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    expect_code(
        resolve(&mut c, ask(PROD, pb::Purpose::UserSupport, None)).await,
        Code::NotFound,
    );
    assert_invalid(
        resolve(
            &mut c,
            pb::ResolveRecipientsRequest {
                name: "partners/Acme".into(),
                purpose: 0,
                at_time: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
            },
        )
        .await,
        &["name", "purpose", "at_time"],
    );
    assert_invalid(
        resolve(
            &mut c,
            pb::ResolveRecipientsRequest {
                name: PROD.into(),
                purpose: 42,
                at_time: None,
            },
        )
        .await,
        &["purpose"],
    );
}

on_both_backends!(
    each_purpose_asks_its_own_field,
    fallbacks_apply_in_the_documented_order,
    revoked_alert_contacts_stop_receiving_alerts,
    user_facing_callers_only_reach_user_facing_contacts,
    support_open_follows_windows_and_dst,
    bad_requests_and_missing_contact_info,
);
