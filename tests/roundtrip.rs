//! Property tests: valid contact fields survive domain -> proto (wire) ->
//! validation unchanged, and domain -> store (SQLite and PostgreSQL: JSON
//! columns, revisions, recorded responses) -> domain unchanged.
use std::collections::HashSet;

use chrono::{DateTime, Utc};
use partner_contacts::api::convert::{contact_info_to_pb, parse_update};
use partner_contacts::domain::{
    Contact, ContactFields, ContactInfo, ContactInfoName, DisplayName, Email, Environment, Field,
    FieldSet, LanguageCode, LocalTime, OperationalSupport, PartnerId, PhoneNumber, PortalRole,
    ReadView, SupportWindow, TimeZoneName, Update, Weekday,
};
use partner_contacts::error::Error;
use partner_contacts::pb;
use partner_contacts::store::{DynStore, RequestKey};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use prost::Message;

#[path = "it/common/mod.rs"]
mod common;
use common::Backend;

const DAYS: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// Real zones, with odd offsets (+05:45, +13:45, half-hour DST) among them.
const TIME_ZONES: [&str; 10] = [
    "America/Los_Angeles",
    "America/St_Johns",
    "Europe/Zurich",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "UTC",
    "Etc/GMT-14",
];

const LANGUAGES: [&str; 10] = [
    "en",
    "en-US",
    "pt-BR",
    "de-CH",
    "fr",
    "ja",
    "zh-Hant-TW",
    "es-419",
    "sr-Latn-RS",
    "gsw",
];

fn email() -> impl Strategy<Value = Email> {
    (
        "[a-zA-Z0-9]{1,10}([._+-][a-zA-Z0-9]{1,6})?",
        "[a-z0-9]{1,10}(-[a-z0-9]{1,5})?",
        prop::sample::select(vec!["com", "org", "example", "co.uk", "CH"]),
    )
        .prop_map(|(local, domain, tld)| {
            let s = format!("{local}@{domain}.{tld}");
            Email::parse(&s).unwrap_or_else(|e| panic!("generated {s:?}: {e}"))
        })
}

/// E.164 numbers of real, valid ranges, given in written forms that parsing
/// normalises.
fn phone() -> impl Strategy<Value = PhoneNumber> {
    (0..4usize, 0..10_000u32)
        .prop_map(|(country, n)| match country {
            0 => format!("+1 (650) 253-{n:04}"),
            1 => format!("+41 44 668 {:02} {:02}", n / 100, n % 100),
            2 => format!("+44 20 7031 {n:04}"),
            _ => format!("+6129374{n:04}"),
        })
        .prop_map(|s| PhoneNumber::parse(&s).unwrap_or_else(|e| panic!("generated {s:?}: {e}")))
}

fn contact() -> impl Strategy<Value = Contact> {
    (
        email(),
        // Empty means "not given" on the wire, so a given name is not empty;
        // visible text in any script (DisplayName's rules), stored in NFC.
        proptest::option::of(
            "[\\p{L}\\p{N}\\p{P}\\p{S}]([\\p{L}\\p{N}\\p{P}\\p{S}\\p{M} ]{0,98}[\\p{L}\\p{N}\\p{P}\\p{S}])?"
                .prop_filter_map("a name DisplayName accepts", |n| DisplayName::parse(&n).ok()),
        ),
        proptest::option::of(phone()),
        proptest::option::of(prop::sample::select(LANGUAGES.to_vec())),
    )
        .prop_map(|(email, name, phone, language)| Contact {
            email,
            display_name: name,
            phone_number: phone,
            language_code: language.map(|l| LanguageCode::parse(l).expect("language")),
        })
}

/// Up to `max` contacts with distinct addresses (letter case aside).
fn contacts(max: usize) -> impl Strategy<Value = Vec<Contact>> {
    prop::collection::vec(contact(), 0..=max).prop_map(|mut cs| {
        let mut seen = HashSet::new();
        cs.retain(|c| seen.insert(c.email.comparison_key()));
        cs
    })
}

