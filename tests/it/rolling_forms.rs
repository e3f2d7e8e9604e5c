//! Rolling deploys over the stored ready form (issue 12): the release before
//! it (d9e9da0, the parent of 7f65f37) and this one share a database, and
//! each reads what the other wrote.
//!
//! The older release is played here with its own SQL, copied verbatim from
//! `git show d9e9da0:src/store/postgres.rs` and `…/sqlite.rs`, and with the
//! domain code it shares with this one (`Update::apply`, the serde JSON of
//! `ContactFields`, unchanged since): it writes `fields`, `revision`, `etag`
//! and the times, leaves `ready`/`ready_revision` as they were (so that they
//! go stale), and reads only the old columns.
use partner_contacts::api::convert::contact_info_to_pb;
use partner_contacts::domain::{
    Contact, ContactFields, ContactInfo, ContactInfoName, DisplayName, Email, Environment, Field,
    FieldSet, GatePolicy, LanguageCode, LocalTime, OperationalSupport, PartnerId, PhoneNumber,
    PortalRole, PortalUserEmails, ReadView, SupportWindow, TimeZoneName, Update, Weekday,
    email_key_of_stored, now_micros,
};
use partner_contacts::pb;
use partner_contacts::store::changes::CHANNEL;
use partner_contacts::store::{Change, DynStore};
use partner_contacts::wire::{Ready, STORED_FORMAT_V1};
use prost::Message;
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::common::{self, Backend, TestServer};

/// d9e9da0 `src/store/postgres.rs`, verbatim.
mod old_pg {
    pub const SELECT_COLUMNS: &str =
        "SELECT partner, environment, revision, etag, fields::text, create_time, update_time
     FROM contact_info WHERE partner = $1 AND environment = $2";

    pub const REVISION_COLUMNS: &str = "SELECT revision, actor, request_id, changed_fields, etag,
            fields::text, resource_create_time, create_time
     FROM contact_info_revisions WHERE partner = $1 AND environment = $2";
}

/// d9e9da0 `src/store/sqlite.rs`, verbatim.
mod old_sqlite {
    pub const SELECT_COLUMNS: &str =
        "SELECT partner, environment, revision, etag, fields, create_time, update_time
     FROM contact_info WHERE partner = ?1 AND environment = ?2";

    pub const REVISION_COLUMNS: &str =
        "SELECT revision, actor, request_id, changed_fields, etag, fields,
            resource_create_time, create_time
     FROM contact_info_revisions WHERE partner = ?1 AND environment = ?2";
}

const ACTOR: &str = "rolling-forms";
const PROD_NAME: &str = "partners/acme/environments/production/contactInfo";

fn prod() -> ContactInfoName {
    ContactInfoName::new(
        PartnerId::parse("acme").expect("partner"),
        Environment::Production,
    )
}

fn sandbox() -> ContactInfoName {
    ContactInfoName::new(
        PartnerId::parse("acme").expect("partner"),
        Environment::Sandbox,
    )
}

fn contact(email: &str) -> Contact {
    Contact {
        email: Email::parse(email).expect("email"),
        display_name: None,
        phone_number: None,
        language_code: None,
    }
}

fn full_contact(email: &str, name: &str) -> Contact {
    Contact {
        email: Email::parse(email).expect("email"),
        display_name: Some(DisplayName::parse(name).expect("name")),
        phone_number: Some(PhoneNumber::parse("+41 44 668 18 00").expect("phone")),
        language_code: Some(LanguageCode::parse("pt-BR").expect("language")),
    }
}

fn window(zone: &str, days: Vec<Weekday>, open: &str, close: &str) -> SupportWindow {
    SupportWindow::new(
        TimeZoneName::parse(zone).expect("zone"),
        days,
        LocalTime::parse(open, false).expect("open"),
        LocalTime::parse(close, true).expect("close"),
    )
    .expect("window")
}

/// Every field, every optional part of a contact, and support windows.
fn first_fields() -> ContactFields {
    ContactFields {
        alert_contacts: vec![
            full_contact("alerts@example.com", "Ops Team — 日本"),
            contact("b@example.com"),
        ],
        technical_emergency_contacts: vec![contact("pager@example.com")],
        technical_non_emergency_contacts: vec![contact("dev@example.com")],
        merchant_issues_contacts: vec![contact("merchants@example.com")],
        platform_operational_contacts: vec![contact("escalations@example.com")],
        user_facing_operational_contacts: vec![contact("Support@Example.com")],
        operational_support: Some(OperationalSupport::Windows(vec![
            window(
                "America/Los_Angeles",
                vec![Weekday::Monday, Weekday::Friday],
                "22:00",
                "02:00",
            ),
            window("Europe/Zurich", vec![Weekday::Sunday], "00:00", "24:00"),
        ])),
    }
}

