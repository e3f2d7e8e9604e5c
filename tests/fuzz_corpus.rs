//! Replays the committed fuzz corpora (`fuzz/corpus/*`) through the fuzz
//! harnesses on stable Rust, so every test run exercises them without
//! nightly or cargo-fuzz. Also holds the generator of the seed files:
//! `WRITE_SEED_CORPUS=1 cargo test --test fuzz_corpus` rewrites them.
use std::path::{Path, PathBuf};

use partner_contacts::api::convert::parse_update;
use partner_contacts::domain::{DisplayName, Email};
use partner_contacts::fuzzing;
use partner_contacts::pb::{self, DayOfWeek};
use prost::Message;

/// Fewer files than this means the corpus went missing, not that it shrank.
const MIN_UPDATE_REQUEST_FILES: usize = 20;
const MIN_RESOURCE_NAME_FILES: usize = 25;
const MIN_CONTACT_TEXT_FILES: usize = 30;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs every file of a corpus through `harness`; returns how many there were.
fn replay(target: &str, harness: fn(&[u8])) -> usize {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files = 0;
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if !path.is_file() {
            continue;
        }
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // The panic message alone would not say which file it was.
        if let Err(panic) = std::panic::catch_unwind(|| harness(&data)) {
            eprintln!("{target}: {} fails", path.display());
            std::panic::resume_unwind(panic);
        }
        files += 1;
    }
    files
}

#[test]
fn update_request_corpus_replays() {
    let files = replay("update_request", fuzzing::update_request);
    assert!(
        files >= MIN_UPDATE_REQUEST_FILES,
        "only {files} files in fuzz/corpus/update_request"
    );
}

#[test]
fn resource_name_corpus_replays() {
    let files = replay("resource_name", fuzzing::resource_name);
    assert!(
        files >= MIN_RESOURCE_NAME_FILES,
        "only {files} files in fuzz/corpus/resource_name"
    );
}

#[test]
fn contact_text_corpus_replays() {
    let files = replay("contact_text", fuzzing::contact_text);
    assert!(
        files >= MIN_CONTACT_TEXT_FILES,
        "only {files} files in fuzz/corpus/contact_text"
    );
}

/// The committed seeds are what the generator below writes, and each one is
/// accepted or refused as its name says.
#[test]
fn seeds_are_current_and_mean_what_they_say() {
    if std::env::var_os("WRITE_SEED_CORPUS").is_some() {
        write_seed_corpus();
    }
    for (file, req, valid) in update_seeds() {
        assert_eq!(parse_update(&req).is_ok(), valid, "{file}");
        let path = corpus_dir("update_request").join(file);
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == req.encode_to_vec(),
            "{file} is stale: regenerate with `WRITE_SEED_CORPUS=1 cargo test --test fuzz_corpus`"
        );
    }
    for (file, text, valid_email, valid_name) in contact_text_seeds() {
        assert_eq!(
            Email::parse(text).is_ok(),
            valid_email,
            "{file} as an email"
        );
        assert_eq!(
            DisplayName::parse(text).is_ok(),
            valid_name,
            "{file} as a name"
        );
        let path = corpus_dir("contact_text").join(file);
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(committed == text.as_bytes(), "{file} is stale");
    }
    for (file, name) in name_seeds() {
        let path = corpus_dir("resource_name").join(file);
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(committed == name.as_bytes(), "{file} is stale");
    }
}

const PROD: &str = "partners/acme/environments/production/contactInfo";
const SANDBOX: &str = "partners/acme/environments/sandbox/contactInfo";
const WEEKDAYS: [DayOfWeek; 5] = [
    DayOfWeek::Monday,
    DayOfWeek::Tuesday,
    DayOfWeek::Wednesday,
    DayOfWeek::Thursday,
    DayOfWeek::Friday,
];

fn contact(email: &str) -> pb::Contact {
    pb::Contact {
        email: email.to_owned(),
        ..Default::default()
    }
}

fn full_contact(email: &str, name: &str, phone: &str, language: &str) -> pb::Contact {
    pb::Contact {
        email: email.to_owned(),
        display_name: name.to_owned(),
        phone_number: phone.to_owned(),
        language_code: language.to_owned(),
        verification: None,
    }
}

