//! One address, one mailbox: look-alike addresses cannot pass as portal users,
//! and the forms of one internationalised address are one mailbox.
use partner_contacts::pb;
use tonic::Code;

use crate::api::{
    PROD, assert_invalid, assert_not_echoed, check, contact, expect_code, grant, named, put,
    put_masked, save, update,
};
use crate::common::{Backend, TestServer};
use crate::on_both_backends;

const ACME: &str = "partners/acme";

/// Look-alikes of `kim@acme.example` and `åsa@acme.example`, and addresses
/// carrying characters no mail system should see.
const ATTACKS: [&str; 9] = [
    "\u{212A}im@acme.example",  // KELVIN SIGN, lower-cases to k
    "\u{212B}sa@acme.example",  // ANGSTROM SIGN, lower-cases to å
    "\u{FF4B}im@acme.example",  // FULLWIDTH k
    "\u{43A}im@acme.example",   // Cyrillic к among Latin letters
    "k\u{200B}im@acme.example", // ZERO WIDTH SPACE
    "k\u{85}im@acme.example",   // C1 NEXT LINE
    "k\u{202E}im@acme.example", // RIGHT-TO-LEFT OVERRIDE
    "kim@\u{FF41}cme.example",  // FULLWIDTH a in the domain
    "\"kim\"@acme.example",     // quoted local part
];

async fn look_alikes_never_pass_as_portal_users(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    grant(
        &mut c,
        ACME,
        "kim@acme.example",
        pb::PortalRole::Administrator,
    )
    .await
    .expect("the real user");
    grant(&mut c, ACME, "åsa@acme.example", pb::PortalRole::Editor)
        .await
        .expect("the real user");
    for attack in ATTACKS {
        // Not ALREADY_EXISTS: that would say the look-alike is the same user.
        let s = assert_invalid(
            grant(&mut c, ACME, attack, pb::PortalRole::Editor).await,
            &["portal_user.email"],
        );
        assert_not_echoed(&s, &[attack]);
        // As an alert contact: refused before the portal-user check.
        let mut info = named(PROD);
        info.alert_contacts = vec![contact(attack)];
        let s = assert_invalid(
            update(&mut c, put_masked(info, &["alert_contacts"])).await,
            &["contact_info.alert_contacts[0].email"],
        );
        assert_not_echoed(&s, &[attack]);
        // Nor anywhere else an alert or a user could be sent to.
        let mut info = named(PROD);
        info.user_facing_operational_contacts = vec![contact(attack)];
        assert_invalid(
            update(
                &mut c,
                put_masked(info, &["user_facing_operational_contacts"]),
            )
            .await,
            &["contact_info.user_facing_operational_contacts[0].email"],
        );
    }
    expect_code(
        c.get_contacts(pb::GetContactsRequest {
            name: PROD.to_owned(),
            read_time: None,
        })
        .await,
        Code::NotFound,
    );
}

async fn one_internationalised_mailbox_in_any_form(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    grant(
        &mut c,
        ACME,
        "info@bücher.example",
        pb::PortalRole::Administrator,
    )
    .await
    .expect("grant in Unicode form");
    // The same mailbox written in ASCII form is the same user...
    expect_code(
        grant(
            &mut c,
            ACME,
            "INFO@xn--BCHER-kva.example",
            pb::PortalRole::Editor,
        )
        .await,
        Code::AlreadyExists,
    );
    // ...and passes as that portal user, kept as written.
    let mut info = named(PROD);
    info.alert_contacts = vec![contact("Info@xn--bcher-kva.example")];
    let saved = save(&mut c, put_masked(info, &["alert_contacts"])).await;
    assert_eq!(saved.alert_contacts[0].email, "Info@xn--bcher-kva.example");
    let gate = check(&mut c, PROD, "").await;
    assert!(
        gate.findings.iter().all(|f| f.field != "alert_contacts"),
        "{gate:?}"
    );
    // Both forms in one field are one address twice.
    let mut info = named(PROD);
    info.technical_emergency_contacts = vec![
        contact("info@bücher.example"),
        contact("INFO@xn--bcher-kva.example"),
    ];
    assert_invalid(
        update(&mut c, put_masked(info, &["technical_emergency_contacts"])).await,
        &["contact_info.technical_emergency_contacts[1].email"],
    );
    // Non-ASCII letters are compared exactly: Åsa is not åsa.
    grant(&mut c, ACME, "Åsa@acme.example", pb::PortalRole::Editor)
        .await
        .expect("Åsa");
    grant(&mut c, ACME, "åsa@acme.example", pb::PortalRole::Editor)
        .await
        .expect("åsa is another mailbox");
}

async fn resolve_never_pages_an_address_nobody_granted(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    grant(
        &mut c,
        ACME,
        "kim@acme.example",
        pb::PortalRole::Administrator,
    )
    .await
    .expect("grant");
    let mut info = crate::api::complete_info(PROD);
    info.alert_contacts = vec![contact("Kim@acme.example")];
    save(&mut c, put(info)).await;
    let resolved = c
        .resolve_recipients(pb::ResolveRecipientsRequest {
            name: PROD.to_owned(),
            purpose: pb::Purpose::ProductionAlert as i32,
            at_time: None,
        })
        .await
        .expect("resolve")
        .into_inner();
    let emails: Vec<&str> = resolved
        .recipients
        .iter()
        .map(|r| r.email.as_str())
        .collect();
    assert_eq!(emails, ["Kim@acme.example"]);
}

on_both_backends!(
    look_alikes_never_pass_as_portal_users,
    one_internationalised_mailbox_in_any_form,
    resolve_never_pages_an_address_nobody_granted,
);