/// What the older release saves over it: other emergency contacts and
/// support, so that reading the stale ready form would show.
fn older_release_patch() -> (ContactFields, FieldSet) {
    let patch = ContactFields {
        technical_emergency_contacts: vec![
            full_contact("night-pager@example.com", "Night shift"),
            contact("second-pager@example.com"),
        ],
        operational_support: Some(OperationalSupport::AlwaysOpen),
        ..ContactFields::default()
    };
    let mask = [Field::TechnicalEmergencyContacts, Field::OperationalSupport]
        .into_iter()
        .collect();
    (patch, mask)
}

fn update(name: &ContactInfoName, patch: ContactFields, mask: FieldSet) -> Update {
    Update {
        name: name.clone(),
        patch,
        mask,
        expected_etag: None,
        copied_from: None,
    }
}

/// A fresh store where partner `acme` has the portal users that
/// `first_fields()` names as alert contacts.
async fn acme_store(backend: Backend) -> common::TestStore {
    let t = common::store(backend).await;
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

fn acme_user_keys() -> PortalUserEmails {
    ["alerts@example.com", "B@example.com"]
        .into_iter()
        .map(email_key_of_stored)
        .collect()
}

async fn save(store: &DynStore, u: &Update) -> ContactInfo {
    store
        .update(u, None, ACTOR)
        .await
        .expect("newer release saves")
}

/// The message GetContacts sends for `info` with the full view.
fn message(info: &ContactInfo) -> pb::ContactInfo {
    contact_info_to_pb(info, ReadView::Full)
}

fn decode(ready: &Ready) -> pb::ContactInfo {
    pb::ContactInfo::decode(ready.encoded().clone()).expect("ready form decodes")
}

/// The newer release's reads of `name` (store, and store with users) all
/// give `expected`, encoded afresh.
async fn assert_newer_release_reads(
    store: &DynStore,
    name: &ContactInfoName,
    expected: &ContactInfo,
) {
    let ready = store
        .get_ready(name)
        .await
        .expect("get_ready")
        .expect("found");
    assert_eq!(ready.revision(), expected.revision);
    assert_eq!(decode(&ready), message(expected));
    assert_eq!(ready, Ready::of(expected));

    let (ready, users) = store
        .get_ready_and_users(name)
        .await
        .expect("get_ready_and_users")
        .expect("found");
    assert_eq!(ready.revision(), expected.revision);
    assert_eq!(decode(&ready), message(expected));
    assert_eq!(users, acme_user_keys());

    assert_eq!(store.get(name).await.expect("get").as_ref(), Some(expected));
}

/// The row's revision and its ready form as stored, read with this test's
/// own SQL.
struct StoredForm {
    revision: i64,
    ready: Option<Vec<u8>>,
    ready_revision: Option<i64>,
}

/// A connection to the test's database, for the older release's statements
/// and for looking at the stored columns.
enum Db {
    Pg(PgConnection),
    Sqlite(SqliteConnection),
}

type PgOldRow = (
    String,
    String,
    i64,
    String,
    String,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
);

type SqliteOldRow = (String, String, i64, String, String, i64, i64);

fn info_of(
    partner: &str,
    environment: &str,
    revision: i64,
    etag: String,
    fields: &str,
    create_time: chrono::DateTime<chrono::Utc>,
    update_time: chrono::DateTime<chrono::Utc>,
) -> ContactInfo {
    ContactInfo {
        name: ContactInfoName::new(
            PartnerId::parse(partner).expect("stored partner"),
            Environment::parse(environment).expect("stored environment"),
        ),
        // The JSON as the older release decodes it (same serde shape).
        fields: serde_json::from_str(fields).expect("stored fields decode"),
        revision,
        etag,
        create_time,
        update_time,
    }
}

fn from_micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).expect("stored time")
}