fn window(tz: &str, days: &[DayOfWeek], open: &str, close: &str) -> pb::SupportWindow {
    pb::SupportWindow {
        time_zone: tz.to_owned(),
        days: days.iter().map(|d| *d as i32).collect(),
        open_time: open.to_owned(),
        close_time: close.to_owned(),
    }
}

fn windows(ws: Vec<pb::SupportWindow>) -> Option<pb::OperationalSupport> {
    Some(pb::OperationalSupport {
        always_open: false,
        windows: ws,
    })
}

/// README's walkthrough: everything saved at once.
fn walkthrough() -> pb::ContactInfo {
    pb::ContactInfo {
        name: PROD.to_owned(),
        alert_contacts: vec![full_contact("oncall@acme.example", "Acme on-call", "", "")],
        technical_emergency_contacts: vec![full_contact(
            "pager@acme.example",
            "",
            "+1 (650) 253-0000",
            "",
        )],
        technical_non_emergency_contacts: vec![full_contact(
            "integrations@acme.example",
            "",
            "",
            "en",
        )],
        platform_operational_contacts: vec![contact("escalations@acme.example")],
        user_facing_operational_contacts: vec![full_contact(
            "support@acme.example",
            "Acme Support",
            "",
            "",
        )],
        operational_support: windows(vec![
            window("America/Los_Angeles", &WEEKDAYS, "08:00", "20:00"),
            window("Europe/Zurich", &[DayOfWeek::Saturday], "22:00", "02:00"),
        ]),
        ..Default::default()
    }
}

fn request(info: pb::ContactInfo, paths: &[&str]) -> pb::UpdateContactsRequest {
    pb::UpdateContactsRequest {
        contact_info: Some(info),
        update_mask: (!paths.is_empty()).then(|| prost_types::FieldMask {
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
        }),
        validate_only: false,
        request_id: String::new(),
    }
}

