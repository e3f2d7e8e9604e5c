//! UpdateContacts field rules: every violation by exact path, all at once, and
//! never echoing personal data.
use tonic::Code;

use super::*;
use crate::common::{Backend, TestServer};
use crate::on_both_backends;

const TEC: &str = "contact_info.technical_emergency_contacts";
const SUPPORT: &str = "contact_info.operational_support";

/// `contacts` as the technical emergency contacts of an otherwise complete
/// production resource.
fn with_emergency(contacts: Vec<pb::Contact>) -> pb::UpdateContactsRequest {
    put(pb::ContactInfo {
        technical_emergency_contacts: contacts,
        ..complete_info(PROD)
    })
}

fn with_support(support: Option<pb::OperationalSupport>) -> pb::UpdateContactsRequest {
    put(pb::ContactInfo {
        operational_support: support,
        ..complete_info(PROD)
    })
}

async fn alert_contacts_in_sandbox_are_invalid(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let with_alerts = pb::ContactInfo {
        alert_contacts: vec![contact("alerts@example.com")],
        ..complete_info(SANDBOX)
    };
    assert_invalid(
        update(&mut c, put(with_alerts.clone())).await,
        &["contact_info.alert_contacts"],
    );
    assert_invalid(
        update(&mut c, put_masked(with_alerts, &["alert_contacts"])).await,
        &["contact_info.alert_contacts"],
    );
    expect_code(get(&mut c, SANDBOX).await, Code::NotFound);

    // Without alert contacts the sandbox saves; naming the empty field is fine.
    save(&mut c, put(complete_info(SANDBOX))).await;
    let saved = save(&mut c, put_masked(named(SANDBOX), &["alert_contacts"])).await;
    assert_eq!(editable(saved), complete_info(SANDBOX));
}

async fn invalid_contact_parts_name_their_exact_path(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let long_email = format!("{}@{}.example.com", "a".repeat(64), "b".repeat(200));
    let cases: Vec<(pb::Contact, &str)> = vec![
        (contact(""), "email"),
        (contact("not-an-email"), "email"),
        (contact("ops@localhost"), "email"),
        (contact("Ops <ops@example.com>"), "email"),
        (contact(&long_email), "email"),
        (
            full_contact("ok@example.com", "", "650-253-0000", ""),
            "phone_number",
        ),
        (
            full_contact("ok@example.com", "", "+1 123", ""),
            "phone_number",
        ),
        (
            full_contact("ok@example.com", "", "call me", ""),
            "phone_number",
        ),
        (
            full_contact("ok@example.com", "", "", "english please"),
            "language_code",
        ),
        (
            full_contact("ok@example.com", &"n".repeat(101), "", ""),
            "display_name",
        ),
        (
            full_contact("ok@example.com", "Ops\r\nBcc: x", "", ""),
            "display_name",
        ),
    ];
    for (bad, part) in cases {
        // Second in its list, so the index in the path is checked too.
        let req = with_emergency(vec![contact("first@example.com"), bad.clone()]);
        let path = format!("{TEC}[1].{part}");
        assert_invalid(update(&mut c, req).await, &[path.as_str()]);
        // Every contact field is checked the same way.
        let req = put(pb::ContactInfo {
            user_facing_operational_contacts: vec![bad],
            ..complete_info(PROD)
        });
        let path = format!("contact_info.user_facing_operational_contacts[0].{part}");
        assert_invalid(update(&mut c, req).await, &[path.as_str()]);
    }
    // The limits themselves are fine.
    let at_limits = full_contact(
        "ok@example.com",
        &"é".repeat(100),
        "+41 44 668 18 00",
        "zh-Hant-TW",
    );
    let saved = save(&mut c, with_emergency(vec![at_limits])).await;
    assert_eq!(
        saved.technical_emergency_contacts[0].phone_number,
        "+41446681800"
    );
    assert_eq!(
        saved.technical_emergency_contacts[0].language_code,
        "zh-Hant-TW"
    );
}

