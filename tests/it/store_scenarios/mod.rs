//! The storage scenario suite: every backend must pass every scenario, and
//! so must PostgreSQL behind the cache, the store production calls. Every
//! read also checks the ready form production serves (GetContacts, the gate
//! and ResolveRecipients read nothing else) against the decoded row.
mod events;
mod history;
mod ready;
mod users;
mod verification;

use std::collections::HashSet;

use partner_contacts::domain::{
    Contact, ContactFields, ContactInfo, ContactInfoName, DisplayName, Email, Environment, Field,
    FieldSet, LanguageCode, LocalTime, OperationalSupport, PartnerId, PhoneNumber, PortalRole,
    PortalUserEmails, SupportWindow, TimeZoneName, Update, Weekday,
};
use partner_contacts::error::{Error, InvalidReason};
use partner_contacts::store::{self, DynStore, RequestKey};
use partner_contacts::wire::Ready;
use sqlx::Connection;

use crate::common::{self, Backend, StoreKind};
use crate::on_every_store;

pub(crate) const ACTOR: &str = "scenario-suite";

pub(crate) fn name(partner: &str, env: Environment) -> ContactInfoName {
    ContactInfoName::new(PartnerId::parse(partner).expect("partner id"), env)
}

pub(crate) fn prod(partner: &str) -> ContactInfoName {
    name(partner, Environment::Production)
}

pub(crate) fn contact(email: &str) -> Contact {
    Contact {
        email: Email::parse(email).expect("email"),
        display_name: None,
        phone_number: None,
        language_code: None,
    }
}

pub(crate) fn full_contact(email: &str) -> Contact {
    Contact {
        email: Email::parse(email).expect("email"),
        display_name: Some(DisplayName::parse("Ops Team — 日本").expect("name")),
        phone_number: Some(PhoneNumber::parse("+41 44 668 18 00").expect("phone")),
        language_code: Some(LanguageCode::parse("pt-BR").expect("language")),
    }
}

pub(crate) fn complete_fields() -> ContactFields {
    ContactFields {
        alert_contacts: vec![full_contact("alerts@example.com"), contact("b@example.com")],
        technical_emergency_contacts: vec![contact("pager@example.com")],
        technical_non_emergency_contacts: vec![contact("dev@example.com")],
        merchant_issues_contacts: vec![contact("merchants@example.com")],
        platform_operational_contacts: vec![contact("escalations@example.com")],
        user_facing_operational_contacts: vec![contact("Support@Example.com")],
        operational_support: Some(OperationalSupport::Windows(vec![
            SupportWindow::new(
                TimeZoneName::parse("America/Los_Angeles").expect("zone"),
                vec![Weekday::Monday, Weekday::Friday],
                LocalTime::parse("22:00", false).expect("time"),
                LocalTime::parse("02:00", true).expect("time"),
            )
            .expect("window"),
            SupportWindow::new(
                TimeZoneName::parse("Europe/Zurich").expect("zone"),
                vec![Weekday::Sunday],
                LocalTime::parse("00:00", false).expect("time"),
                LocalTime::parse("24:00", true).expect("time"),
            )
            .expect("window"),
        ])),
    }
}

pub(crate) fn replace_all(n: &ContactInfoName, fields: ContactFields) -> Update {
    Update {
        name: n.clone(),
        patch: fields,
        mask: FieldSet::all(),
        expected_etag: None,
        copied_from: None,
    }
}

/// A request key of partner `acme`'s.
pub(crate) fn key(seed: u8) -> RequestKey {
    key_of("acme", uuid::Uuid::new_v4(), seed)
}

pub(crate) fn key_of(partner: &str, id: uuid::Uuid, seed: u8) -> RequestKey {
    RequestKey::new(&PartnerId::parse(partner).expect("partner"), id, [seed; 32])
}

/// A fresh store where partner `acme` has the portal users that
/// `complete_fields()` names as alert contacts.
pub(crate) async fn acme_store(kind: StoreKind) -> common::TestStore {
    let t = common::store_of(kind).await;
    let acme = PartnerId::parse("acme").expect("partner");
    for (email, role) in [
        ("alerts@example.com", PortalRole::Administrator),
        ("B@example.com", PortalRole::Editor),
    ] {
        t.store
            .grant_portal_access(&acme, &Email::parse(email).expect("email"), role, ACTOR)
            .await
            .expect("grant");
    }
    t
}

pub(crate) async fn save(s: &DynStore, update: &Update) -> ContactInfo {
    s.update(update, None, ACTOR).await.expect("update")
}