fn local_time(minutes: u16) -> LocalTime {
    let s = format!("{:02}:{:02}", minutes / 60, minutes % 60);
    LocalTime::parse(&s, true).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Any valid window; about half of them close after midnight (close < open),
/// and 00:00 and 24:00 closings are common.
fn window() -> impl Strategy<Value = SupportWindow> {
    (
        prop::sample::select(TIME_ZONES.to_vec()),
        prop::sample::subsequence(DAYS.to_vec(), 1..=7).prop_shuffle(),
        0u16..LocalTime::MIDNIGHT_END,
        prop_oneof![
            3 => 0u16..=LocalTime::MIDNIGHT_END,
            1 => Just(LocalTime::MIDNIGHT_END),
            1 => Just(0u16),
        ],
    )
        .prop_filter("open and close differ", |(_, _, open, close)| open != close)
        .prop_map(|(tz, days, open, close)| {
            SupportWindow::new(
                TimeZoneName::parse(tz).expect("known zone"),
                days,
                local_time(open),
                local_time(close),
            )
            .expect("valid window")
        })
}

fn operational_support() -> impl Strategy<Value = Option<OperationalSupport>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(OperationalSupport::AlwaysOpen)),
        3 => prop::collection::vec(window(), 1..=4)
            .prop_map(|ws| Some(OperationalSupport::Windows(ws))),
    ]
}

/// Valid fields for `environment`: alert contacts exist only in production.
fn fields(environment: Environment) -> impl Strategy<Value = ContactFields> {
    let alert_max = if environment == Environment::Production {
        4
    } else {
        0
    };
    (
        contacts(alert_max),
        contacts(4),
        contacts(4),
        contacts(4),
        contacts(4),
        contacts(4),
        operational_support(),
    )
        .prop_map(|(a, te, tn, mi, po, uf, os)| ContactFields {
            alert_contacts: a,
            technical_emergency_contacts: te,
            technical_non_emergency_contacts: tn,
            merchant_issues_contacts: mi,
            platform_operational_contacts: po,
            user_facing_operational_contacts: uf,
            operational_support: os,
        })
}

fn named_fields() -> impl Strategy<Value = (ContactInfoName, ContactFields)> {
    (
        "[a-z0-9][a-z0-9-]{0,62}",
        prop_oneof![Just(Environment::Production), Just(Environment::Sandbox)],
    )
        .prop_flat_map(|(partner, environment)| {
            let name = ContactInfoName::new(
                PartnerId::parse(&partner).expect("generated partner id"),
                environment,
            );
            (Just(name), fields(environment))
        })
}

fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).expect("valid time")
}

/// What the API sends for `info`, as a full-replacement update, through the
/// wire encoding.
fn resend(info: &ContactInfo, view: ReadView, explicit_mask: bool) -> pb::UpdateContactsRequest {
    let req = pb::UpdateContactsRequest {
        contact_info: Some(contact_info_to_pb(info, view)),
        update_mask: explicit_mask.then(|| prost_types::FieldMask {
            paths: Field::ALL.map(|f| f.as_str().to_owned()).to_vec(),
        }),
        validate_only: false,
        request_id: String::new(),
    };
    pb::UpdateContactsRequest::decode(req.encode_to_vec().as_slice()).expect("decodes")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Domain -> proto -> bytes -> proto -> validation gives back the same
    /// fields, with an explicit full mask or none.
    #[test]
    fn fields_survive_proto_and_validation(
        (name, fields) in named_fields(),
        explicit_mask in any::<bool>(),
    ) {
        let info = ContactInfo {
            name: name.clone(),
            fields: fields.clone(),
            revision: 7,
            etag: "W/0011223344556677".to_owned(),
            create_time: time(1_700_000_000_123_456),
            update_time: time(1_750_000_000_654_321),
        };
        let update = parse_update(&resend(&info, ReadView::Full, explicit_mask))
            .map_err(|e| TestCaseError::fail(format!("refused: {e}")))?;
        prop_assert_eq!(&update.name, &name);
        prop_assert_eq!(update.mask, FieldSet::all());
        prop_assert_eq!(update.expected_etag.as_deref(), Some(info.etag.as_str()));
        prop_assert_eq!(&update.patch, &fields);

        // The audience filter hides fields; what it shows still round-trips.
        let update = parse_update(&resend(&info, ReadView::UserFacing, explicit_mask))
            .map_err(|e| TestCaseError::fail(format!("refused: {e}")))?;
        let shown = ReadView::UserFacing.filter(&fields).into_owned();
        prop_assert_eq!(&update.patch, &shown);
    }
}