async fn one_bad_request_lists_every_violation(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let info = pb::ContactInfo {
        technical_emergency_contacts: vec![contact("nope")],
        technical_non_emergency_contacts: vec![
            contact("ok@example.com"),
            full_contact("ok2@example.com", "", "555", ""),
        ],
        platform_operational_contacts: vec![full_contact("ok@example.com", "", "", "not a tag")],
        user_facing_operational_contacts: vec![full_contact(
            "help@example.com",
            &"x".repeat(101),
            "",
            "",
        )],
        operational_support: windows(vec![window("Mars/Olympus", &weekdays(), "09:00", "09:00")]),
        ..complete_info(PROD)
    };
    let s = assert_invalid(
        update(&mut c, put(info)).await,
        &[
            "contact_info.technical_emergency_contacts[0].email",
            "contact_info.technical_non_emergency_contacts[1].phone_number",
            "contact_info.platform_operational_contacts[0].language_code",
            "contact_info.user_facing_operational_contacts[0].display_name",
            "contact_info.operational_support.windows[0].time_zone",
            "contact_info.operational_support.windows[0].close_time",
        ],
    );
    // The message names the fields too.
    assert!(
        s.message()
            .contains("contact_info.technical_emergency_contacts[0].email"),
        "{s:?}"
    );
    expect_code(get(&mut c, PROD).await, Code::NotFound);
}

async fn errors_never_echo_personal_data(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    // Invalid values, each with a canary.
    let bad_email = "zq7xcanary-at-example.com";
    let bad_phone = "+999 86753090";
    let bad_name = format!("Zq7xNameCanary{}", "!".repeat(100));
    let control_name = "Zq7xCtrlCanary\u{7}";
    let bad_language = "zq7x-langcanary-!!";
    // Valid values beside them, each with a canary too.
    let good_email = "zq7x.validcanary@example.com";
    let dup_email = "Zq7x.DupCanary@example.com";
    let info = pb::ContactInfo {
        technical_emergency_contacts: vec![
            full_contact(good_email, "Zq7x Valid Canary", "+1 650 253 0000", "en"),
            contact(bad_email),
        ],
        technical_non_emergency_contacts: vec![
            full_contact("ok@example.com", &bad_name, bad_phone, bad_language),
            full_contact("ok2@example.com", control_name, "", ""),
        ],
        platform_operational_contacts: vec![contact(dup_email), contact(&dup_email.to_lowercase())],
        ..complete_info(PROD)
    };
    let s = assert_invalid(
        update(&mut c, put(info)).await,
        &[
            "contact_info.technical_emergency_contacts[1].email",
            "contact_info.technical_non_emergency_contacts[0].display_name",
            "contact_info.technical_non_emergency_contacts[0].phone_number",
            "contact_info.technical_non_emergency_contacts[0].language_code",
            "contact_info.technical_non_emergency_contacts[1].display_name",
            "contact_info.platform_operational_contacts[1].email",
        ],
    );
    assert_not_echoed(&s, &["zq7x", "8675309", "canary", "650 253", "6502530000"]);

    // Nor does an oversized list or a sandbox alert list.
    let many: Vec<_> = (0..21)
        .map(|i| {
            full_contact(
                &format!("zq7x{i}@example.com"),
                "Zq7x",
                "+41 44 668 18 00",
                "",
            )
        })
        .collect();
    let s = assert_invalid(update(&mut c, with_emergency(many)).await, &[TEC]);
    assert_not_echoed(&s, &["zq7x", "668 18"]);
    let s = assert_invalid(
        update(
            &mut c,
            put(pb::ContactInfo {
                alert_contacts: vec![contact("zq7x.alert@example.com")],
                ..named(SANDBOX)
            }),
        )
        .await,
        &["contact_info.alert_contacts"],
    );
    assert_not_echoed(&s, &["zq7x"]);
}

async fn at_most_twenty_contacts_per_field(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let list = |n: usize| -> Vec<pb::Contact> {
        (0..n)
            .map(|i| contact(&format!("c{i}@example.com")))
            .collect()
    };
    assert_invalid(update(&mut c, with_emergency(list(21))).await, &[TEC]);
    assert_invalid(
        update(
            &mut c,
            put(pb::ContactInfo {
                merchant_issues_contacts: list(21),
                ..named(PROD)
            }),
        )
        .await,
        &["contact_info.merchant_issues_contacts"],
    );
    expect_code(get(&mut c, PROD).await, Code::NotFound);
    let saved = save(&mut c, with_emergency(list(20))).await;
    assert_eq!(saved.technical_emergency_contacts, list(20));
}