impl Db {
    async fn connect(backend: Backend, url: &str) -> Self {
        match backend {
            Backend::Postgres => Db::Pg(PgConnection::connect(url).await.expect("connect")),
            Backend::Sqlite => Db::Sqlite(SqliteConnection::connect(url).await.expect("connect")),
        }
    }

    /// The older release's `ContactStore::get`: its `SELECT_COLUMNS`.
    async fn old_get(&mut self, name: &ContactInfoName) -> Option<ContactInfo> {
        match self {
            Db::Pg(c) => {
                let found: Option<PgOldRow> = sqlx::query_as(old_pg::SELECT_COLUMNS)
                    .bind(name.partner.as_str())
                    .bind(name.environment.as_str())
                    .fetch_optional(&mut *c)
                    .await
                    .expect("older release reads");
                found.map(|r| info_of(&r.0, &r.1, r.2, r.3, &r.4, r.5, r.6))
            }
            Db::Sqlite(c) => {
                let found: Option<SqliteOldRow> = sqlx::query_as(old_sqlite::SELECT_COLUMNS)
                    .bind(name.partner.as_str())
                    .bind(name.environment.as_str())
                    .fetch_optional(&mut *c)
                    .await
                    .expect("older release reads");
                found.map(|r| {
                    info_of(
                        &r.0,
                        &r.1,
                        r.2,
                        r.3,
                        &r.4,
                        from_micros(r.5),
                        from_micros(r.6),
                    )
                })
            }
        }
    }

    /// The older release's history read (`list_revisions`, no cursor): each
    /// revision's number and fields, newest first.
    async fn old_revisions(&mut self, name: &ContactInfoName) -> Vec<(i64, ContactFields)> {
        let rows: Vec<(i64, String)> = match self {
            Db::Pg(c) => {
                type PgRevisionRow = (
                    i64,
                    String,
                    Option<uuid::Uuid>,
                    String,
                    String,
                    String,
                    chrono::DateTime<chrono::Utc>,
                    chrono::DateTime<chrono::Utc>,
                );
                let sql = format!(
                    "{} AND revision < $3 ORDER BY revision DESC LIMIT $4",
                    old_pg::REVISION_COLUMNS
                );
                let rows: Vec<PgRevisionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(name.partner.as_str())
                    .bind(name.environment.as_str())
                    .bind(i64::MAX)
                    .bind(100_i64)
                    .fetch_all(&mut *c)
                    .await
                    .expect("older release lists revisions");
                rows.into_iter().map(|r| (r.0, r.5)).collect()
            }
            Db::Sqlite(c) => {
                type SqliteRevisionRow = (
                    i64,
                    String,
                    Option<String>,
                    String,
                    String,
                    String,
                    i64,
                    i64,
                );
                let sql = format!(
                    "{} AND revision < ?3 ORDER BY revision DESC LIMIT ?4",
                    old_sqlite::REVISION_COLUMNS
                );
                let rows: Vec<SqliteRevisionRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(name.partner.as_str())
                    .bind(name.environment.as_str())
                    .bind(i64::MAX)
                    .bind(100_i64)
                    .fetch_all(&mut *c)
                    .await
                    .expect("older release lists revisions");
                rows.into_iter().map(|r| (r.0, r.5)).collect()
            }
        };
        rows.into_iter()
            .map(|(revision, fields)| {
                (
                    revision,
                    serde_json::from_str(&fields).expect("revision fields decode"),
                )
            })
            .collect()
    }

    /// The older release's `update` (no request id, NOTIFY on as by
    /// default): its transaction and statements, verbatim. Returns what it
    /// saved.
    async fn old_update(&mut self, u: &Update) -> ContactInfo {
        match self {
            Db::Pg(c) => old_update_pg(c, u).await,
            Db::Sqlite(c) => old_update_sqlite(c, u).await,
        }
    }

    async fn stored_form(&mut self, name: &ContactInfoName) -> StoredForm {
        type Stored = (i64, Option<Vec<u8>>, Option<i64>);
        let (revision, ready, ready_revision): Stored = match self {
            Db::Pg(c) => sqlx::query_as(
                "SELECT revision, ready, ready_revision FROM contact_info
                 WHERE partner = $1 AND environment = $2",
            )
            .bind(name.partner.as_str())
            .bind(name.environment.as_str())
            .fetch_one(&mut *c)
            .await
            .expect("read stored form"),
            Db::Sqlite(c) => sqlx::query_as(
                "SELECT revision, ready, ready_revision FROM contact_info
                 WHERE partner = ?1 AND environment = ?2",
            )
            .bind(name.partner.as_str())
            .bind(name.environment.as_str())
            .fetch_one(&mut *c)
            .await
            .expect("read stored form"),
        };
        StoredForm {
            revision,
            ready,
            ready_revision,
        }
    }