/// (file name, request, whether validation accepts it).
fn update_seeds() -> Vec<(&'static str, pb::UpdateContactsRequest, bool)> {
    let mut seeds = Vec::new();

    let mut complete = request(walkthrough(), &[]);
    complete.request_id = "5b0c7f52-3d5e-4a55-9a1e-0c3f4d2b6a10".into();
    seeds.push(("complete.pb", complete, true));

    let mut every = walkthrough();
    every.merchant_issues_contacts = vec![full_contact(
        "Merchants@Example.CO.uk",
        "Développeurs",
        "+41 44 668 18 00",
        "pt-BR",
    )];
    every.technical_emergency_contacts.push(full_contact(
        "oncall+pager@acme.example",
        "Night desk",
        "+44 20 7031 3000",
        "zh-Hant-TW",
    ));
    let mut every = request(every, &["*"]);
    every.validate_only = true;
    seeds.push(("every_field_star_mask.pb", every, true));

    let mut masked = walkthrough();
    masked.technical_emergency_contacts = vec![contact("pager-2@acme.example")];
    seeds.push((
        "masked_one_field.pb",
        request(masked, &["technical_emergency_contacts"]),
        true,
    ));

    let mut conditional = walkthrough();
    conditional.etag = "W/0123456789abcdef".into();
    seeds.push((
        "masked_with_etag.pb",
        request(
            conditional,
            &["operational_support", "user_facing_operational_contacts"],
        ),
        true,
    ));

    let name_only = pb::ContactInfo {
        name: SANDBOX.to_owned(),
        ..Default::default()
    };
    seeds.push(("clear_everything.pb", request(name_only, &[]), true));

    seeds.push(("empty.pb", pb::UpdateContactsRequest::default(), false));

    let mut bad_emails = walkthrough();
    bad_emails.technical_non_emergency_contacts = vec![
        contact("not-an-email"),
        contact("ops@localhost"),
        contact("Ops <ops@example.com>"),
        contact("ops@[127.0.0.1]"),
        contact(""),
        contact("dup@example.com"),
        contact("DUP@example.com"),
    ];
    seeds.push(("bad_emails.pb", request(bad_emails, &[]), false));

    let mut bad_phones = walkthrough();
    bad_phones.technical_emergency_contacts = ["555-0100", "+1 123", "call me", "+999 1234567"]
        .iter()
        .enumerate()
        .map(|(i, p)| full_contact(&format!("pager{i}@acme.example"), "", p, ""))
        .collect();
    seeds.push(("bad_phones.pb", request(bad_phones, &[]), false));

    let mut bad_parts = walkthrough();
    bad_parts.merchant_issues_contacts = vec![
        full_contact("a@example.com", "Ops\r\nBcc: x", "", "english please"),
        full_contact("b@example.com", &"é".repeat(101), "", "en-"),
    ];
    seeds.push((
        "bad_display_names_languages.pb",
        request(bad_parts, &["merchant_issues_contacts"]),
        false,
    ));

    let mut too_many = walkthrough();
    too_many.user_facing_operational_contacts = (0..21)
        .map(|i| contact(&format!("u{i}@example.com")))
        .collect();
    seeds.push(("too_many_contacts.pb", request(too_many, &[]), false));

    let mut bad_zones = walkthrough();
    bad_zones.operational_support = windows(vec![
        window("Mars/Olympus", &[DayOfWeek::Monday], "09:00", "17:00"),
        window("", &[DayOfWeek::Tuesday], "09:00", "17:00"),
        window(
            "america/los_angeles",
            &[DayOfWeek::Wednesday],
            "09:00",
            "17:00",
        ),
        window("UTC+2", &[DayOfWeek::Thursday], "09:00", "17:00"),
    ]);
    seeds.push((
        "bad_time_zones.pb",
        request(bad_zones, &["operational_support"]),
        false,
    ));

    let mut overnight = walkthrough();
    overnight.operational_support = windows(vec![
        window(
            "Asia/Tokyo",
            &[DayOfWeek::Friday, DayOfWeek::Saturday],
            "22:00",
            "02:00",
        ),
        window("UTC", &[DayOfWeek::Sunday], "18:00", "24:00"),
        window(
            "Australia/Lord_Howe",
            &[DayOfWeek::Monday],
            "00:00",
            "23:59",
        ),
        window("Asia/Kathmandu", &[DayOfWeek::Tuesday], "23:30", "00:00"),
    ]);
    seeds.push((
        "overnight_windows.pb",
        request(overnight, &["operational_support"]),
        true,
    ));

    let mut always = walkthrough();
    always.operational_support = Some(pb::OperationalSupport {
        always_open: true,
        windows: vec![],
    });
    seeds.push((
        "always_open.pb",
        request(always, &["operational_support"]),
        true,
    ));

    let mut both = walkthrough();
    both.operational_support = Some(pb::OperationalSupport {
        always_open: true,
        windows: vec![window("UTC", &[DayOfWeek::Monday], "09:00", "17:00")],
    });
    seeds.push(("always_open_and_windows.pb", request(both, &[]), false));

    let mut bad_windows = walkthrough();
    let mut unknown_days = window("UTC", &[DayOfWeek::Monday], "09:00", "17:00");
    unknown_days.days = vec![99, 1, -1];
    bad_windows.operational_support = windows(vec![
        window("UTC", &[], "09:00", "17:00"),
        window(
            "UTC",
            &[DayOfWeek::Unspecified, DayOfWeek::Monday, DayOfWeek::Monday],
            "9:00",
            "24:01",
        ),
        window("Europe/Zurich", &[DayOfWeek::Sunday], "24:00", "24:00"),
        window("Europe/Zurich", &[DayOfWeek::Sunday], "09:00", "09:00"),
        unknown_days,
    ]);
    seeds.push(("bad_windows.pb", request(bad_windows, &[]), false));

    let mut too_many_windows = walkthrough();
    too_many_windows.operational_support = windows(
        (0..51)
            .map(|_| window("UTC", &[DayOfWeek::Monday], "09:00", "17:00"))
            .collect(),
    );
    seeds.push(("too_many_windows.pb", request(too_many_windows, &[]), false));

    seeds.push((
        "bad_mask.pb",
        request(
            walkthrough(),
            &[
                "name",
                "etag",
                "operational_support.windows",
                "bogus",
                "*",
                "alert_contacts",
                "alert_contacts",
            ],
        ),
        false,
    ));

    let long_paths: Vec<String> = (0..40).map(|i| format!("{i}{}", "é".repeat(80))).collect();
    let long_paths: Vec<&str> = long_paths.iter().map(String::as_str).collect();
    seeds.push((
        "long_mask_paths.pb",
        request(walkthrough(), &long_paths),
        false,
    ));

    let mut sandbox = walkthrough();
    sandbox.name = SANDBOX.to_owned();
    seeds.push(("sandbox_alert_contacts.pb", request(sandbox, &[]), false));

    let mut bad_name = walkthrough();
    bad_name.name = "partners/Acme/environments/staging/contactInfo".to_owned();
    seeds.push(("bad_name.pb", request(bad_name, &[]), false));

    // More violations than are listed: 6 fields x 20 contacts, each wrong twice.
    let bad = |f: usize| -> Vec<pb::Contact> {
        (0..20)
            .map(|i| full_contact(&format!("bad {f} {i}"), "", "12", ""))
            .collect()
    };
    let many = pb::ContactInfo {
        name: PROD.to_owned(),
        alert_contacts: bad(0),
        technical_emergency_contacts: bad(1),
        technical_non_emergency_contacts: bad(2),
        merchant_issues_contacts: bad(3),
        platform_operational_contacts: bad(4),
        user_facing_operational_contacts: bad(5),
        ..Default::default()
    };
    seeds.push(("many_violations.pb", request(many, &[]), false));

    seeds
}