async fn duplicate_email_in_one_field_is_invalid(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let dup = vec![
        contact("ops@example.com"),
        contact("other@example.com"),
        contact("OPS@Example.com"),
    ];
    assert_invalid(
        update(&mut c, with_emergency(dup)).await,
        &["contact_info.technical_emergency_contacts[2].email"],
    );
    expect_code(get(&mut c, PROD).await, Code::NotFound);

    // The same address in two different fields is fine.
    let info = pb::ContactInfo {
        technical_emergency_contacts: vec![contact("ops@example.com")],
        technical_non_emergency_contacts: vec![contact("OPS@example.com")],
        ..complete_info(PROD)
    };
    let saved = save(&mut c, put(info.clone())).await;
    assert_eq!(editable(saved), info);
}

async fn bad_days_are_invalid(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();
    let with_days = |days: Vec<i32>| {
        with_support(Some(pb::OperationalSupport {
            always_open: false,
            windows: vec![pb::SupportWindow {
                days,
                ..window("Europe/Zurich", &[], "09:00", "17:00")
            }],
        }))
    };
    let day = |k: usize| format!("{SUPPORT}.windows[0].days[{k}]");
    let monday = pb::DayOfWeek::Monday as i32;
    for (days, path) in [
        (vec![42], day(0)),
        (vec![-1], day(0)),
        (vec![pb::DayOfWeek::Unspecified as i32], day(0)),
        (vec![monday, 8], day(1)),
        (vec![monday, monday], day(1)),
        (vec![], format!("{SUPPORT}.windows[0].days")),
    ] {
        assert_invalid(
            update(&mut c, with_days(days.clone())).await,
            &[path.as_str()],
        );
    }
    expect_code(get(&mut c, PROD).await, Code::NotFound);
    // All seven days, in any order, are fine; they are kept in week order,
    // so that one set of days is one value whichever order it was sent in.
    let all: Vec<i32> = (1..=7).rev().collect();
    let saved = save(&mut c, with_days(all.clone())).await;
    assert_eq!(
        saved.operational_support.expect("support").windows[0].days,
        (1..=7).collect::<Vec<i32>>()
    );
}

