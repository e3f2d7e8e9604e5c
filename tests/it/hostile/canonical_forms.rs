//! One value, one stored form: what a caller may write several ways is saved
//! and returned one way, and what no sender could act on is refused.
use partner_contacts::pb;

use crate::api::{
    PROD, assert_invalid, full_contact, named, put_masked, save, update, window, windows,
};
use crate::common::{Backend, TestServer};
use crate::on_both_backends;

async fn language_tags_are_canonical(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let mut info = named(PROD);
    info.technical_emergency_contacts = vec![
        full_contact("a@acme.example", "", "", "EN-us"),
        full_contact("b@acme.example", "", "", "iw"),
        full_contact("c@acme.example", "", "", "zh-hant-tw"),
    ];
    let saved = save(&mut c, put_masked(info, &["technical_emergency_contacts"])).await;
    let tags: Vec<&str> = saved
        .technical_emergency_contacts
        .iter()
        .map(|c| c.language_code.as_str())
        .collect();
    assert_eq!(tags, ["en-US", "he", "zh-Hant-TW"]);
    for bad in [
        "x-klingon",
        "en-x-internal",
        "qaa",
        "en-QM",
        "en-u-ca-gregory",
        "zz",
    ] {
        let mut info = named(PROD);
        info.technical_emergency_contacts = vec![full_contact("a@acme.example", "", "", bad)];
        assert_invalid(
            update(&mut c, put_masked(info, &["technical_emergency_contacts"])).await,
            &["contact_info.technical_emergency_contacts[0].language_code"],
        );
    }
}

async fn time_zone_aliases_become_canonical_names(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    for (alias, canonical) in [
        ("US/Pacific", "America/Los_Angeles"),
        ("asia/calcutta", "Asia/Kolkata"),
        ("Europe/Kiev", "Europe/Kyiv"),
        ("Europe/Oslo", "Europe/Oslo"),
    ] {
        let mut info = named(PROD);
        info.operational_support = windows(vec![window(
            alias,
            &[pb::DayOfWeek::Monday],
            "09:00",
            "17:00",
        )]);
        let saved = save(&mut c, put_masked(info, &["operational_support"])).await;
        assert_eq!(
            saved.operational_support.expect("support").windows[0].time_zone,
            canonical
        );
    }
}

/// `18:00–00:00` and `18:00–24:00` (and days in any order) are one window:
/// switching between the spellings changes nothing that was saved.
async fn equal_windows_are_saved_one_way(backend: Backend) {
    let server = TestServer::start(backend).await;
    let mut c = server.client.clone();
    let spelled = |days: &[pb::DayOfWeek], close: &str| {
        let mut info = named(PROD);
        info.operational_support = windows(vec![window("Europe/Zurich", days, "18:00", close)]);
        put_masked(info, &["operational_support"])
    };
    use pb::DayOfWeek::{Monday, Tuesday};
    let first = save(&mut c, spelled(&[Tuesday, Monday], "00:00")).await;
    let second = save(&mut c, spelled(&[Monday, Tuesday], "24:00")).await;
    assert_eq!(first.operational_support, second.operational_support);
    let w = &second.operational_support.expect("support").windows[0];
    assert_eq!(w.close_time, "24:00");
    assert_eq!(w.days, [Monday as i32, Tuesday as i32]);
    let history = c
        .list_contact_info_revisions(pb::ListContactInfoRevisionsRequest {
            name: PROD.to_owned(),
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .expect("history")
        .into_inner();
    assert!(
        history.revisions[0].changed_fields.is_empty(),
        "{:?}",
        history.revisions[0].changed_fields
    );
}

on_both_backends!(
    language_tags_are_canonical,
    time_zone_aliases_become_canonical_names,
    equal_windows_are_saved_one_way,
);