    /// Replaces the row's ready blob, leaving `ready_revision` as it is: a
    /// newer release's form of the same revision.
    async fn put_ready(&mut self, name: &ContactInfoName, blob: &[u8]) {
        let done = match self {
            Db::Pg(c) => sqlx::query(
                "UPDATE contact_info SET ready = $3 WHERE partner = $1 AND environment = $2",
            )
            .bind(name.partner.as_str())
            .bind(name.environment.as_str())
            .bind(blob)
            .execute(&mut *c)
            .await
            .expect("write ready blob")
            .rows_affected(),
            Db::Sqlite(c) => sqlx::query(
                "UPDATE contact_info SET ready = ?3 WHERE partner = ?1 AND environment = ?2",
            )
            .bind(name.partner.as_str())
            .bind(name.environment.as_str())
            .bind(blob)
            .execute(&mut *c)
            .await
            .expect("write ready blob")
            .rows_affected(),
        };
        assert_eq!(done, 1);
    }
}

async fn old_user_emails_pg(c: &mut PgConnection, partner: &PartnerId) -> PortalUserEmails {
    let emails: Vec<(String,)> =
        sqlx::query_as("SELECT email FROM portal_users WHERE partner = $1")
            .bind(partner.as_str())
            .fetch_all(c)
            .await
            .expect("older release reads portal users");
    emails
        .into_iter()
        .map(|(e,)| email_key_of_stored(&e))
        .collect()
}

/// d9e9da0 `PostgresStore::try_update` with `request = None`, `notify = true`.
async fn old_update_pg(c: &mut PgConnection, update: &Update) -> ContactInfo {
    let mut tx = c.begin().await.expect("begin");
    let sql = format!("{} FOR UPDATE", old_pg::SELECT_COLUMNS);
    let current: Option<PgOldRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(update.name.partner.as_str())
        .bind(update.name.environment.as_str())
        .fetch_optional(&mut *tx)
        .await
        .expect("lock contact info");
    let current = current.map(|r| info_of(&r.0, &r.1, r.2, r.3, &r.4, r.5, r.6));
    let users = match update.needs_portal_users() {
        true => Some(old_user_emails_pg(&mut tx, &update.name.partner).await),
        false => None,
    };
    let next = update
        .apply(current.as_ref(), users.as_ref(), now_micros())
        .expect("apply");
    let fields = serde_json::to_string(&next.fields).expect("encode fields");
    let response: Option<String> = None;
    let change = Change::ContactInfo {
        name: next.name.clone(),
        revision: next.revision,
    };
    let write = match &current {
        None => {
            "INSERT INTO contact_info
                     (partner, environment, revision, etag, fields, create_time, update_time)
                 VALUES ($1, $2, $3, $4, $5::jsonb, $11, $6)
                 ON CONFLICT (partner, environment) DO NOTHING
                 RETURNING 1"
        }
        Some(_) => {
            "UPDATE contact_info
                 SET revision = $3, etag = $4, fields = $5::jsonb, update_time = $6
                 WHERE partner = $1 AND environment = $2 AND revision = $7
                 RETURNING 1"
        }
    };
    let sql = format!(
        "WITH written AS ({write}),
             revision AS (
                 INSERT INTO contact_info_revisions
                     (partner, environment, revision, actor, request_id, changed_fields, etag,
                      fields, resource_create_time, create_time)
                 SELECT $1, $2, $3, $8, $9, $10, $4, $5::jsonb, $11, $6 FROM written
             ),
             recorded AS (
                 UPDATE update_requests SET response = $12::jsonb
                 WHERE request_id = $15 AND EXISTS (SELECT 1 FROM written)
             )
             {}",
        "SELECT count(*) FROM (SELECT pg_notify($13, $14) FROM written) AS notified"
    );
    let written: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(next.name.partner.as_str())
        .bind(next.name.environment.as_str())
        .bind(next.revision)
        .bind(&next.etag)
        .bind(&fields)
        .bind(next.update_time)
        .bind(current.as_ref().map_or(0, |c| c.revision))
        .bind(ACTOR)
        .bind(None::<uuid::Uuid>)
        .bind(encode_changed(next.changed_since(current.as_ref())))
        .bind(next.create_time)
        .bind(response)
        .bind(CHANNEL)
        .bind(change.encode())
        .bind(None::<uuid::Uuid>)
        .fetch_one(&mut *tx)
        .await
        .expect("save contact info");
    assert_eq!(written, 1, "no concurrent create in these tests");
    tx.commit().await.expect("commit");
    next
}