async fn operational_support_rules(backend: Backend) {
    let server = server(backend).await;
    let mut c = server.client.clone();

    // Valid forms in canonical form round-trip unchanged.
    for support in [
        always_open(),
        windows(vec![window(
            "America/Los_Angeles",
            &weekdays(),
            "22:00",
            "02:00",
        )]),
        windows(vec![
            window(
                "Europe/Zurich",
                &[pb::DayOfWeek::Saturday],
                "00:00",
                "24:00",
            ),
            window("Asia/Tokyo", &weekdays(), "09:00", "18:00"),
            window("Etc/UTC", &[pb::DayOfWeek::Sunday], "23:59", "24:00"),
        ]),
        None,
    ] {
        let saved = save(&mut c, with_support(support.clone())).await;
        assert_eq!(saved.operational_support, support);
        assert_eq!(fetch(&mut c, PROD).await, saved);
    }
    // Other ways of writing the same windows are saved in that form.
    let saved = save(
        &mut c,
        with_support(windows(vec![window(
            "UTC",
            &[pb::DayOfWeek::Sunday],
            "23:59",
            "00:00",
        )])),
    )
    .await;
    assert_eq!(
        saved.operational_support,
        windows(vec![window(
            "Etc/UTC",
            &[pb::DayOfWeek::Sunday],
            "23:59",
            "24:00"
        )])
    );

    let w = |open: &str, close: &str| window("Europe/Zurich", &weekdays(), open, close);
    let invalid: Vec<(Option<pb::OperationalSupport>, Vec<String>)> = vec![
        // Both always_open and windows.
        (
            Some(pb::OperationalSupport {
                always_open: true,
                windows: vec![w("09:00", "17:00")],
            }),
            vec![SUPPORT.to_owned()],
        ),
        // Neither.
        (
            Some(pb::OperationalSupport::default()),
            vec![SUPPORT.to_owned()],
        ),
        (
            windows(vec![window("Mars/Olympus", &weekdays(), "09:00", "17:00")]),
            vec![format!("{SUPPORT}.windows[0].time_zone")],
        ),
        (
            windows(vec![window("", &weekdays(), "09:00", "17:00")]),
            vec![format!("{SUPPORT}.windows[0].time_zone")],
        ),
        (
            windows(vec![w("09:00", "17:00"), w("10:00", "10:00")]),
            vec![format!("{SUPPORT}.windows[1].close_time")],
        ),
        (
            windows(vec![w("24:00", "02:00")]),
            vec![format!("{SUPPORT}.windows[0].open_time")],
        ),
        (
            windows(vec![w("9:00", "17:00")]),
            vec![format!("{SUPPORT}.windows[0].open_time")],
        ),
        (
            windows(vec![w("09:00", "24:01")]),
            vec![format!("{SUPPORT}.windows[0].close_time")],
        ),
        (
            windows(vec![w("", "")]),
            vec![
                format!("{SUPPORT}.windows[0].open_time"),
                format!("{SUPPORT}.windows[0].close_time"),
            ],
        ),
    ];
    // At most 50 windows.
    let many = |n: usize| windows((0..n).map(|_| w("09:00", "17:00")).collect());
    let saved = save(&mut c, with_support(many(50))).await;
    assert_eq!(saved.operational_support, many(50));
    let mut invalid = invalid;
    invalid.push((many(51), vec![format!("{SUPPORT}.windows")]));

    let before = fetch(&mut c, PROD).await;
    for (support, paths) in invalid {
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert_invalid(update(&mut c, with_support(support)).await, &paths);
    }
    assert_eq!(fetch(&mut c, PROD).await, before);
}

/// A request with hundreds of mistakes still gets a well-formed AIP-193 answer
/// a default client can read: details travel in HTTP/2 trailers, whose size
/// a client limits (16 KiB by default in tonic/hyper).
async fn very_many_contact_violations_still_make_a_readable_error(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let bad_phones: Vec<pb::Contact> = (0..20)
        .map(|i| full_contact(&format!("c{i}@example.com"), "", "12345", ""))
        .collect();
    let info = pb::ContactInfo {
        alert_contacts: bad_phones.clone(),
        technical_emergency_contacts: bad_phones.clone(),
        technical_non_emergency_contacts: bad_phones.clone(),
        merchant_issues_contacts: bad_phones.clone(),
        platform_operational_contacts: bad_phones.clone(),
        user_facing_operational_contacts: bad_phones,
        ..named(PROD)
    };
    let s = expect_code(update(&mut c, put(info)).await, Code::InvalidArgument);
    let fields = violations(&s);
    assert!(
        fields.contains(&"contact_info.alert_contacts[0].phone_number".to_owned()),
        "{fields:?}"
    );
    assert_eq!(error_reason(&s), "FIELD_VIOLATIONS");
    expect_code(get(&mut c, PROD).await, Code::NotFound);
}

/// The same for a mask of hundreds of unknown paths.
async fn very_many_mask_violations_still_make_a_readable_error(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let paths: Vec<String> = (0..200).map(|i| format!("no_such_field_{i}")).collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let s = expect_code(
        update(&mut c, put_masked(complete_info(PROD), &paths)).await,
        Code::InvalidArgument,
    );
    assert!(violations(&s).contains(&"update_mask.paths[0]".to_owned()));
    assert_eq!(error_reason(&s), "FIELD_VIOLATIONS");
    expect_code(get(&mut c, PROD).await, Code::NotFound);
}

on_both_backends!(
    alert_contacts_in_sandbox_are_invalid,
    invalid_contact_parts_name_their_exact_path,
    one_bad_request_lists_every_violation,
    errors_never_echo_personal_data,
    at_most_twenty_contacts_per_field,
    duplicate_email_in_one_field_is_invalid,
    bad_days_are_invalid,
    operational_support_rules,
    very_many_contact_violations_still_make_a_readable_error,
    very_many_mask_violations_still_make_a_readable_error,
);