/// (file name, text).
fn name_seeds() -> Vec<(&'static str, String)> {
    let uuid = "2f1e9a9c-2d43-4b0e-9a4e-8c1f3b7d5e60";
    let mut seeds: Vec<(&'static str, String)> = vec![
        ("full_production", PROD.into()),
        (
            "full_sandbox",
            "partners/acme-1/environments/sandbox/contactInfo".into(),
        ),
        (
            "digits_partner",
            "partners/12345/environments/sandbox/contactInfo".into(),
        ),
        (
            "parent_form",
            "partners/acme/environments/production".into(),
        ),
        ("portal_user", format!("partners/acme/portalUsers/{uuid}")),
        (
            "portal_user_upper",
            format!("partners/acme/portalUsers/{}", uuid.to_uppercase()),
        ),
        ("partner_parent", "partners/acme".into()),
        (
            "longest_partner",
            format!(
                "partners/{}/environments/sandbox/contactInfo",
                "a".repeat(63)
            ),
        ),
        ("empty", String::new()),
        ("partners_only", "partners/".into()),
        (
            "upper_partner",
            "partners/Acme/environments/production/contactInfo".into(),
        ),
        (
            "dash_partner",
            "partners/-acme/environments/production/contactInfo".into(),
        ),
        (
            "empty_partner",
            "partners//environments/production/contactInfo".into(),
        ),
        (
            "unknown_environment",
            "partners/acme/environments/staging/contactInfo".into(),
        ),
        (
            "lower_collection",
            "partners/acme/environments/production/contactinfo".into(),
        ),
        ("trailing_slash", format!("{PROD}/")),
        ("leading_slash", format!("/{PROD}")),
        (
            "non_ascii_partner",
            "partners/acmé/environments/production/contactInfo".into(),
        ),
        (
            "partner_too_long",
            format!(
                "partners/{}/environments/sandbox/contactInfo",
                "a".repeat(64)
            ),
        ),
        ("revision", format!("{PROD}/revisions/3")),
        (
            "portal_user_email",
            "partners/acme/portalUsers/alice@example.com".into(),
        ),
        (
            "portal_user_simple_uuid",
            format!("partners/acme/portalUsers/{}", uuid.replace('-', "")),
        ),
        (
            "portal_user_braced_uuid",
            format!("partners/acme/portalUsers/{{{uuid}}}"),
        ),
        (
            "portal_user_urn_uuid",
            format!("partners/acme/portalUsers/urn:uuid:{uuid}"),
        ),
        ("users_collection", format!("partners/acme/users/{uuid}")),
        ("partner_with_child", "partners/acme/environments".into()),
    ];
    seeds.sort();
    seeds
}

