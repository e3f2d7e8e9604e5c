//! Portal users through the API (the onboarding modal's Users tab): grants,
//! AIP-158 paging, roles, the last administrator, and alert contacts that
//! must be portal users.
use tonic::Code;
use tonic_types::StatusExt;

use super::*;
use crate::common::{Backend, TestServer};
use crate::on_both_backends;

use pb::PortalRole::{Administrator, Editor, ReadOnly};

const ACME: &str = "partners/acme";
const NOT_A_PORTAL_USER: i32 = pb::GateFindingReason::NotAPortalUser as i32;

async fn list_page(
    c: &mut Client,
    parent: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListPortalUsersResponse, Status> {
    c.list_portal_users(pb::ListPortalUsersRequest {
        parent: parent.to_owned(),
        page_size,
        page_token: page_token.to_owned(),
    })
    .await
    .map(tonic::Response::into_inner)
}

/// Every user of `parent`, following `next_page_token` with `page_size`;
/// also returns how many users each page held.
async fn list_all(
    c: &mut Client,
    parent: &str,
    page_size: i32,
) -> (Vec<pb::PortalUser>, Vec<usize>) {
    let mut users = Vec::new();
    let mut sizes = Vec::new();
    let mut token = String::new();
    loop {
        let page = list_page(c, parent, page_size, &token)
            .await
            .unwrap_or_else(|s| panic!("ListPortalUsers {parent}: {s:?}"));
        sizes.push(page.portal_users.len());
        users.extend(page.portal_users);
        if page.next_page_token.is_empty() {
            return (users, sizes);
        }
        assert!(sizes.len() < 100, "paging does not end");
        token = page.next_page_token;
    }
}

async fn update_role(
    c: &mut Client,
    name: &str,
    role: pb::PortalRole,
) -> Result<pb::PortalUser, Status> {
    c.update_portal_user_role(pb::UpdatePortalUserRoleRequest {
        name: name.to_owned(),
        role: role as i32,
    })
    .await
    .map(tonic::Response::into_inner)
}

async fn revoke(c: &mut Client, name: &str) -> Result<(), Status> {
    c.revoke_portal_access(pb::RevokePortalAccessRequest {
        name: name.to_owned(),
    })
    .await
    .map(drop)
}

/// A user that must be granted.
async fn granted(
    c: &mut Client,
    parent: &str,
    email: &str,
    role: pb::PortalRole,
) -> pb::PortalUser {
    grant(c, parent, email, role)
        .await
        .unwrap_or_else(|s| panic!("GrantPortalAccess {role:?}: {s:?}"))
}

fn assert_precondition<T: std::fmt::Debug>(
    result: Result<T, Status>,
    kind: &str,
    subjects: &[&str],
) -> Status {
    let s = expect_code(result, Code::FailedPrecondition);
    let got = precondition_violations(&s);
    let want: Vec<(String, String)> = subjects
        .iter()
        .map(|subject| (kind.to_owned(), (*subject).to_owned()))
        .collect();
    assert_eq!(got, want, "{s:?}");
    s
}

fn unknown_user(partner: &str) -> String {
    format!("partners/{partner}/portalUsers/{}", uuid::Uuid::new_v4())
}

async fn grant_and_list_with_paging(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let mut users = Vec::new();
    for (email, role) in [
        ("Ann@Example.com", Administrator),
        ("bob@example.com", Editor),
        ("cy@example.com", ReadOnly),
        ("dee@example.com", Editor),
        ("eve@example.com", Administrator),
    ] {
        let user = granted(&mut c, ACME, email, role).await;
        let id = user
            .name
            .strip_prefix("partners/acme/portalUsers/")
            .unwrap_or_else(|| panic!("name {}", user.name));
        assert!(
            id.len() == 36 && uuid::Uuid::try_parse(id).is_ok(),
            "ids are service-assigned UUIDs, never the email: {}",
            user.name
        );
        assert_eq!(user.email, email, "kept as given");
        assert_eq!(user.role, role as i32);
        assert!(user.create_time.is_some());
        assert_eq!(user.create_time, user.update_time);
        users.push(user);
    }
    granted(&mut c, "partners/other", "ann@example.com", Administrator).await;

    // page_size 2: pages of 2, 2, 1, in grant order, then no token.
    let (listed, sizes) = list_all(&mut c, ACME, 2).await;
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(listed, users);
    // Exactly one page's worth: no next page.
    let (listed, sizes) = list_all(&mut c, ACME, 5).await;
    assert_eq!((listed.len(), sizes), (5, vec![5]));
    // 0 means the default (50), more than the maximum means the maximum.
    for size in [0, 1_000_000] {
        let page = list_page(&mut c, ACME, size, "").await.expect("list");
        assert_eq!(page.portal_users, users);
        assert!(page.next_page_token.is_empty());
    }
    // Users are per partner; a partner with none lists nothing.
    let (other, _) = list_all(&mut c, "partners/other", 2).await;
    assert_eq!(other.len(), 1);
    assert!(other[0].name.starts_with("partners/other/portalUsers/"));
    let empty = list_page(&mut c, "partners/nobody", 2, "")
        .await
        .expect("list");
    assert!(empty.portal_users.is_empty() && empty.next_page_token.is_empty());

    // Page tokens: malformed, from another parent, of another list.
    let acme_token = list_page(&mut c, ACME, 2, "")
        .await
        .expect("list")
        .next_page_token;
    assert!(!acme_token.is_empty());
    let revisions_token = {
        save(&mut c, put(named(PROD))).await;
        save(&mut c, put(named(PROD))).await;
        c.list_contact_info_revisions(pb::ListContactInfoRevisionsRequest {
            name: PROD.to_owned(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .expect("revisions")
        .into_inner()
        .next_page_token
    };
    assert!(!revisions_token.is_empty());
    for (parent, token) in [
        (ACME, "garbage"),
        (ACME, "zz"),
        (ACME, revisions_token.as_str()),
        ("partners/other", acme_token.as_str()),
    ] {
        assert_invalid(list_page(&mut c, parent, 2, token).await, &["page_token"]);
    }
    assert_invalid(list_page(&mut c, ACME, -1, "").await, &["page_size"]);
    for parent in ["partners/Acme", "partners/acme/portalUsers", "acme", ""] {
        assert_invalid(list_page(&mut c, parent, 2, "").await, &["parent"]);
    }
    assert_invalid(
        list_page(&mut c, "partners/", -5, "").await,
        &["parent", "page_size"],
    );
}

async fn grant_rules(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();

    // The first user of a partner must be an administrator.
    for role in [Editor, ReadOnly] {
        assert_precondition(
            grant(&mut c, ACME, "first@example.com", role).await,
            "FIRST_USER_MUST_BE_ADMINISTRATOR",
            &["portal_user.role"],
        );
    }
    let admin = granted(&mut c, ACME, "First@Example.com", Administrator).await;

    // An email has access once per partner, compared case-insensitively.
    for dup in ["first@example.com", "FIRST@EXAMPLE.COM"] {
        let s = expect_code(
            grant(&mut c, ACME, dup, ReadOnly).await,
            Code::AlreadyExists,
        );
        assert_eq!(error_reason(&s), "ALREADY_EXISTS");
        assert_not_echoed(&s, &["first@example.com"]);
    }
    granted(&mut c, "partners/other", "first@example.com", Administrator).await;

    // Invalid requests list every violation.
    assert_invalid(
        grant(&mut c, ACME, "new@example.com", pb::PortalRole::Unspecified).await,
        &["portal_user.role"],
    );
    let unknown_role = c
        .grant_portal_access(pb::GrantPortalAccessRequest {
            parent: ACME.to_owned(),
            portal_user: Some(pb::PortalUser {
                email: "new@example.com".to_owned(),
                role: 99,
                ..Default::default()
            }),
        })
        .await;
    assert_invalid(unknown_role, &["portal_user.role"]);
    for bad_email in ["", "not an email", "new@localhost", "New <new@example.com>"] {
        let s = assert_invalid(
            grant(&mut c, ACME, bad_email, Editor).await,
            &["portal_user.email"],
        );
        if !bad_email.is_empty() {
            assert_not_echoed(&s, &[bad_email]);
        }
    }
    assert_invalid(
        grant(&mut c, "partners/Acme", "nope", pb::PortalRole::Unspecified).await,
        &["parent", "portal_user.email", "portal_user.role"],
    );
    assert_invalid(
        c.grant_portal_access(pb::GrantPortalAccessRequest {
            parent: ACME.to_owned(),
            portal_user: None,
        })
        .await,
        &["portal_user"],
    );
    // None of them granted anything.
    let (users, _) = list_all(&mut c, ACME, 0).await;
    assert_eq!(users, [admin]);
}

async fn roles_and_the_last_administrator(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let ann = granted(&mut c, ACME, "ann@example.com", Administrator).await;
    let bob = granted(&mut c, ACME, "bob@example.com", Editor).await;

    let changed = update_role(&mut c, &bob.name, ReadOnly)
        .await
        .expect("demote bob");
    assert_eq!(changed.role, ReadOnly as i32);
    assert_eq!((&changed.name, &changed.email), (&bob.name, &bob.email));
    assert_eq!(changed.create_time, bob.create_time);
    let (t0, t1) = (
        bob.update_time.expect("time"),
        changed.update_time.expect("time"),
    );
    assert!((t1.seconds, t1.nanos) >= (t0.seconds, t0.nanos));

    // Ann is the only administrator: she can neither be demoted nor removed.
    for role in [Editor, ReadOnly] {
        assert_precondition(
            update_role(&mut c, &ann.name, role).await,
            "LAST_ADMINISTRATOR",
            &["role"],
        );
    }
    assert_precondition(
        revoke(&mut c, &ann.name).await,
        "LAST_ADMINISTRATOR",
        &["role"],
    );
    // Keeping her an administrator is fine.
    update_role(&mut c, &ann.name, Administrator)
        .await
        .expect("same role");

    // With a second administrator she can go.
    update_role(&mut c, &bob.name, Administrator)
        .await
        .expect("promote bob");
    let demoted = update_role(&mut c, &ann.name, Editor)
        .await
        .expect("demote ann");
    assert_eq!(demoted.role, Editor as i32);
    revoke(&mut c, &ann.name).await.expect("revoke ann");
    let (users, _) = list_all(&mut c, ACME, 0).await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].name, bob.name);
    assert_eq!(users[0].role, Administrator as i32);
    assert_precondition(
        revoke(&mut c, &bob.name).await,
        "LAST_ADMINISTRATOR",
        &["role"],
    );

    // A revoked user, an unknown id, or another partner's user under this
    // partner's name: NOT_FOUND.
    let other = granted(&mut c, "partners/other", "olga@example.com", Administrator).await;
    let other_id = other.name.rsplit('/').next().expect("id");
    let disguised = format!("{ACME}/portalUsers/{other_id}");
    for name in [ann.name.clone(), unknown_user("acme"), disguised] {
        let s = expect_code(update_role(&mut c, &name, Editor).await, Code::NotFound);
        assert_eq!(error_reason(&s), "RESOURCE_NOT_FOUND");
        let s = expect_code(revoke(&mut c, &name).await, Code::NotFound);
        assert_eq!(error_reason(&s), "RESOURCE_NOT_FOUND");
    }
    // The other partner's user was not touched.
    let (others, _) = list_all(&mut c, "partners/other", 0).await;
    assert_eq!(others, [other]);

    // Malformed names and roles are INVALID_ARGUMENT, all at once.
    for bad in [
        "partners/acme/portalUsers/ann@example.com",
        "partners/acme/portalUsers/",
        "partners/acme/users/2f1e9a9c-2d43-4b0e-9a4e-8c1f3b7d5e60",
        "partners/Acme/portalUsers/2f1e9a9c-2d43-4b0e-9a4e-8c1f3b7d5e60",
        "partners/acme/portalUsers/2f1e9a9c2d434b0e9a4e8c1f3b7d5e60",
        "",
    ] {
        let s = assert_invalid(update_role(&mut c, bad, Editor).await, &["name"]);
        assert_not_echoed(&s, &["ann@example.com"]);
        assert_invalid(revoke(&mut c, bad).await, &["name"]);
    }
    assert_invalid(
        update_role(&mut c, &bob.name, pb::PortalRole::Unspecified).await,
        &["role"],
    );
    assert_invalid(
        update_role(
            &mut c,
            "partners/acme/portalUsers/x",
            pb::PortalRole::Unspecified,
        )
        .await,
        &["name", "role"],
    );
}

/// A NOT_FOUND for a portal user describes a portal user: its
/// `ResourceInfo` names the portal user and its type.
async fn portal_user_not_found_describes_a_portal_user(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    granted(&mut c, ACME, "ann@example.com", Administrator).await;
    let name = unknown_user("acme");
    let s = expect_code(revoke(&mut c, &name).await, Code::NotFound);
    let details = s.get_error_details();
    let resource = details.resource_info().expect("ResourceInfo");
    assert_eq!(resource.resource_name, name);
    assert_eq!(
        resource.resource_type, "partnerportal.contacts.v1.PortalUser",
        "{s:?}"
    );
}

async fn alert_contacts_must_be_portal_users(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    // Only the first alert contact of complete_info has access.
    granted(&mut c, ACME, ALERT_USERS[0].0, Administrator).await;
    // A user of another partner does not count.
    granted(&mut c, "partners/other", ALERT_USERS[1].0, Administrator).await;

    let s = assert_precondition(
        update(&mut c, put(complete_info(PROD))).await,
        "NOT_A_PORTAL_USER",
        &["contact_info.alert_contacts[1].email"],
    );
    assert_not_echoed(&s, &[ALERT_USERS[1].0]);
    // validate_only checks it too, and a masked update naming alert_contacts.
    assert_precondition(
        update(
            &mut c,
            pb::UpdateContactsRequest {
                validate_only: true,
                ..put(complete_info(PROD))
            },
        )
        .await,
        "NOT_A_PORTAL_USER",
        &["contact_info.alert_contacts[1].email"],
    );
    let reversed = pb::ContactInfo {
        alert_contacts: vec![
            contact(ALERT_USERS[1].0),
            contact("nobody@example.com"),
            contact(ALERT_USERS[0].0),
        ],
        ..named(PROD)
    };
    assert_precondition(
        update(&mut c, put_masked(reversed, &["alert_contacts"])).await,
        "NOT_A_PORTAL_USER",
        &[
            "contact_info.alert_contacts[0].email",
            "contact_info.alert_contacts[1].email",
        ],
    );
    expect_code(get(&mut c, PROD).await, Code::NotFound);

    // Granting access (in another letter case) lets the update through.
    granted(&mut c, ACME, &ALERT_USERS[1].0.to_uppercase(), ReadOnly).await;
    let saved = save(&mut c, put(complete_info(PROD))).await;
    assert_eq!(editable(saved), complete_info(PROD));
}

async fn revoking_an_alert_contact_closes_the_gate(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let saved = save(&mut c, put(complete_info(PROD))).await;
    assert!(check(&mut c, PROD, "").await.open);

    let (users, _) = list_all(&mut c, ACME, 0).await;
    let oncall = users
        .iter()
        .find(|u| u.email == ALERT_USERS[1].0)
        .expect("the second alert contact is a user");
    revoke(&mut c, &oncall.name).await.expect("revoke");

    // The contact stays...
    assert_eq!(fetch(&mut c, PROD).await, saved);
    // ...and the gate closes on it, for every integration type.
    for integration_type in ["", "reservations-e2e", "reservations-e2e-merchants"] {
        let r = check(&mut c, PROD, integration_type).await;
        assert!(!r.open, "{r:?}");
        assert_eq!(r.findings.len(), 1, "{r:?}");
        let f = &r.findings[0];
        assert_eq!(
            (f.field.as_str(), f.reason),
            ("alert_contacts", NOT_A_PORTAL_USER)
        );
        assert!(!f.message.is_empty());
        assert!(!f.message.contains(ALERT_USERS[1].0), "{f:?}");
        assert_eq!(r.etag, saved.etag);
    }
    // Updates that leave the alert contacts alone still save.
    let other = save(
        &mut c,
        put_masked(
            pb::ContactInfo {
                technical_emergency_contacts: vec![contact("pager-2@example.com")],
                ..named(PROD)
            },
            &["technical_emergency_contacts"],
        ),
    )
    .await;
    assert_eq!(other.alert_contacts, saved.alert_contacts);
    assert!(!check(&mut c, PROD, "").await.open);
    // One that names them must fix them.
    assert_precondition(
        update(&mut c, put(complete_info(PROD))).await,
        "NOT_A_PORTAL_USER",
        &["contact_info.alert_contacts[1].email"],
    );

    // Granting access again reopens the gate, without saving anything.
    granted(&mut c, ACME, ALERT_USERS[1].0, ReadOnly).await;
    let r = check(&mut c, PROD, "").await;
    assert!(r.open, "{r:?}");
    assert_eq!(r.etag, other.etag);
}

on_both_backends!(
    grant_and_list_with_paging,
    grant_rules,
    roles_and_the_last_administrator,
    portal_user_not_found_describes_a_portal_user,
    alert_contacts_must_be_portal_users,
    revoking_an_alert_contact_closes_the_gate,
);
