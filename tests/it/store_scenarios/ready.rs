//! The ready form: what GetContacts sends, stored beside the JSON fields with
//! every save and served from the cache. A row whose form is missing or
//! stale (saved by a release before it, or by an older one mid-rollout)
//! still reads correctly, and `backfill_ready` writes exactly those rows.
use partner_contacts::domain::{
    ContactFields, ContactInfo, ContactInfoName, Email, Environment, Field, FieldSet, PortalRole,
    Update,
};
use partner_contacts::store::Backfill;
use partner_contacts::wire::{Ready, STORED_FORMAT_V1};

use super::{
    acme_store, complete_fields, contact, get, name, prod, raw_execute, replace_all, save,
    set_stored_ready, stored_ready,
};
use sqlx::Connection;

use crate::common::{self, Backend, StoreKind, TestStore};
use crate::on_every_store;

/// Fields that name no alert contacts, so any partner may save them.
fn fields(i: usize) -> ContactFields {
    ContactFields {
        alert_contacts: vec![],
        technical_emergency_contacts: vec![contact(&format!("pager-{i}@example.com"))],
        ..complete_fields()
    }
}

/// `n`'s row holds the current ready form of `info`.
async fn assert_stored_current(
    t: &TestStore,
    kind: StoreKind,
    n: &ContactInfoName,
    info: &ContactInfo,
) {
    assert_eq!(
        stored_ready(t, kind, n).await,
        (
            Some(Ready::of(info).to_stored()),
            Some(info.revision),
            info.revision
        ),
        "{n}: the stored ready form"
    );
}

async fn a_save_is_read_back_in_its_ready_form(kind: StoreKind) {
    let t = acme_store(kind).await;
    let n = prod("acme");
    // Known absent first (the cache remembers that too), then created: the
    // save must replace what a read left behind.
    assert_eq!(t.store.get_ready(&n).await.expect("get_ready"), None);
    let first = save(&t.store, &replace_all(&n, complete_fields())).await;
    let hits_before = t.cache.as_ref().map(|c| c.stats().cache_hits);
    let ready = t.store.get_ready(&n).await.expect("get_ready");
    assert_eq!(ready, Some(Ready::of(&first)));
    if let (Some(cache), Some(before)) = (&t.cache, hits_before) {
        assert!(
            cache.stats().cache_hits > before,
            "the read after the save was served from the cache"
        );
    }

    let mut mask = FieldSet::EMPTY;
    mask.insert(Field::TechnicalEmergencyContacts);
    let second = save(
        &t.store,
        &Update {
            mask,
            ..replace_all(&n, fields(2))
        },
    )
    .await;
    assert_eq!(second.revision, 2);
    let ready = t
        .store
        .get_ready(&n)
        .await
        .expect("get_ready")
        .expect("saved");
    assert_eq!(ready.revision(), 2);
    assert_eq!(ready.encoded(), Ready::of(&second).encoded());
    assert_ne!(ready.encoded(), Ready::of(&first).encoded());
    let (ready, users) = t
        .store
        .get_ready_and_users(&n)
        .await
        .expect("get_ready_and_users")
        .expect("saved");
    assert_eq!(ready, Ready::of(&second));
    assert_eq!(users.len(), 2, "acme's two portal users: {users:?}");
    assert_eq!(get(&t.store, &n).await, Some(second.clone()));

    // Written beside the fields, so another replica (with a cache of its
    // own on the cached arm) reads the same bytes from the database.
    assert_stored_current(&t, kind, &n, &second).await;
    let replica = t.another_replica().await;
    assert_eq!(get(&replica.store, &n).await, Some(second));
}