/// Reads `n`, and checks that the ready forms production reads agree with
/// the row: `get_ready` (GetContacts) and `get_ready_and_users` (the gate,
/// ResolveRecipients), served from memory on the cached arm, where `get`
/// itself always reads the database.
pub(crate) async fn get(s: &DynStore, n: &ContactInfoName) -> Option<ContactInfo> {
    let info = s.get(n).await.expect("get");
    let ready = s.get_ready(n).await.expect("get_ready");
    assert_ready_of(n, info.as_ref(), ready.as_ref(), "get_ready");
    match (
        info.as_ref(),
        s.get_ready_and_users(n).await.expect("get_ready_and_users"),
    ) {
        (None, None) => {}
        (Some(_), Some((ready, users))) => {
            assert_ready_of(n, info.as_ref(), Some(&ready), "get_ready_and_users");
            assert_eq!(
                users,
                user_emails(s, &n.partner).await,
                "{n}: get_ready_and_users' portal users"
            );
        }
        (info, with_users) => panic!(
            "{n}: get says {:?}, get_ready_and_users {:?}",
            info.map(|i| i.revision),
            with_users.map(|(r, _)| r.revision())
        ),
    }
    info
}

/// `ready` is `info` encoded (both absent when nothing is saved).
pub(crate) fn assert_ready_of(
    n: &ContactInfoName,
    info: Option<&ContactInfo>,
    ready: Option<&Ready>,
    read: &str,
) {
    assert_eq!(
        ready.map(Ready::revision),
        info.map(|i| i.revision),
        "{n}: {read}'s revision"
    );
    if let (Some(info), Some(ready)) = (info, ready) {
        assert_eq!(
            ready.encoded(),
            Ready::of(info).encoded(),
            "{n}: {read}'s bytes are not the row's, encoded"
        );
    }
}

/// The partner's portal users' email keys as the gate reads them
/// (`portal_user_emails`, from memory on the cached arm), checked against
/// the users listed from the database.
pub(crate) async fn user_emails(s: &DynStore, partner: &PartnerId) -> PortalUserEmails {
    let keys = s.portal_user_emails(partner).await.expect("emails");
    let listed: PortalUserEmails = s
        .list_portal_users(partner, None, 500)
        .await
        .expect("list users")
        .iter()
        .map(|u| u.email.comparison_key())
        .collect();
    assert_eq!(keys, listed, "{partner:?}: portal_user_emails");
    keys
}

/// Runs `sql` on the test database itself, past the store and its cache.
pub(crate) async fn raw_execute(
    t: &common::TestStore,
    kind: StoreKind,
    sql: &str,
) -> Result<u64, sqlx::Error> {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match kind.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&t.url).await?;
            let done = sqlx::query(sql).execute(&mut c).await?;
            Ok(done.rows_affected())
        }
        Backend::Postgres => {
            let mut c = common::raw_pg_connection(&t.url).await?;
            let done = sqlx::query(sql).execute(&mut c).await?;
            Ok(done.rows_affected())
        }
    }
}

/// `n`'s row as stored: its ready form, the revision that was written for,
/// and its revision.
pub(crate) async fn stored_ready(
    t: &common::TestStore,
    kind: StoreKind,
    n: &ContactInfoName,
) -> (Option<Vec<u8>>, Option<i64>, i64) {
    let sql = "SELECT ready, ready_revision, revision FROM contact_info
               WHERE partner = $1 AND environment = $2";
    let (partner, environment) = (n.partner.as_str(), n.environment.as_str());
    match kind.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&t.url)
                .await
                .expect("connect");
            sqlx::query_as(sqlx::AssertSqlSafe(sql.replace('$', "?")))
                .bind(partner)
                .bind(environment)
                .fetch_one(&mut c)
                .await
                .expect("read the row")
        }
        Backend::Postgres => {
            let mut c = common::raw_pg_connection(&t.url).await.expect("connect");
            sqlx::query_as(sql)
                .bind(partner)
                .bind(environment)
                .fetch_one(&mut c)
                .await
                .expect("read the row")
        }
    }
}

