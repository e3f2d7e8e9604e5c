//! The events relay against a real NATS JetStream (a `nats-server -js` of
//! the test's own, on a free port, so it can be stopped): every event
//! published once, in each partner's order, by one relay or two replicas'
//! at once, through a broker outage; its lag in the metrics.
use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use partner_contacts::domain::{ContactFields, Environment, PartnerId};
use partner_contacts::pb;
use partner_contacts::relay::{self, RelayOptions, RelayStats};
use partner_contacts::store::DynStore;
use prost::Message;

use crate::common::{self, Backend};
use crate::on_both_backends;
use crate::store_scenarios::{contact, name, replace_all};

/// A JetStream-enabled NATS server of this test's, stoppable and restartable
/// on the same port with the same storage.
struct Nats {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Nats {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut nats = Self {
            port,
            dir: tempfile::tempdir().expect("dir"),
            child: None,
        };
        nats.restart().await;
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) {
        let binary = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("nats-server");
        let child = Command::new(binary)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start nats-server ({e}); install it: apt-get install nats-server")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

fn options(url: String) -> RelayOptions {
    RelayOptions {
        poll: Duration::from_millis(50),
        publish_timeout: Duration::from_secs(2),
        ..RelayOptions::new(url)
    }
}

struct Running {
    stats: Arc<RelayStats>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start_relay(store: &DynStore, url: String) -> Running {
    let stats = Arc::new(RelayStats::default());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = relay::spawn(store.clone(), options(url), stats.clone(), stopped);
    Running { stats, stop, task }
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// A save of `partner`'s sandbox that moves its pager: one event.
async fn move_pager(store: &DynStore, partner: &str, i: usize) {
    let fields = ContactFields {
        technical_emergency_contacts: vec![contact(&format!("pager-{i}@{partner}.example"))],
        ..ContactFields::default()
    };
    store
        .update(
            &replace_all(&name(partner, Environment::Sandbox), fields),
            None,
            "relay-test",
        )
        .await
        .expect("save");
}

/// Every event in the outbox, by partner, in sequence order: (id, bytes).
async fn outbox(store: &DynStore, partners: &[&str]) -> BTreeMap<String, Vec<(String, Vec<u8>)>> {
    let mut out = BTreeMap::new();
    for p in partners {
        let id = PartnerId::parse(p).expect("partner");
        let events = store.list_events(&id, 0, 10_000).await.expect("events");
        out.insert(
            (*p).to_owned(),
            events
                .into_iter()
                .map(|e| (e.id.hyphenated().to_string(), e.event))
                .collect(),
        );
    }
    out
}

async fn until_all_published(store: &DynStore, within: Duration) {
    let deadline = Instant::now() + within;
    while store
        .oldest_unpublished_event()
        .await
        .expect("oldest")
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "events still unpublished after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stream's messages, checked one by one (subject, message id, headers,
/// payload), by partner in stream order: (id, bytes).
async fn stream(url: &str) -> BTreeMap<String, Vec<(String, Vec<u8>)>> {
    let client = async_nats::connect(url).await.expect("connect");
    let js = jetstream::new(client);
    let mut stream = js
        .get_stream("PARTNER_CONTACTS_EVENTS")
        .await
        .expect("the relay created the stream");
    let state = stream.info().await.expect("info").state.clone();
    let mut out: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    if state.messages == 0 {
        return out;
    }
    for seq in state.first_sequence..=state.last_sequence {
        let m = stream.get_raw_message(seq).await.expect("message");
        let event = pb::Event::decode(m.payload.as_ref()).expect("an Event");
        assert_eq!(
            m.subject.as_str(),
            format!("partner_contacts.events.{}", event.r#type)
        );
        let header = |h: &str| {
            m.headers
                .get(h)
                .map(|v| v.as_str().to_owned())
                .unwrap_or_else(|| panic!("no {h} header"))
        };
        let (partner, id) = event
            .name
            .strip_prefix("partners/")
            .and_then(|rest| rest.split_once("/events/"))
            .expect("an event name");
        assert_eq!(header("Nats-Msg-Id"), id);
        assert_eq!(header("Partner-Contacts-Partner"), partner);
        assert_eq!(
            header("Partner-Contacts-Sequence"),
            event.sequence.to_string()
        );
        out.entry(partner.to_owned())
            .or_default()
            .push((id.to_owned(), m.payload.to_vec()));
    }
    out
}

/// What was published is exactly the outbox: each event once, each
/// partner's in its order, byte for byte.
async fn assert_published_exactly(store: &DynStore, url: &str, partners: &[&str]) {
    let saved = outbox(store, partners).await;
    let published = stream(url).await;
    let ids: Vec<&String> = published.values().flatten().map(|(id, _)| id).collect();
    assert_eq!(
        ids.len(),
        ids.iter().collect::<HashSet<_>>().len(),
        "an event was published twice"
    );
    assert_eq!(published, saved, "the stream is not the outbox, in order");
}

async fn publishes_every_event_once_in_partner_order(backend: Backend) {
    let nats = Nats::start().await;
    let t = common::store(backend).await;
    let partners = ["p1", "p2", "p3"];
    for i in 0..5 {
        for p in partners {
            move_pager(&t.store, p, i).await;
        }
    }
    let relay = start_relay(&t.store, nats.url());
    // Events saved while the relay runs follow the first ones.
    for i in 5..10 {
        for p in partners {
            move_pager(&t.store, p, i).await;
        }
    }
    until_all_published(&t.store, Duration::from_secs(20)).await;
    assert_eq!(relay.stats.published.load(Ordering::Relaxed), 30);
    assert_eq!(relay.stats.duplicates.load(Ordering::Relaxed), 0);
    assert!(relay.stats.connected.load(Ordering::Relaxed));
    relay.stop().await;
    assert_published_exactly(&t.store, &nats.url(), &partners).await;
}

/// Two replicas, each saving and each relaying, on one database.
async fn two_replicas_relaying_publish_each_event_once() {
    let nats = Nats::start().await;
    let a = common::store(Backend::Postgres).await;
    let b = a.another_replica().await;
    let relays = [
        start_relay(&a.store, nats.url()),
        start_relay(&b.store, nats.url()),
    ];
    let partners = ["p1", "p2", "p3", "p4"];
    let mut writers = Vec::new();
    for (k, store) in [a.store.clone(), b.store.clone()].into_iter().enumerate() {
        writers.push(tokio::spawn(async move {
            for i in 0..15 {
                for p in ["p1", "p2", "p3", "p4"] {
                    move_pager(&store, p, k * 100 + i).await;
                }
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    until_all_published(&a.store, Duration::from_secs(30)).await;
    let published: u64 = relays
        .iter()
        .map(|r| r.stats.published.load(Ordering::Relaxed))
        .sum();
    let duplicates: u64 = relays
        .iter()
        .map(|r| r.stats.duplicates.load(Ordering::Relaxed))
        .sum();
    assert_eq!((published, duplicates), (120, 0), "each event sent once");
    for r in relays {
        r.stop().await;
    }
    assert_published_exactly(&a.store, &nats.url(), &partners).await;
}

/// The broker goes away mid-stream and comes back: nothing is lost,
/// nothing is in the stream twice, each partner's order holds, and the lag
/// shows meanwhile.
async fn a_broker_outage_loses_nothing() {
    let mut nats = Nats::start().await;
    let t = common::store(Backend::Postgres).await;
    let relay = start_relay(&t.store, nats.url());
    let partners = ["p1", "p2"];
    for i in 0..5 {
        for p in partners {
            move_pager(&t.store, p, i).await;
        }
    }
    until_all_published(&t.store, Duration::from_secs(20)).await;

    nats.stop();
    for i in 5..15 {
        for p in partners {
            move_pager(&t.store, p, i).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while relay.stats.lag_micros.load(Ordering::Relaxed) == 0
        || relay.stats.connected.load(Ordering::Relaxed)
    {
        assert!(
            Instant::now() < deadline,
            "the outage shows neither as lag nor as a lost connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        t.store
            .oldest_unpublished_event()
            .await
            .expect("oldest")
            .is_some(),
        "events wait in the outbox"
    );

    nats.restart().await;
    until_all_published(&t.store, Duration::from_secs(60)).await;
    relay.stop().await;
    assert_published_exactly(&t.store, &nats.url(), &partners).await;
}

/// With the broker unreachable, the lag is in the metrics.
async fn the_relay_lag_is_in_the_metrics() {
    use partner_contacts::server::ServerSettings;
    use partner_contacts::telemetry::{self, Metrics};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let metrics = Arc::new(Metrics::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(telemetry::metrics::serve(
        listener,
        metrics.clone(),
        std::future::pending(),
    ));
    let server = common::TestServer::start_configured(
        common::store(Backend::Sqlite).await,
        ServerSettings {
            metrics: Some(metrics),
            events: Some(options(format!("nats://127.0.0.1:{nowhere}"))),
            ..common::dev_settings()
        },
    )
    .await;
    move_pager(&server.store.store, "acme", 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
            .await
            .expect("request");
        let mut body = String::new();
        conn.read_to_string(&mut body).await.expect("response");
        // A sample may be missing while the server is still starting.
        let value = |name: &str| -> Option<f64> {
            body.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
                .and_then(|v| v.trim().parse().ok())
        };
        if value("partner_contacts_events_relay_lag_seconds").is_some_and(|v| v > 0.0)
            && value("partner_contacts_events_relay_failures_total").is_some_and(|v| v > 0.0)
        {
            assert_eq!(value("partner_contacts_events_broker_connected"), Some(0.0));
            assert_eq!(value("partner_contacts_events_published_total"), Some(0.0));
            break;
        }
        assert!(Instant::now() < deadline, "no lag measured:\n{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_backends!(publishes_every_event_once_in_partner_order);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_relaying() {
    two_replicas_relaying_publish_each_event_once().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage() {
    a_broker_outage_loses_nothing().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_in_metrics() {
    the_relay_lag_is_in_the_metrics().await;
}

/// The README's consumer (`examples/events/consumer.py`, NATS JetStream from
/// Python, packages from PyPI into a virtualenv under `target/`) reads what
/// the relay published, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_consumer_reads_the_events() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join("target/events-venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 -m venv");
        assert!(made.success(), "cannot make {venv:?}");
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "-r"])
            .arg(root.join("examples/events/requirements.txt"))
            .status()
            .expect("pip");
        assert!(installed.success(), "pip install failed");
    }

    let nats = Nats::start().await;
    let t = common::store(Backend::Sqlite).await;
    for i in 0..3 {
        move_pager(&t.store, "acme", i).await;
    }
    let relay = start_relay(&t.store, nats.url());
    until_all_published(&t.store, Duration::from_secs(20)).await;
    relay.stop().await;

    let consumer = root.join("examples/events/consumer.py");
    let url = nats.url();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(&python)
            .arg(consumer)
            .args(["--url", &url, "--count", "3", "--idle-timeout", "20"])
            .output()
    })
    .await
    .expect("join")
    .expect("run the consumer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "consumer failed: {stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let saved = outbox(&t.store, &["acme"]).await;
    let ids: Vec<&str> = saved["acme"].iter().map(|(id, _)| id.as_str()).collect();
    let read: Vec<&str> = lines
        .iter()
        .map(|l| l["msg_id"].as_str().expect("msg_id"))
        .collect();
    assert_eq!(read, ids, "{stderr}");
    assert_eq!(
        lines[2]["event"]["contacts_changed"]["recipients"][1]["email"],
        "pager-2@acme.example"
    );
    assert_eq!(lines[2]["event"]["type"], "contacts.changed");
}