async fn a_missing_or_stale_ready_form_reads_from_the_fields(kind: StoreKind) {
    let t = acme_store(kind).await;
    let mut rows = Vec::new();

    // Saved before the ready form existed.
    let never = prod("acme");
    rows.push(save(&t.store, &replace_all(&never, complete_fields())).await);
    set_stored_ready(&t, kind, &never, None, None).await;

    // Revision 2 saved by an older release, which left revision 1's form.
    let older = name("acme", Environment::Sandbox);
    save(&t.store, &replace_all(&older, fields(1))).await;
    let (blob_1, _, _) = stored_ready(&t, kind, &older).await;
    rows.push(save(&t.store, &replace_all(&older, fields(2))).await);
    set_stored_ready(&t, kind, &older, blob_1.clone(), Some(1)).await;

    // The current form, marked as written for the revision before.
    let marked = prod("globex");
    rows.push(save(&t.store, &replace_all(&marked, fields(3))).await);
    raw_execute(
        &t,
        kind,
        "UPDATE contact_info SET ready_revision = revision - 1 WHERE partner = 'globex'",
    )
    .await
    .expect("mark stale");

    // Marked current, but the blob is of another revision.
    let mismatched = prod("initech");
    save(&t.store, &replace_all(&mismatched, fields(4))).await;
    let (blob_4, _, _) = stored_ready(&t, kind, &mismatched).await;
    rows.push(save(&t.store, &replace_all(&mismatched, fields(5))).await);
    set_stored_ready(&t, kind, &mismatched, blob_4, Some(2)).await;

    // Written by a newer release, in a format this one does not know.
    let newer = prod("umbrella");
    rows.push(save(&t.store, &replace_all(&newer, fields(6))).await);
    let mut future = Ready::of(rows.last().expect("saved")).to_stored();
    future[0] = STORED_FORMAT_V1 + 1;
    set_stored_ready(&t, kind, &newer, Some(future), Some(1)).await;

    // A fresh replica has nothing cached: every read reaches the rows.
    let replica = t.another_replica().await;
    for info in &rows {
        assert_eq!(get(&replica.store, &info.name).await.as_ref(), Some(info));
        assert_eq!(get(&t.store, &info.name).await.as_ref(), Some(info));
    }
    assert_eq!(
        stored_ready(&t, kind, &older).await,
        (blob_1, Some(1), 2),
        "a read does not write"
    );

    // The next save writes a current form again.
    for (i, info) in rows.iter().enumerate() {
        let mut fields = fields(10 + i);
        fields.alert_contacts = info.fields.alert_contacts.clone();
        let saved = save(&replica.store, &replace_all(&info.name, fields)).await;
        assert_eq!(saved.revision, info.revision + 1);
        assert_stored_current(&t, kind, &info.name, &saved).await;
        // Saved on the other replica: on the cached arm it reaches this
        // one's cache by its change notification, soon after, not at once.
        let since = std::time::Instant::now();
        while t
            .store
            .get_ready(&info.name)
            .await
            .expect("get_ready")
            .is_none_or(|r| r.revision() < saved.revision)
            && since.elapsed() < std::time::Duration::from_secs(5)
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(get(&t.store, &info.name).await, Some(saved));
    }
}

async fn backfill_writes_exactly_the_missing_ready_forms(kind: StoreKind) {
    let t = acme_store(kind).await;
    let names = [
        prod("p0"),
        name("p0", Environment::Sandbox),
        prod("p1"),
        prod("p2"),
        prod("p3"),
        prod("p4"),
    ];
    let (mut saved, mut first_forms) = (Vec::new(), Vec::new());
    for (i, n) in names.iter().enumerate() {
        // Some rows at revision 2, so that a stale form can be a real one.
        if i % 2 == 0 {
            save(&t.store, &replace_all(n, fields(i))).await;
            first_forms.push(stored_ready(&t, kind, n).await.0);
        } else {
            first_forms.push(None);
        }
        saved.push(save(&t.store, &replace_all(n, fields(100 + i))).await);
    }
    set_stored_ready(&t, kind, &names[0], None, None).await;
    set_stored_ready(&t, kind, &names[1], None, None).await;
    raw_execute(
        &t,
        kind,
        "UPDATE contact_info SET ready_revision = revision - 1
         WHERE partner IN ('p1', 'p2')",
    )
    .await
    .expect("mark stale");
    // p3 at revision 2 still holds revision 1's form (an older release saved it).
    let p3_first = first_forms[4].clone();
    assert!(p3_first.is_some());
    set_stored_ready(&t, kind, &names[4], p3_first, Some(1)).await;
    // p4 keeps its current form.
    assert_stored_current(&t, kind, &names[5], &saved[5]).await;

    // Five rows lack a current form; batches of 2 take three transactions.
    assert_eq!(
        t.store.backfill_ready(2).await.expect("backfill"),
        common::wrote(5)
    );
    assert_eq!(
        t.store.backfill_ready(2).await.expect("backfill again"),
        common::wrote(0)
    );
    for info in &saved {
        assert_stored_current(&t, kind, &info.name, info).await;
    }
    let replica = t.another_replica().await;
    for info in &saved {
        assert_eq!(get(&replica.store, &info.name).await.as_ref(), Some(info));
    }
    assert_eq!(
        replica.store.backfill_ready(100).await.expect("backfill"),
        common::wrote(0)
    );
}