/// `first` with the fields of `mask` taken from `second`.
fn merged(first: &ContactFields, second: &ContactFields, mask: FieldSet) -> ContactFields {
    let mut out = first.clone();
    for field in mask.iter() {
        match field {
            Field::AlertContacts => out.alert_contacts.clone_from(&second.alert_contacts),
            Field::TechnicalEmergencyContacts => out
                .technical_emergency_contacts
                .clone_from(&second.technical_emergency_contacts),
            Field::TechnicalNonEmergencyContacts => out
                .technical_non_emergency_contacts
                .clone_from(&second.technical_non_emergency_contacts),
            Field::MerchantIssuesContacts => out
                .merchant_issues_contacts
                .clone_from(&second.merchant_issues_contacts),
            Field::PlatformOperationalContacts => out
                .platform_operational_contacts
                .clone_from(&second.platform_operational_contacts),
            Field::UserFacingOperationalContacts => out
                .user_facing_operational_contacts
                .clone_from(&second.user_facing_operational_contacts),
            Field::OperationalSupport => out
                .operational_support
                .clone_from(&second.operational_support),
        }
    }
    out
}

fn fail(e: Error) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// One case against the store: save `first` (with a request id, then retry
/// it), then `second` under `mask`, and read everything back.
async fn store_case(
    store: &DynStore,
    case: usize,
    first: ContactFields,
    second: ContactFields,
    mask: FieldSet,
) -> Result<(), TestCaseError> {
    let partner = PartnerId::parse(&format!("case-{case}")).expect("partner id");
    let name = ContactInfoName::new(partner.clone(), Environment::Production);
    // Alert contacts must be portal users.
    for c in first.alert_contacts.iter().chain(&second.alert_contacts) {
        match store
            .grant_portal_access(&partner, &c.email, PortalRole::Administrator, "proptest")
            .await
        {
            Ok(_) | Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(fail(e)),
        }
    }

    let create = Update {
        name: name.clone(),
        patch: first.clone(),
        mask: FieldSet::all(),
        expected_etag: None,
        copied_from: None,
    };
    let key = RequestKey::new(&name.partner, uuid::Uuid::new_v4(), [7; 32]);
    let saved = store
        .update(&create, Some(&key), "proptest")
        .await
        .map_err(fail)?;
    prop_assert_eq!(&saved.fields, &first);
    prop_assert_eq!(saved.revision, 1);
    let got = store.get(&name).await.map_err(fail)?;
    prop_assert_eq!(got.as_ref(), Some(&saved));
    // A retry answers from the recorded response.
    let retried = store
        .update(&create, Some(&key), "proptest")
        .await
        .map_err(fail)?;
    prop_assert_eq!(&retried, &saved);

    // The patch also holds values outside the mask: the store must ignore them.
    let change = Update {
        name: name.clone(),
        patch: second.clone(),
        mask,
        expected_etag: Some(saved.etag.clone()),
        copied_from: None,
    };
    let changed = store
        .update(&change, None, "proptest")
        .await
        .map_err(fail)?;
    let want = merged(&first, &second, mask);
    prop_assert_eq!(&changed.fields, &want);
    prop_assert_eq!(changed.revision, 2);
    prop_assert_eq!(changed.create_time, saved.create_time);
    let got = store.get(&name).await.map_err(fail)?;
    prop_assert_eq!(got.as_ref(), Some(&changed));

    let revisions = store.list_revisions(&name, None, 10).await.map_err(fail)?;
    prop_assert_eq!(revisions.len(), 2);
    prop_assert_eq!(&revisions[0].info, &changed);
    prop_assert_eq!(&revisions[1].info, &saved);
    prop_assert_eq!(revisions[0].changed, first.changed_fields(&want));
    prop_assert_eq!(revisions[1].request_id, Some(key.id));
    Ok(())
}

/// Domain -> store -> domain, on a fresh database of `backend`.
fn fields_survive_the_store(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let database = runtime.block_on(common::store(backend));

    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::with_cases(64)
    });
    let strategy = (
        fields(Environment::Production),
        fields(Environment::Production),
        prop::sample::subsequence(Field::ALL.to_vec(), 1..=Field::ALL.len()),
    );
    // Each case (shrinking included) gets a partner of its own.
    let case = std::cell::Cell::new(0);
    let result = runner.run(&strategy, |(first, second, mask)| {
        case.set(case.get() + 1);
        let mask: FieldSet = mask.into_iter().collect();
        runtime.block_on(store_case(&database.store, case.get(), first, second, mask))
    });
    if let Err(e) = result {
        panic!("{backend:?}: {e}");
    }
}

#[test]
fn fields_survive_the_sqlite_store() {
    fields_survive_the_store(Backend::Sqlite);
}

#[test]
fn fields_survive_the_postgres_store() {
    fields_survive_the_store(Backend::Postgres);
}
