//! The events relay: publishes the outbox to NATS JetStream, at least once,
//! each partner's events in their order, whichever replicas run it.
//!
//! - **At least once, seen once.** An event leaves the outbox only after
//!   JetStream acknowledged it, and it is published with its id as the
//!   `Nats-Msg-Id`, so a redelivery (a relay that died between the ack and
//!   recording it, or an ack lost in a broker outage) is dropped by the
//!   stream's duplicate window.
//! - **Order per partner.** A partner's events are published one at a time,
//!   each after the previous one's ack, by one replica at a time: the one
//!   holding the partner's lease in the database (`FOR UPDATE SKIP LOCKED`
//!   among replicas leasing at once). A replica publishes only while less
//!   than half its lease has passed since it was taken or renewed, then
//!   renews it with the progress it records; a replica that died loses the
//!   partner when its lease ends, well inside the duplicate window.
//! - **Outages.** A broker or database that fails makes the relay wait
//!   (exponential backoff with jitter, up to 30 s) and try again; the events
//!   wait in the outbox meanwhile, and `lag` says for how long.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, Context, context::PublishErrorKind, message::PublishMessage};
use backon::{BackoffBuilder, ExponentialBuilder};

use crate::domain::{PartnerId, now_micros};
use crate::store::{DynStore, StoredEvent};

/// Partners leased per round: each is published to the end before the next.
const PARTNERS_PER_ROUND: usize = 16;
/// Events read from the outbox at a time.
const EVENTS_PER_READ: usize = 100;
/// How often published events older than the retention period are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);
/// How often the lag is measured.
const LAG_INTERVAL: Duration = Duration::from_secs(1);

/// Where and how the relay publishes.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// `nats://host:port` (credentials in the URL are allowed).
    pub url: String,
    /// The JetStream stream, created when missing (subjects
    /// `{subject_prefix}.>`, a 2-minute duplicate window).
    pub stream: String,
    /// An event of type `contacts.changed` is published on
    /// `{subject_prefix}.contacts.changed`.
    pub subject_prefix: String,
    /// Published events are deleted from the outbox after this.
    pub retention: Duration,
    /// How long a replica holds a partner without renewing.
    pub lease: Duration,
    /// How often an idle relay looks for new events.
    pub poll: Duration,
    /// How long one publish may wait for JetStream's ack.
    pub publish_timeout: Duration,
}

impl RelayOptions {
    pub fn new(url: String) -> Self {
        Self {
            url,
            stream: "PARTNER_CONTACTS_EVENTS".to_owned(),
            subject_prefix: "partner_contacts.events".to_owned(),
            retention: Duration::from_secs(7 * 24 * 3600),
            lease: Duration::from_secs(15),
            poll: Duration::from_millis(250),
            publish_timeout: Duration::from_secs(5),
        }
    }

    fn subject(&self, event: &StoredEvent) -> String {
        format!("{}.{}", self.subject_prefix, event.event_type)
    }
}

/// What the relay has done, read by the metrics at each scrape.
#[derive(Debug, Default)]
pub struct RelayStats {
    pub published: AtomicU64,
    /// Publishes JetStream acknowledged as duplicates (already in the
    /// stream): redeliveries the stream dropped.
    pub duplicates: AtomicU64,
    /// Rounds that failed (broker or database), each followed by a backoff.
    pub failures: AtomicU64,
    /// Microseconds since the oldest event not yet published was saved, at
    /// the last look; 0 when every event is published.
    pub lag_micros: AtomicU64,
    /// Whether the relay has a connection to the broker.
    pub connected: AtomicBool,
}

/// Starts the relay; it runs until `stop` turns true.
pub fn spawn(
    store: DynStore,
    options: RelayOptions,
    stats: Arc<RelayStats>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(measure_lag(store.clone(), stats.clone(), stop.clone()));
    tokio::spawn(Relay::new(store, options, stats).run(stop))
}