/// Writes the seed files (then checked by the test that calls it).
fn write_seed_corpus() {
    for (file, req, _) in update_seeds() {
        std::fs::write(corpus_dir("update_request").join(file), req.encode_to_vec())
            .expect("write seed");
    }
    for (file, name) in name_seeds() {
        std::fs::write(corpus_dir("resource_name").join(file), name).expect("write seed");
    }
    let dir = corpus_dir("contact_text");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for (file, text, _, _) in contact_text_seeds() {
        std::fs::write(dir.join(file), text).expect("write seed");
    }
}

/// (file name, text, accepted as an email, accepted as a display name): the
/// attacks of the hostile-input suite and the forms that must stay welcome.
fn contact_text_seeds() -> Vec<(&'static str, &'static str, bool, bool)> {
    vec![
        ("ascii_email", "ops@example.com", true, true),
        (
            "mixed_case_email",
            "Ops.Team+alerts@Example.CO.uk",
            true,
            true,
        ),
        ("idn_unicode", "info@bücher.example", true, true),
        ("idn_ascii", "INFO@xn--BCHER-kva.example", true, true),
        (
            "greek_local_and_domain",
            "δοκιμή@παράδειγμα.δοκιμή",
            true,
            true,
        ),
        ("cjk_address", "用户@例子.广告", true, true),
        ("kelvin_sign", "\u{212A}im@acme.example", false, true),
        ("angstrom_sign", "\u{212B}sa@acme.example", false, true),
        ("decomposed_a_ring", "A\u{30A}sa@acme.example", false, true),
        ("fullwidth_local", "\u{FF4B}im@acme.example", false, true),
        ("fullwidth_domain", "kim@\u{FF41}cme.example", false, true),
        ("cyrillic_mix_local", "\u{43A}im@acme.example", false, true),
        ("cyrillic_mix_domain", "kim@a\u{441}me.example", false, true),
        ("zero_width_space", "k\u{200B}im@acme.example", false, false),
        (
            "zero_width_joiner",
            "kim\u{200D}@acme.example",
            false,
            false,
        ),
        (
            "rtl_override_email",
            "k\u{202E}mi@acme.example",
            false,
            false,
        ),
        ("c1_next_line", "k\u{85}im@acme.example", false, false),
        ("soft_hyphen", "k\u{AD}im@acme.example", false, false),
        (
            "ideographic_full_stop",
            "kim@acme\u{3002}example",
            false,
            true,
        ),
        ("quoted_local", "\"kim\"@acme.example", false, true),
        (
            "quoted_with_at",
            "\"kim@acme.example\"@evil.example",
            false,
            true,
        ),
        ("display_text", "Ops <ops@example.com>", false, true),
        ("domain_literal", "ops@[127.0.0.1]", false, true),
        ("no_tld", "ops@localhost", false, true),
        ("name_plain", "Acme Support", false, true),
        ("name_scripts", "Zoë Łukasz-Ōta 山田 太郎 🚨", false, true),
        ("name_decomposed", "Zoe\u{308}", false, true),
        ("name_rtl_override", "Acme \u{202E}troppuS", false, false),
        ("name_isolate", "Acme \u{2067}x\u{2069}", false, false),
        ("name_line_separator", "Acme\u{2028}Bcc: x", false, false),
        ("name_crlf", "Acme\r\nBcc: x", false, false),
        ("name_hangul_filler", "Acme\u{3164}", false, false),
        ("name_tag_character", "Acme\u{E0041}", false, false),
        ("name_no_break_space", "Acme\u{A0}Support", false, false),
        (
            "name_mark_tower",
            "A\u{301}\u{300}\u{302}\u{303}\u{304}\u{306}",
            false,
            false,
        ),
        ("name_leading_space", " Acme", false, false),
        ("empty", "", false, false),
    ]
}