/// d9e9da0 `SqliteStore::update` with `request = None`.
async fn old_update_sqlite(c: &mut SqliteConnection, update: &Update) -> ContactInfo {
    let mut tx = c.begin_with("BEGIN IMMEDIATE").await.expect("begin");
    let current: Option<SqliteOldRow> = sqlx::query_as(old_sqlite::SELECT_COLUMNS)
        .bind(update.name.partner.as_str())
        .bind(update.name.environment.as_str())
        .fetch_optional(&mut *tx)
        .await
        .expect("read contact info");
    let current = current.map(|r| {
        info_of(
            &r.0,
            &r.1,
            r.2,
            r.3,
            &r.4,
            from_micros(r.5),
            from_micros(r.6),
        )
    });
    let users = match update.needs_portal_users() {
        true => {
            let emails: Vec<(String,)> =
                sqlx::query_as("SELECT email FROM portal_users WHERE partner = ?1")
                    .bind(update.name.partner.as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .expect("older release reads portal users");
            Some(
                emails
                    .into_iter()
                    .map(|(e,)| email_key_of_stored(&e))
                    .collect::<PortalUserEmails>(),
            )
        }
        false => None,
    };
    let next = update
        .apply(current.as_ref(), users.as_ref(), now_micros())
        .expect("apply");
    let fields = serde_json::to_string(&next.fields).expect("encode fields");
    sqlx::query(
        "INSERT INTO contact_info
                 (partner, environment, revision, etag, fields, create_time, update_time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (partner, environment) DO UPDATE SET
                 revision = excluded.revision, etag = excluded.etag,
                 fields = excluded.fields, update_time = excluded.update_time",
    )
    .bind(next.name.partner.as_str())
    .bind(next.name.environment.as_str())
    .bind(next.revision)
    .bind(&next.etag)
    .bind(&fields)
    .bind(next.create_time.timestamp_micros())
    .bind(next.update_time.timestamp_micros())
    .execute(&mut *tx)
    .await
    .expect("write contact info");

    sqlx::query(
        "INSERT INTO contact_info_revisions
                 (partner, environment, revision, actor, request_id, changed_fields, etag,
                  fields, resource_create_time, create_time)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .bind(next.name.partner.as_str())
    .bind(next.name.environment.as_str())
    .bind(next.revision)
    .bind(ACTOR)
    .bind(None::<String>)
    .bind(encode_changed(next.changed_since(current.as_ref())))
    .bind(&next.etag)
    .bind(&fields)
    .bind(next.create_time.timestamp_micros())
    .bind(next.update_time.timestamp_micros())
    .execute(&mut *tx)
    .await
    .expect("record revision");
    tx.commit().await.expect("commit");
    next
}

/// d9e9da0 `rows::encode_changed`.
fn encode_changed(changed: FieldSet) -> String {
    changed
        .iter()
        .map(Field::as_str)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn get_contacts(server: &TestServer, name: &str) -> pb::ContactInfo {
    server
        .client
        .clone()
        .get_contacts(pb::GetContactsRequest {
            name: name.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("GetContacts {name}: {s:?}"))
        .into_inner()
}

/// Case 1, older writes and newer reads: the older release saves over a row
/// this one wrote, leaving its ready form one revision behind; every read of
/// this release answers the older release's save, never the stale form.
async fn an_older_release_save_is_read_not_the_stale_form(backend: Backend) {
    let t = acme_store(backend).await;
    let first = save(&t.store, &update(&prod(), first_fields(), FieldSet::all())).await;
    let mut db = Db::connect(backend, &t.url).await;
    let form = db.stored_form(&prod()).await;
    assert_eq!(form.ready_revision, Some(first.revision));
    assert_eq!(
        Ready::from_stored(form.ready.as_deref().expect("ready form"), first.revision),
        Some(Ready::of(&first)),
        "this release writes its ready form with every save"
    );

    let (patch, mask) = older_release_patch();
    let older = db.old_update(&update(&prod(), patch.clone(), mask)).await;
    assert_eq!(older.revision, first.revision + 1);
    assert_ne!(older.etag, first.etag);
    assert_eq!(
        older.fields.technical_emergency_contacts,
        patch.technical_emergency_contacts
    );
    assert_eq!(
        older.fields.operational_support,
        Some(OperationalSupport::AlwaysOpen)
    );
    assert_eq!(older.fields.alert_contacts, first.fields.alert_contacts);

    // The trap: a well-formed ready form of the previous revision.
    let form = db.stored_form(&prod()).await;
    assert_eq!(form.revision, older.revision);
    assert_eq!(form.ready_revision, Some(first.revision));
    let stale = form.ready.expect("the older release leaves the ready form");
    assert_eq!(
        Ready::from_stored(&stale, first.revision),
        Some(Ready::of(&first))
    );
    assert_eq!(Ready::from_stored(&stale, older.revision), None);

    assert_newer_release_reads(&t.store, &prod(), &older).await;
    // The older release reads its own save back, too.
    assert_eq!(db.old_get(&prod()).await.as_ref(), Some(&older));

    let server = TestServer::start_on(t, GatePolicy::builtin()).await;
    let got = get_contacts(&server, PROD_NAME).await;
    assert_eq!(got, message(&older));
    assert_ne!(got, message(&first));
    assert_eq!(got.etag, older.etag);

    // This release saves over the older release's row: the form is current
    // again, and the older release still reads it.
    let store = &server.store.store;
    let patch = ContactFields {
        merchant_issues_contacts: vec![full_contact("shops@example.com", "Shops")],
        ..ContactFields::default()
    };
    let newer = save(
        store,
        &update(
            &prod(),
            patch,
            [Field::MerchantIssuesContacts].into_iter().collect(),
        ),
    )
    .await;
    assert_eq!(newer.revision, older.revision + 1);
    assert_eq!(
        newer.fields.technical_emergency_contacts,
        older.fields.technical_emergency_contacts
    );
    let form = db.stored_form(&prod()).await;
    assert_eq!(form.ready_revision, Some(newer.revision));
    assert_eq!(
        Ready::from_stored(form.ready.as_deref().expect("ready form"), newer.revision),
        Some(Ready::of(&newer))
    );
    assert_eq!(db.old_get(&prod()).await.as_ref(), Some(&newer));
}

/// Case 1b: a row the older release created has no ready form at all.
async fn a_row_the_older_release_created_is_read(backend: Backend) {
    let t = acme_store(backend).await;
    let mut db = Db::connect(backend, &t.url).await;
    let created = db
        .old_update(&update(&sandbox(), first_fields(), FieldSet::all()))
        .await;
    assert_eq!(created.revision, 1);
    let form = db.stored_form(&sandbox()).await;
    assert_eq!((form.ready, form.ready_revision), (None, None));

    assert_newer_release_reads(&t.store, &sandbox(), &created).await;
    assert_eq!(t.store.get_ready(&prod()).await.expect("get_ready"), None);

    let server = TestServer::start_on(t, GatePolicy::builtin()).await;
    let got = get_contacts(&server, "partners/acme/environments/sandbox/contactInfo").await;
    assert_eq!(got, message(&created));
    assert_eq!(got.alert_contacts.len(), 2);
    assert_eq!(
        got.alert_contacts[0].display_name, "Ops Team — 日本",
        "every part of a contact comes through"
    );
}

/// Case 2, newer writes and older reads: the older release's SELECTs run on
/// the table as this release writes it, and its JSON fields decode to what
/// this release saved (drafts, every field and the history alike).
async fn newer_release_saves_are_read_by_the_older_release(backend: Backend) {
    let t = acme_store(backend).await;
    let mut db = Db::connect(backend, &t.url).await;

    let first = save(&t.store, &update(&prod(), first_fields(), FieldSet::all())).await;
    assert_eq!(db.old_get(&prod()).await.as_ref(), Some(&first));

    let patch = ContactFields {
        user_facing_operational_contacts: vec![
            full_contact("help@example.com", "Help desk"),
            contact("Second.Help@Example.com"),
        ],
        operational_support: Some(OperationalSupport::Windows(vec![window(
            "Asia/Tokyo",
            vec![Weekday::Tuesday, Weekday::Wednesday, Weekday::Saturday],
            "09:30",
            "18:45",
        )])),
        ..ContactFields::default()
    };
    let second = save(
        &t.store,
        &update(
            &prod(),
            patch,
            [
                Field::UserFacingOperationalContacts,
                Field::OperationalSupport,
            ]
            .into_iter()
            .collect(),
        ),
    )
    .await;
    let read = db.old_get(&prod()).await.expect("found");
    assert_eq!(read, second);
    assert_eq!(read.fields.alert_contacts, first.fields.alert_contacts);
    assert_ne!(read.fields, first.fields);
    assert_eq!(
        db.old_revisions(&prod()).await,
        vec![(2, second.fields.clone()), (1, first.fields.clone())]
    );

    // A draft: most fields not provided yet.
    let draft_fields = ContactFields {
        platform_operational_contacts: vec![contact("escalations@example.com")],
        ..ContactFields::default()
    };
    let draft = save(
        &t.store,
        &update(&sandbox(), draft_fields.clone(), FieldSet::all()),
    )
    .await;
    let read = db.old_get(&sandbox()).await.expect("found");
    assert_eq!(read, draft);
    assert_eq!(read.fields, draft_fields);
    assert_eq!(read.fields.operational_support, None);
}

/// Case 3: a ready form in a format this release does not know (a newer
/// release's) is never read as its own: the row's fields answer.
async fn a_newer_format_ready_form_is_not_misread(backend: Backend) {
    let t = acme_store(backend).await;
    let first = save(&t.store, &update(&prod(), first_fields(), FieldSet::all())).await;
    let mut db = Db::connect(backend, &t.url).await;

    // A decoy: well-formed bytes for other content, so that reading them
    // as format 1 would show.
    let decoy = ContactInfo {
        fields: ContactFields {
            alert_contacts: vec![contact("intruder@example.com")],
            ..ContactFields::default()
        },
        etag: "W/decoy".to_owned(),
        ..first.clone()
    };
    let decoy_v1 = Ready::of(&decoy).to_stored();
    assert_eq!(decoy_v1[0], STORED_FORMAT_V1);
    assert_eq!(
        Ready::from_stored(&decoy_v1, first.revision),
        Some(Ready::of(&decoy)),
        "the decoy reads as format 1"
    );

    for format in [2_u8, 0x7f, 0xff, 0] {
        let mut future = decoy_v1.clone();
        future[0] = format;
        db.put_ready(&prod(), &future).await;
        let form = db.stored_form(&prod()).await;
        assert_eq!(
            form.ready_revision,
            Some(first.revision),
            "current for the release that wrote it"
        );
        assert_eq!(form.ready.as_deref(), Some(future.as_slice()));
        assert_newer_release_reads(&t.store, &prod(), &first).await;
    }

    // An older release's backfill leaves a newer release's current form be.
    assert_eq!(
        t.store.backfill_ready(100).await.expect("backfill"),
        common::wrote(0)
    );
    let mut future = decoy_v1.clone();
    future[0] = 0;
    assert_eq!(
        db.stored_form(&prod()).await.ready.as_deref(),
        Some(future.as_slice())
    );

    let server = TestServer::start_on(t, GatePolicy::builtin()).await;
    let got = get_contacts(&server, PROD_NAME).await;
    assert_eq!(got, message(&first));
    assert!(
        got.alert_contacts
            .iter()
            .all(|c| c.email != "intruder@example.com")
    );
}

/// Case 4: after older releases' saves, `backfill_ready` (what `migrate`
/// runs) writes the current forms, and reads still agree.
async fn backfill_makes_the_forms_current_again(backend: Backend) {
    let t = acme_store(backend).await;
    let mut db = Db::connect(backend, &t.url).await;
    let first = save(&t.store, &update(&prod(), first_fields(), FieldSet::all())).await;
    let (patch, mask) = older_release_patch();
    let older = db.old_update(&update(&prod(), patch, mask)).await;
    let created = db
        .old_update(&update(&sandbox(), first_fields(), FieldSet::all()))
        .await;
    // A row this release saved: current already, left alone.
    let globex = ContactInfoName::new(
        PartnerId::parse("globex").expect("partner"),
        Environment::Production,
    );
    let current = save(
        &t.store,
        &update(
            &globex,
            ContactFields {
                alert_contacts: vec![],
                ..first_fields()
            },
            FieldSet::all(),
        ),
    )
    .await;
    let current_form = db.stored_form(&globex).await;
    assert_eq!(current_form.ready_revision, Some(current.revision));
    assert_eq!(
        db.stored_form(&prod()).await.ready_revision,
        Some(first.revision)
    );
    assert_eq!(db.stored_form(&sandbox()).await.ready_revision, None);

    // One row per batch: the batches must carry on past the first.
    assert_eq!(
        t.store.backfill_ready(1).await.expect("backfill"),
        common::wrote(2)
    );

    for (name, info) in [(prod(), &older), (sandbox(), &created)] {
        let form = db.stored_form(&name).await;
        assert_eq!(form.revision, info.revision);
        assert_eq!(form.ready_revision, Some(info.revision), "{name}");
        assert_eq!(
            Ready::from_stored(form.ready.as_deref().expect("ready form"), info.revision),
            Some(Ready::of(info)),
            "{name}"
        );
        assert_newer_release_reads(&t.store, &name, info).await;
        assert_eq!(db.old_get(&name).await.as_ref(), Some(info), "{name}");
    }
    let after = db.stored_form(&globex).await;
    assert_eq!(after.ready, current_form.ready);
    assert_eq!(after.ready_revision, current_form.ready_revision);
    assert_eq!(
        t.store.backfill_ready(1).await.expect("backfill"),
        common::wrote(0)
    );

    let server = TestServer::start_on(t, GatePolicy::builtin()).await;
    assert_eq!(get_contacts(&server, PROD_NAME).await, message(&older));
}

/// The schema before `ready_pending` (migration 0008).
const BEFORE_READY_PENDING: i64 = 7;

/// Case 5: a row an older release left stale before the database kept a
/// record of such rows (migration 0008) is recorded by the migration, and
/// the backfill, which now reads only the record, still writes it.
async fn a_row_left_stale_before_the_record_is_written(backend: Backend) {
    let db = common::database_at_schema(backend, BEFORE_READY_PENDING).await;
    let mut old = Db::connect(backend, &db.url).await;
    let fields = ContactFields {
        alert_contacts: vec![],
        ..first_fields()
    };
    let stale = old
        .old_update(&update(&prod(), fields, FieldSet::all()))
        .await;
    assert_eq!(old.stored_form(&prod()).await.ready_revision, None);
    drop(old);

    let (t, _) = db.open().await;
    let mut db = Db::connect(backend, &t.url).await;
    assert_eq!(
        t.store.backfill_ready(10).await.expect("backfill"),
        common::wrote(1)
    );
    let form = db.stored_form(&prod()).await;
    assert_eq!(form.ready_revision, Some(stale.revision));
    assert_eq!(
        Ready::from_stored(form.ready.as_deref().expect("ready form"), stale.revision),
        Some(Ready::of(&stale))
    );
    assert_eq!(
        t.store.backfill_ready(10).await.expect("backfill"),
        common::wrote(0)
    );
}

crate::on_both_backends!(
    an_older_release_save_is_read_not_the_stale_form,
    a_row_the_older_release_created_is_read,
    newer_release_saves_are_read_by_the_older_release,
    a_newer_format_ready_form_is_not_misread,
    backfill_makes_the_forms_current_again,
    a_row_left_stale_before_the_record_is_written,
);

/// PostgreSQL, where replicas of both releases run side by side: a replica
/// of this release that has cached a contact info follows the older
/// release's save (its NOTIFY), and serves that, not its cached or the
/// stale stored form. SQLite is only ever written by one process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_cached_replica_follows_an_older_release_save() {
    let t = acme_store(Backend::Postgres).await;
    let first = save(&t.store, &update(&prod(), first_fields(), FieldSet::all())).await;
    let mut db = Db::connect(Backend::Postgres, &t.url).await;
    let server = TestServer::start_on(t, GatePolicy::builtin()).await;
    assert_eq!(get_contacts(&server, PROD_NAME).await, message(&first));

    let (patch, mask) = older_release_patch();
    let older = db.old_update(&update(&prod(), patch, mask)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let got = loop {
        let got = get_contacts(&server, PROD_NAME).await;
        if got.etag == older.etag || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(got, message(&older));
}