/// The lag, looked at every second on its own: the relay may be waiting on
/// a publish for as long as the broker is away.
async fn measure_lag(
    store: DynStore,
    stats: Arc<RelayStats>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    while !*stop.borrow() {
        let lag = match store.oldest_unpublished_event().await {
            Ok(None) => Some(0),
            Ok(Some(oldest)) => Some(
                (now_micros() - oldest)
                    .num_microseconds()
                    .and_then(|us| u64::try_from(us).ok())
                    .unwrap_or(0),
            ),
            // Unknown (the database is away): keep the last value rather
            // than claim there is no lag.
            Err(_) => None,
        };
        if let Some(lag) = lag {
            stats.lag_micros.store(lag, Ordering::Relaxed);
        }
        tokio::select! {
            () = tokio::time::sleep(LAG_INTERVAL) => {}
            _ = stop.changed() => {}
        }
    }
}

struct Relay {
    store: DynStore,
    options: RelayOptions,
    stats: Arc<RelayStats>,
    /// This replica's name in the leases: unique per process start.
    owner: String,
    /// The broker's JetStream once connected (it holds the client, which
    /// reconnects by itself).
    jetstream: Option<Context>,
    /// Set when a publish found no stream: `jetstream()` creates it again.
    stream_lost: AtomicBool,
}

impl Relay {
    fn new(store: DynStore, options: RelayOptions, stats: Arc<RelayStats>) -> Self {
        Self {
            store,
            options,
            stats,
            owner: format!("relay-{}", uuid::Uuid::new_v4().simple()),
            jetstream: None,
            stream_lost: AtomicBool::new(false),
        }
    }