/// The entries of `ready_pending` (migration 0008), in key order.
async fn pending_forms(t: &TestStore, kind: StoreKind) -> Vec<(String, String)> {
    let sql = "SELECT partner, environment FROM ready_pending ORDER BY partner, environment";
    match kind.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&t.url)
                .await
                .expect("connect");
            sqlx::query_as(sql).fetch_all(&mut c).await
        }
        Backend::Postgres => {
            let mut c = common::raw_pg_connection(&t.url).await.expect("connect");
            sqlx::query_as(sql).fetch_all(&mut c).await
        }
    }
    .expect("read ready_pending")
}

fn pending(n: &ContactInfoName) -> (String, String) {
    (
        n.partner.as_str().to_owned(),
        n.environment.as_str().to_owned(),
    )
}

/// The backfill reads what the database recorded (a trigger, whoever
/// saved): this release's saves record nothing, a save that leaves the form
/// stale records its row, and a row saved current again before the backfill
/// is only cleared. Without the record, every start walked the whole table.
async fn the_database_records_which_forms_to_write(kind: StoreKind) {
    let t = acme_store(kind).await;
    let names = [prod("p0"), prod("p1"), name("p1", Environment::Sandbox)];
    let mut saved = Vec::new();
    for (i, n) in names.iter().enumerate() {
        saved.push(save(&t.store, &replace_all(n, fields(i))).await);
    }
    assert_eq!(pending_forms(&t, kind).await, vec![], "current forms only");
    assert_eq!(
        t.store.backfill_ready(10).await.expect("backfill"),
        common::wrote(0)
    );

    // An older release leaves p0's form missing and p1's a revision behind.
    set_stored_ready(&t, kind, &names[0], None, None).await;
    raw_execute(
        &t,
        kind,
        "UPDATE contact_info SET ready_revision = revision - 1
         WHERE partner = 'p1' AND environment = 'production'",
    )
    .await
    .expect("mark stale");
    assert_eq!(
        pending_forms(&t, kind).await,
        vec![pending(&names[0]), pending(&names[1])]
    );

    // This release saves p1 again before any backfill: current, nothing to
    // write, and its entry is cleared with p0's.
    saved[1] = save(&t.store, &replace_all(&names[1], fields(7))).await;
    assert_eq!(
        t.store.backfill_ready(1).await.expect("backfill"),
        common::wrote(1)
    );
    assert_eq!(pending_forms(&t, kind).await, vec![]);
    for info in &saved {
        assert_stored_current(&t, kind, &info.name, info).await;
    }
    assert_eq!(
        t.store.backfill_ready(1).await.expect("backfill again"),
        common::wrote(0)
    );
}