/// Overwrites `n`'s ready form past the store, as a release that does not
/// know it (or knows a newer one) leaves a row.
pub(crate) async fn set_stored_ready(
    t: &common::TestStore,
    kind: StoreKind,
    n: &ContactInfoName,
    ready: Option<Vec<u8>>,
    ready_revision: Option<i64>,
) {
    let sql = "UPDATE contact_info SET ready = $3, ready_revision = $4
               WHERE partner = $1 AND environment = $2";
    let (partner, environment) = (n.partner.as_str(), n.environment.as_str());
    let changed = match kind.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&t.url)
                .await
                .expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(sql.replace('$', "?")))
                .bind(partner)
                .bind(environment)
                .bind(ready)
                .bind(ready_revision)
                .execute(&mut c)
                .await
                .map(|r| r.rows_affected())
        }
        Backend::Postgres => {
            let mut c = common::raw_pg_connection(&t.url).await.expect("connect");
            sqlx::query(sql)
                .bind(partner)
                .bind(environment)
                .bind(ready)
                .bind(ready_revision)
                .execute(&mut c)
                .await
                .map(|r| r.rows_affected())
        }
    };
    assert_eq!(changed.expect("write the row"), 1, "{n}");
}

async fn missing_resource_reads_as_none(kind: StoreKind) {
    let t = acme_store(kind).await;
    assert_eq!(get(&t.store, &prod("nobody")).await, None);
    t.store.ping().await.expect("ping");
}

async fn first_update_creates_and_round_trips_every_field(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let saved = save(&t.store, &replace_all(&n, complete_fields())).await;
    assert_eq!(saved.revision, 1);
    assert_eq!(saved.create_time, saved.update_time);
    assert!(!saved.etag.is_empty());
    assert_eq!(saved.fields, complete_fields());
    assert_eq!(get(&t.store, &n).await, Some(saved));
}

async fn masked_update_keeps_untouched_fields(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let first = save(&t.store, &replace_all(&n, complete_fields())).await;
    let mut mask = FieldSet::EMPTY;
    mask.insert(Field::TechnicalEmergencyContacts);
    mask.insert(Field::OperationalSupport);
    let second = save(
        &t.store,
        &Update {
            name: n.clone(),
            patch: ContactFields {
                technical_emergency_contacts: vec![contact("new-pager@example.com")],
                // Not in the mask: must be ignored.
                technical_non_emergency_contacts: vec![],
                operational_support: Some(OperationalSupport::AlwaysOpen),
                ..Default::default()
            },
            mask,
            expected_etag: None,
            copied_from: None,
        },
    )
    .await;
    assert_eq!(second.revision, 2);
    assert_ne!(second.etag, first.etag);
    assert_eq!(second.create_time, first.create_time);
    assert!(second.update_time >= first.update_time);
    let mut want = complete_fields();
    want.technical_emergency_contacts = vec![contact("new-pager@example.com")];
    want.operational_support = Some(OperationalSupport::AlwaysOpen);
    assert_eq!(second.fields, want);
    assert_eq!(get(&t.store, &n).await, Some(second));
}

async fn environments_are_separate_resources(kind: StoreKind) {
    let t = acme_store(kind).await;
    let sandbox = name("acme", Environment::Sandbox);
    let mut fields = complete_fields();
    fields.alert_contacts.clear();
    save(&t.store, &replace_all(&sandbox, fields)).await;
    assert_eq!(get(&t.store, &prod("acme")).await, None);
    assert_eq!(get(&t.store, &prod("acme2")).await, None);
    assert!(get(&t.store, &sandbox).await.is_some());
}

async fn stale_etag_is_rejected_and_changes_nothing(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let first = save(&t.store, &replace_all(&n, complete_fields())).await;
    let second = save(&t.store, &replace_all(&n, ContactFields::default())).await;
    let stale = Update {
        expected_etag: Some(first.etag.clone()),
        copied_from: None,
        ..replace_all(&n, complete_fields())
    };
    assert_eq!(
        t.store.update(&stale, None, ACTOR).await,
        Err(Error::EtagMismatch)
    );
    assert_eq!(get(&t.store, &n).await, Some(second.clone()));
    let fresh = Update {
        expected_etag: Some(second.etag.clone()),
        copied_from: None,
        ..replace_all(&n, complete_fields())
    };
    assert_eq!(
        t.store
            .update(&fresh, None, ACTOR)
            .await
            .map(|i| i.revision),
        Ok(3)
    );
}

async fn etag_on_a_missing_resource_is_rejected(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let update = Update {
        expected_etag: Some("W/\"anything\"".into()),
        copied_from: None,
        ..replace_all(&n, complete_fields())
    };
    assert_eq!(
        t.store.update(&update, None, ACTOR).await,
        Err(Error::EtagMismatch)
    );
    assert_eq!(get(&t.store, &n).await, None);
}