    async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        tracing::info!(owner = %self.owner, stream = %self.options.stream, "events relay started");
        let backoff = || {
            ExponentialBuilder::default()
                .with_jitter()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(30))
                .without_max_times()
                .build()
        };
        let mut delays = backoff();
        let mut pruned = Instant::now();
        while !*stop.borrow() {
            if pruned.elapsed() >= PRUNE_INTERVAL {
                pruned = Instant::now();
                self.prune().await;
            }
            let wait = match self.round().await {
                Ok(sent) => {
                    delays = backoff();
                    if sent > 0 {
                        continue;
                    }
                    self.options.poll
                }
                Err(e) => {
                    self.stats.failures.fetch_add(1, Ordering::Relaxed);
                    let delay = delays.next().unwrap_or(Duration::from_secs(30));
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis(), "events relay: publishing failed; will retry");
                    delay
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        tracing::info!("events relay stopped");
    }

    /// The broker's JetStream, connecting and creating the stream first when
    /// needed. The client reconnects by itself after a broker outage.
    async fn jetstream(&mut self) -> Result<Context, String> {
        if let Some(js) = self.jetstream.clone() {
            if self.stream_lost.swap(false, Ordering::Relaxed) {
                self.ensure_stream(&js).await?;
            }
            return Ok(js);
        }
        // The client reconnects by itself; its events keep the gauge true
        // to the connection even while a publish waits out an outage.
        let stats = self.stats.clone();
        let client = async_nats::ConnectOptions::new()
            .name("partner-contacts events relay")
            .event_callback(move |event| {
                let stats = stats.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            stats.connected.store(true, Ordering::Relaxed);
                        }
                        async_nats::Event::Disconnected | async_nats::Event::Closed => {
                            stats.connected.store(false, Ordering::Relaxed);
                            tracing::warn!("events relay: disconnected from NATS; reconnecting");
                        }
                        _ => {}
                    }
                }
            })
            .connection_timeout(self.options.publish_timeout)
            .request_timeout(Some(self.options.publish_timeout))
            .connect(self.options.url.as_str())
            .await
            .map_err(|e| format!("cannot connect to NATS: {e}"))?;
        let js = jetstream::new(client);
        self.jetstream = Some(js.clone());
        self.ensure_stream(&js).await?;
        self.stats.connected.store(true, Ordering::Relaxed);
        Ok(js)
    }

    async fn ensure_stream(&self, js: &Context) -> Result<(), String> {
        js.get_or_create_stream(jetstream::stream::Config {
            name: self.options.stream.clone(),
            subjects: vec![format!("{}.>", self.options.subject_prefix)],
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map(drop)
        .map_err(|e| {
            // Tried again on the next round.
            self.stream_lost.store(true, Ordering::Relaxed);
            format!("cannot find or create stream {}: {e}", self.options.stream)
        })
    }

    /// Leases partners with events to publish and publishes them; returns
    /// how many events were published.
    async fn round(&mut self) -> Result<u64, String> {
        let js = self.jetstream().await?;
        let leased_at = Instant::now();
        let partners = self
            .store
            .lease_event_partners(&self.owner, self.options.lease, PARTNERS_PER_ROUND)
            .await
            .map_err(|e| format!("cannot lease partners: {e}"))?;
        let mut sent = 0;
        let mut failed = None;
        for (partner, published) in &partners {
            if failed.is_none() {
                match self
                    .publish_partner(&js, partner, *published, leased_at)
                    .await
                {
                    Ok(n) => {
                        sent += n;
                        continue;
                    }
                    Err(e) => failed = Some(e),
                }
            }
            // Another replica (or this one, later) may take these at once.
            let _ = self.store.release_event_partner(partner, &self.owner).await;
        }
        failed.map_or(Ok(sent), Err)
    }

    /// Publishes `partner`'s events after `published`, in order, while the
    /// lease taken at `renewed` lasts and is renewed.
    async fn publish_partner(
        &self,
        js: &Context,
        partner: &PartnerId,
        mut published: i64,
        mut renewed: Instant,
    ) -> Result<u64, String> {
        let mut sent = 0;
        loop {
            let batch = self
                .store
                .list_events(partner, published, EVENTS_PER_READ)
                .await
                .map_err(|e| format!("cannot read events: {e}"))?;
            if batch.is_empty() {
                self.store
                    .release_event_partner(partner, &self.owner)
                    .await
                    .map_err(|e| format!("cannot release a partner: {e}"))?;
                return Ok(sent);
            }
            let mut through = published;
            let mut failed = None;
            for event in &batch {
                if renewed.elapsed() >= self.options.lease / 2 {
                    break;
                }
                match self.publish(js, partner, event).await {
                    Ok(()) => {
                        through = event.sequence;
                        sent += 1;
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            // Recorded before anything else: what was acknowledged stays
            // published whatever happens next. Also renews the lease.
            let renewing = Instant::now();
            let held = self
                .store
                .mark_events_published(partner, &self.owner, through, self.options.lease)
                .await
                .map_err(|e| format!("cannot record published events: {e}"))?;
            if let Some(e) = failed {
                return Err(e);
            }
            if !held {
                // Another replica took the partner over; it goes on from
                // what was recorded, and the stream drops what it resends.
                return Ok(sent);
            }
            renewed = renewing;
            published = through;
        }
    }

    async fn publish(
        &self,
        js: &Context,
        partner: &PartnerId,
        event: &StoredEvent,
    ) -> Result<(), String> {
        let message = PublishMessage::build()
            .payload(event.event.clone().into())
            .message_id(event.id.hyphenated().to_string())
            .header("Partner-Contacts-Partner", partner.as_str())
            .header(
                "Partner-Contacts-Sequence",
                event.sequence.to_string().as_str(),
            )
            .header(
                "Content-Type",
                "application/protobuf; proto=partnerportal.contacts.v1.Event",
            );
        let acked = tokio::time::timeout(self.options.publish_timeout, async {
            js.send_publish(self.options.subject(event), message)
                .await?
                .await
        })
        .await;
        match acked {
            Ok(Ok(ack)) => {
                self.stats.published.fetch_add(1, Ordering::Relaxed);
                if ack.duplicate {
                    self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
            Ok(Err(e)) => {
                if matches!(e.kind(), PublishErrorKind::StreamNotFound) {
                    // Deleted under us (or never there: no stream takes the
                    // subject): create it again on the next round.
                    tracing::warn!(stream = %self.options.stream, "events relay: no stream takes the events; recreating it");
                    self.stream_lost.store(true, Ordering::Relaxed);
                }
                Err(format!("publish failed: {e}"))
            }
            Err(_) => Err("publish not acknowledged in time".to_owned()),
        }
    }

    async fn prune(&self) {
        let Some(before) = chrono::Duration::from_std(self.options.retention)
            .ok()
            .and_then(|d| now_micros().checked_sub_signed(d))
        else {
            return;
        };
        match self.store.prune_events(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "published events past retention deleted"),
            Err(e) => tracing::warn!(error = %e, "cannot prune published events"),
        }
    }
}