/// Reads that arrive together (PostgreSQL answers them in one statement)
/// each get their own partner's answer: contact info, users, absence.
async fn reads_arriving_together_each_get_their_own(kind: StoreKind) {
    let t = acme_store(kind).await;
    const PARTNERS: usize = 24;
    let mut expected = Vec::new();
    for i in 0..PARTNERS {
        let partner = format!("p{i}");
        let n = prod(&partner);
        // Every third partner has no contact info; every other one users.
        let info = if i % 3 == 0 {
            None
        } else {
            Some(save(&t.store, &replace_all(&n, fields(i))).await)
        };
        if i % 2 == 0 {
            t.store
                .grant_portal_access(
                    &n.partner,
                    &Email::parse(&format!("u{i}@example.com")).expect("email"),
                    PortalRole::Administrator,
                    super::ACTOR,
                )
                .await
                .expect("grant");
        }
        let users = super::user_emails(&t.store, &n.partner).await;
        expected.push((n, info, users));
    }
    // A replica that has read nothing yet: on the cached arm every read
    // below misses and reaches PostgreSQL, all at once.
    let replica = t.another_replica().await;
    let mut reads = tokio::task::JoinSet::new();
    for (n, info, users) in expected {
        let sandbox = name(n.partner.as_str(), Environment::Sandbox);
        let ready = info.as_ref().map(Ready::of);
        let (s1, s2, s3, s4) = (
            replica.store.clone(),
            replica.store.clone(),
            replica.store.clone(),
            replica.store.clone(),
        );
        let (n1, n2, r1, u1) = (n.clone(), n.clone(), ready.clone(), users.clone());
        reads.spawn(async move {
            let found = s1.get_ready(&n1).await.expect("get_ready");
            assert_eq!(found, r1, "{n1}: get_ready");
        });
        reads.spawn(async move {
            let found = s2.get_ready_and_users(&n2).await.expect("with users");
            assert_eq!(found, ready.map(|r| (r, u1)), "{n2}: get_ready_and_users");
        });
        reads.spawn(async move {
            let keys = s3.portal_user_emails(&n.partner).await.expect("emails");
            assert_eq!(keys, users, "{n}: portal_user_emails");
        });
        reads.spawn(async move {
            let found = s4.get_ready(&sandbox).await.expect("sandbox");
            assert_eq!(found, None, "{sandbox}: nothing saved");
        });
    }
    while let Some(done) = reads.join_next().await {
        done.expect("a read's assertion failed");
    }
}

/// A row whose stored fields do not decode (a bad hand edit, a bug of some
/// release) is skipped and named, and the rows after it in key order still
/// get their forms: before, it failed its batch on every start, and no form
/// after it was ever written. Repaired by hand, it is recorded again and
/// written by the next backfill.
async fn an_undecodable_row_is_skipped_and_the_rest_written(kind: StoreKind) {
    let t = acme_store(kind).await;
    let names = [prod("p0"), prod("p1"), prod("p2")];
    for (i, n) in names.iter().enumerate() {
        save(&t.store, &replace_all(n, fields(i))).await;
    }
    set_stored_ready(&t, kind, &names[0], None, None).await;
    set_stored_ready(&t, kind, &names[2], None, None).await;
    raw_execute(
        &t,
        kind,
        r#"UPDATE contact_info SET fields = '{"alert_contacts": 5}', ready = NULL,
               ready_revision = NULL
           WHERE partner = 'p1'"#,
    )
    .await
    .expect("break p1");
    assert_eq!(
        pending_forms(&t, kind).await,
        names.iter().map(pending).collect::<Vec<_>>()
    );

    // One row per transaction: p1's is the second of three.
    assert_eq!(
        t.store.backfill_ready(1).await.expect("backfill"),
        Backfill {
            written: 2,
            undecodable: 1,
            undecodable_rows: vec!["p1/production".to_owned()],
        }
    );
    assert_eq!(pending_forms(&t, kind).await, vec![]);
    for n in [&names[0], &names[2]] {
        let info = t.store.get(n).await.expect("get").expect("saved");
        assert_stored_current(&t, kind, n, &info).await;
    }
    assert!(t.store.get(&names[1]).await.is_err(), "p1 does not decode");
    assert_eq!(
        t.store.backfill_ready(1).await.expect("backfill again"),
        common::wrote(0)
    );

    raw_execute(
        &t,
        kind,
        "UPDATE contact_info SET fields = (SELECT fields FROM contact_info
                                           WHERE partner = 'p0' AND environment = 'production')
         WHERE partner = 'p1'",
    )
    .await
    .expect("repair p1");
    assert_eq!(pending_forms(&t, kind).await, vec![pending(&names[1])]);
    assert_eq!(
        t.store.backfill_ready(1).await.expect("backfill"),
        common::wrote(1)
    );
    let repaired = t.store.get(&names[1]).await.expect("get").expect("saved");
    assert_stored_current(&t, kind, &names[1], &repaired).await;
}

on_every_store!(
    reads_arriving_together_each_get_their_own,
    a_save_is_read_back_in_its_ready_form,
    a_missing_or_stale_ready_form_reads_from_the_fields,
    backfill_writes_exactly_the_missing_ready_forms,
    the_database_records_which_forms_to_write,
    an_undecodable_row_is_skipped_and_the_rest_written,
);