async fn concurrent_updates_with_one_etag_let_exactly_one_win(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let base = save(&t.store, &replace_all(&n, ContactFields::default())).await;
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = t.store.clone();
            let update = Update {
                expected_etag: Some(base.etag.clone()),
                copied_from: None,
                ..replace_all(
                    &n,
                    ContactFields {
                        technical_emergency_contacts: vec![contact(&format!("p{i}@example.com"))],
                        ..Default::default()
                    },
                )
            };
            tokio::spawn(async move { store.update(&update, None, ACTOR).await })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            Ok(info) => winners.push(info),
            Err(Error::EtagMismatch) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one update may win");
    assert_eq!(get(&t.store, &n).await, Some(winners.remove(0)));
}

/// Racer `i`'s unconditional update of the technical emergency contacts.
fn racing_update(n: &ContactInfoName, i: i64) -> Update {
    let mut mask = FieldSet::EMPTY;
    mask.insert(Field::TechnicalEmergencyContacts);
    Update {
        name: n.clone(),
        patch: ContactFields {
            technical_emergency_contacts: vec![contact(&format!("p{i}@example.com"))],
            ..Default::default()
        },
        mask,
        expected_etag: None,
        copied_from: None,
    }
}

/// Runs `racers` of [`racing_update`] at once; what each saved, in racer order.
async fn race_unconditional_updates(
    store: &DynStore,
    n: &ContactInfoName,
    racers: i64,
) -> Vec<ContactInfo> {
    let tasks: Vec<_> = (0..racers)
        .map(|i| {
            let store = store.clone();
            let update = racing_update(n, i);
            tokio::spawn(async move { store.update(&update, None, ACTOR).await })
        })
        .collect();
    let mut saved = Vec::new();
    for task in tasks {
        saved.push(
            task.await
                .expect("task")
                .expect("every unconditional update succeeds"),
        );
    }
    saved
}

async fn concurrent_unconditional_creates_lose_nothing(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("racy");
    let revisions: HashSet<i64> = race_unconditional_updates(&t.store, &n, 20)
        .await
        .iter()
        .map(|i| i.revision)
        .collect();
    // Every save got its own revision: none overwrote another unseen.
    assert_eq!(revisions, (1..=20).collect());
    assert_eq!(get(&t.store, &n).await.map(|i| i.revision), Some(20));
}

/// Updates of an existing resource racing each other (on PostgreSQL a
/// plain update first tries without a transaction, as a compare-and-set,
/// and falls back to a locked transaction when it loses): every one is
/// saved, as its own revision, with what it read as its base.
async fn concurrent_updates_of_an_existing_resource_lose_nothing(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let base = save(&t.store, &replace_all(&n, complete_fields())).await;
    const RACERS: i64 = 20;
    let saved = race_unconditional_updates(&t.store, &n, RACERS).await;
    let revisions: HashSet<i64> = saved.iter().map(|i| i.revision).collect();
    assert_eq!(revisions, (2..=RACERS + 1).collect());
    let latest = get(&t.store, &n).await.expect("saved");
    assert_eq!(latest.revision, RACERS + 1);
    assert_eq!(
        latest.fields.alert_contacts, base.fields.alert_contacts,
        "fields outside the mask kept"
    );
    // The history holds each save as it was answered: none overwritten.
    let history = t
        .store
        .list_revisions(&n, None, 100)
        .await
        .expect("history");
    assert_eq!(history.len() as i64, RACERS + 1);
    for info in &saved {
        let kept = history
            .iter()
            .find(|r| r.info.revision == info.revision)
            .expect("revision in the history");
        assert_eq!(&kept.info, info);
    }
}

async fn request_id_retry_returns_first_result_without_saving(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let k = key(1);
    let update = replace_all(&n, complete_fields());
    let first = t
        .store
        .update(&update, Some(&k), ACTOR)
        .await
        .expect("first");
    // Someone else saves in between; the retry still answers as the first call did.
    let between = save(&t.store, &replace_all(&n, ContactFields::default())).await;
    let retry = t
        .store
        .update(&update, Some(&k), ACTOR)
        .await
        .expect("retry");
    assert_eq!(retry, first);
    assert_eq!(get(&t.store, &n).await, Some(between));
}

