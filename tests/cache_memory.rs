//! The read cache's byte budget is real memory: a counting allocator measures
//! what the cache keeps on the heap and compares it with what its weigher
//! claims and with the operator's budget.
//!
//! A test binary of its own: the allocator counts every thread of the
//! process, so nothing else may run beside it.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use partner_contacts::domain::{
    Contact, ContactFields, ContactInfoName, DisplayName, Email, Environment, FieldSet,
    LanguageCode, LocalTime, OperationalSupport, PartnerId, PhoneNumber, SupportWindow,
    TimeZoneName, Update, Weekday,
};
use partner_contacts::store::{self, CacheOptions, CachedStore, StoreOptions};

/// Live heap bytes, as malloc chunks (the weigher's unit): requested size
/// plus header, rounded to 16, at least 32.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

fn chunk(size: usize) -> isize {
    ((size + 8 + 15) & !15).max(32) as isize
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(chunk(layout.size()), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(chunk(layout.size()), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(chunk(new_size) - chunk(layout.size()), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn contact(email: &str, name: Option<&str>, phone: Option<&str>, lang: Option<&str>) -> Contact {
    Contact {
        email: Email::parse(email).expect("email"),
        display_name: name.map(|n| DisplayName::parse(n).expect("name")),
        phone_number: phone.map(|p| PhoneNumber::parse(p).expect("phone")),
        language_code: lang.map(|l| LanguageCode::parse(l).expect("language")),
    }
}

/// Complete contact information shaped like the benchmark's (bench/load.sql),
/// less the alert contacts, which would need portal users.
fn fields(p: &str) -> ContactFields {
    let window = |zone: &str, days: Vec<Weekday>, open: &str, close: &str| {
        SupportWindow::new(
            TimeZoneName::parse(zone).expect("zone"),
            days,
            LocalTime::parse(open, false).expect("open"),
            LocalTime::parse(close, true).expect("close"),
        )
        .expect("window")
    };
    ContactFields {
        alert_contacts: vec![],
        technical_emergency_contacts: vec![contact(
            &format!("pager@{p}.example"),
            None,
            Some("+16502530000"),
            None,
        )],
        technical_non_emergency_contacts: vec![contact(
            &format!("integrations@{p}.example"),
            None,
            None,
            Some("en"),
        )],
        merchant_issues_contacts: vec![contact(
            &format!("merchants@{p}.example"),
            None,
            None,
            None,
        )],
        platform_operational_contacts: vec![contact(
            &format!("escalations@{p}.example"),
            None,
            Some("+41446681800"),
            None,
        )],
        user_facing_operational_contacts: vec![contact(
            &format!("support@{p}.example"),
            Some(&format!("{p} Support")),
            None,
            Some("en"),
        )],
        operational_support: Some(OperationalSupport::Windows(vec![
            window(
                "America/Los_Angeles",
                vec![
                    Weekday::Monday,
                    Weekday::Tuesday,
                    Weekday::Wednesday,
                    Weekday::Thursday,
                    Weekday::Friday,
                ],
                "08:00",
                "20:00",
            ),
            window("Europe/Zurich", vec![Weekday::Saturday], "22:00", "02:00"),
        ])),
    }
}

fn name(i: usize) -> ContactInfoName {
    ContactInfoName::new(
        PartnerId::parse(&format!("bench-{i}")).expect("partner"),
        Environment::Production,
    )
}

#[tokio::test(flavor = "current_thread")]
async fn the_cache_holds_no_more_memory_than_its_budget() {
    const PARTNERS: usize = 4000;
    const BUDGET: u64 = 1024 * 1024;

    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite:{}", dir.path().join("m.sqlite3").display());
    let inner = store::open(&url, &StoreOptions::default())
        .await
        .expect("open");
    for i in 0..PARTNERS {
        let update = Update {
            name: name(i),
            patch: fields(&format!("bench-{i}")),
            mask: FieldSet::all(),
            expected_etag: None,
            copied_from: None,
        };
        inner.update(&update, None, "test").await.expect("save");
    }

    // Warm the store's own lazily built state (statement cache, buffers,
    // SQLite's page cache, which grows with every page read), so that what
    // grows from here on is the cache.
    for i in 0..PARTNERS {
        inner.get_ready(&name(i)).await.expect("warm");
        inner
            .portal_user_emails(&name(i).partner)
            .await
            .expect("warm");
    }
    let cache = CachedStore::new(
        inner,
        &CacheOptions {
            max_bytes: BUDGET,
            ..Default::default()
        },
    );
    // The change feeds' fixed buffers are not the cache's entries.
    let before = live();

    // Far more partners than fit: the cache must evict down to its budget.
    for i in 0..PARTNERS {
        assert!(cache.ready(&name(i)).await.expect("get").is_some());
        cache
            .portal_user_emails_shared(&name(i).partner)
            .await
            .expect("users");
    }
    let weighed = cache.weighted_size();
    let held = u64::try_from(live() - before).expect("the cache holds memory");

    eprintln!(
        "{} entries: weighed {weighed}, held {held}",
        cache.entry_count()
    );
    assert!(
        weighed <= BUDGET,
        "weigher: {weighed} bytes over a {BUDGET}-byte budget"
    );
    assert!(
        weighed >= BUDGET / 2,
        "the cache should fill its budget, holds {weighed}"
    );
    // What the weigher claims must cover what the entries really cost
    // (within 10 %), and must not overstate it so much that the budget goes
    // unused.
    assert!(
        held as f64 <= BUDGET as f64 * 1.10,
        "the cache really holds {held} bytes for a {BUDGET}-byte budget (weigher says {weighed})"
    );
    assert!(
        held as f64 >= weighed as f64 * 0.6,
        "the weigher overstates: it says {weighed}, the heap holds {held}"
    );
}