async fn request_id_reused_for_another_request_is_invalid(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let k = key(1);
    t.store
        .update(&replace_all(&n, complete_fields()), Some(&k), ACTOR)
        .await
        .expect("first");
    let reused = key_of("acme", k.id, 2);
    let err = t
        .store
        .update(
            &replace_all(&n, ContactFields::default()),
            Some(&reused),
            ACTOR,
        )
        .await
        .expect_err("reuse");
    match err {
        Error::InvalidArgument {
            reason: InvalidReason::RequestIdReused,
            violations,
        } => assert_eq!(violations[0].field, "request_id"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(get(&t.store, &n).await.map(|i| i.revision), Some(1));
}

/// A request id is the partner's own: another partner sending the same id
/// (by chance, or to probe which ids were used) gets an ordinary save.
async fn request_ids_are_scoped_to_the_partner(kind: StoreKind) {
    let t = acme_store(kind).await;
    let id = uuid::Uuid::new_v4();
    let acme = t
        .store
        .update(
            &replace_all(&prod("acme"), complete_fields()),
            Some(&key_of("acme", id, 1)),
            ACTOR,
        )
        .await
        .expect("acme");
    let other = prod("globex");
    let theirs = ContactFields {
        technical_emergency_contacts: complete_fields().technical_emergency_contacts,
        ..ContactFields::default()
    };
    let first = t
        .store
        .update(
            &replace_all(&other, theirs.clone()),
            Some(&key_of("globex", id, 2)),
            ACTOR,
        )
        .await
        .expect("the same id for another partner is a new request");
    assert_eq!(first.name, other);
    assert_eq!(first.revision, 1);
    assert_eq!(first.fields, theirs);
    // Each partner's retry still answers with its own first result.
    let retry = t
        .store
        .update(
            &replace_all(&other, theirs),
            Some(&key_of("globex", id, 2)),
            ACTOR,
        )
        .await
        .expect("retry");
    assert_eq!(retry, first);
    assert_eq!(get(&t.store, &prod("acme")).await, Some(acme));
    let history = t
        .store
        .list_revisions(&other, None, 10)
        .await
        .expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].request_id, Some(id));
}

async fn concurrent_retries_save_once(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let k = key(7);
    let update = replace_all(&n, complete_fields());
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (store, update, k) = (t.store.clone(), update.clone(), k.clone());
            tokio::spawn(async move { store.update(&update, Some(&k), ACTOR).await })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task").expect("every retry succeeds"));
    }
    assert!(results.iter().all(|r| *r == results[0]));
    assert_eq!(get(&t.store, &n).await.map(|i| i.revision), Some(1));
}

async fn failed_update_does_not_consume_its_request_id(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let k = key(3);
    let conditional = Update {
        expected_etag: Some("W/\"stale\"".into()),
        copied_from: None,
        ..replace_all(&n, complete_fields())
    };
    assert_eq!(
        t.store.update(&conditional, Some(&k), ACTOR).await,
        Err(Error::EtagMismatch)
    );
    // Only saved results are remembered, so the id is still free.
    let saved = t
        .store
        .update(&replace_all(&n, complete_fields()), Some(&k), ACTOR)
        .await
        .expect("saved");
    assert_eq!(saved.revision, 1);
}

async fn purged_request_ids_are_forgotten(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let k = key(4);
    let update = replace_all(&n, complete_fields());
    t.store
        .update(&update, Some(&k), ACTOR)
        .await
        .expect("first");
    let kept = t
        .store
        .purge_request_ids(chrono::Utc::now() - store::REQUEST_ID_RETENTION)
        .await
        .expect("purge none");
    assert_eq!(kept, 0);
    assert_eq!(
        t.store
            .update(&update, Some(&k), ACTOR)
            .await
            .map(|i| i.revision),
        Ok(1)
    );
    let purged = t
        .store
        .purge_request_ids(chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .expect("purge all");
    assert_eq!(purged, 1);
    assert_eq!(
        t.store
            .update(&update, Some(&k), ACTOR)
            .await
            .map(|i| i.revision),
        Ok(2)
    );
}

async fn saved_data_survives_reopening(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    let saved = save(&t.store, &replace_all(&n, complete_fields())).await;
    // A second process on the same database (and re-running migrations) sees
    // it: behind a cache of its own on the cached arm, so read from the
    // database there too.
    let reopened = t.another_replica().await;
    assert_eq!(get(&reopened.store, &n).await, Some(saved));
}

on_every_store!(
    missing_resource_reads_as_none,
    first_update_creates_and_round_trips_every_field,
    masked_update_keeps_untouched_fields,
    environments_are_separate_resources,
    stale_etag_is_rejected_and_changes_nothing,
    etag_on_a_missing_resource_is_rejected,
    concurrent_updates_with_one_etag_let_exactly_one_win,
    concurrent_unconditional_creates_lose_nothing,
    concurrent_updates_of_an_existing_resource_lose_nothing,
    request_id_retry_returns_first_result_without_saving,
    request_id_reused_for_another_request_is_invalid,
    request_ids_are_scoped_to_the_partner,
    concurrent_retries_save_once,
    failed_update_does_not_consume_its_request_id,
    purged_request_ids_are_forgotten,
    saved_data_survives_reopening,
);
