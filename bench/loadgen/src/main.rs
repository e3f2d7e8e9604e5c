//! Closed-loop gRPC load generator for `bench/run` (see `bench/README.md`).
//!
//! Unlike h2load, which can only repeat one fixed request body, it spreads
//! calls over `--partners` partners (uniformly by default; `--distribution
//! zipf --zipf-s 1.0` skews them like real traffic, with the popular partners
//! scattered over the ids; `--distribution one --partner K` repeats one, as
//! h2load does) and decodes every response, so
//! a call counts as a success only if it returned gRPC OK with the expected
//! content. It runs on one thread (`taskset` pins it to one core): every
//! connection is its own HTTP/2 connection, and `--streams` requests are in
//! flight on each at all times (closed loop: a stream sends its next request
//! as soon as the previous answer arrives).
//!
//! Modes (`--rpc`):
//! - `health|get|gate|resolve|update`: load for `--warmup` + `--duration`
//!   seconds; prints one `RESULT ...` line (requests, successes, failures,
//!   req/s, p50/p99/max latency) and `FAILURES code=... count=...` lines.
//! - `staleness`: `--addr A,B,C`; `--iterations` times, reads a random
//!   partner on B and C (so that their caches hold it), updates it on A, then
//!   polls B and C back to back until each returns the new etag; prints the
//!   p50/p99 of those delays.
//! - `warm`: one CheckOnboardingGate for every partner in order (which reads
//!   and caches its contact info and portal users), as fast as the server
//!   answers, for at most `--duration` seconds; prints how many, the time
//!   and the rate.
//! - `wait-serving`: polls `grpc.health.v1.Health/Check` every `--poll-ms`
//!   until SERVING; prints the time since `--since-ns` (Unix epoch ns).
//! - `fetch-get`, `bodies`, `check-body`: exact bytes for h2load and the
//!   minimal server (`partner-contacts-fixed-server`): see `raw.rs`.
//! - `sample`: draws `--iterations` partners from `--distribution`, calls
//!   nothing; prints the draw rate and the skew, and the misses no cache
//!   avoids: the share of the last quarter's draws that are a partner's
//!   first (`first_draws_last_quarter`), and with `--cache-entries K` the
//!   misses of the ideal cache of the K most popular (`top_k_miss`).
//! - `fault-steady`, `health-watch`, `fault-verify`, `overload`, `drain`:
//!   the fault test, `bench/faults`; see `faults/` and `bench/FAULTS.md`.
//!
//! Exit status (the fault modes: 0 when they ran; the script judges their
//! `RESULT` lines): 0 when every call succeeded, 2 when any failed (or nothing
//! was measured, or the server never became SERVING), 1 on a usage or
//! connection error.
mod faults;
mod partners;
mod raw;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use partner_contacts::pb;
use partners::{Distribution, Picker};
use pb::contacts_service_client::ContactsServiceClient;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const SERVICE_NAME: &str = "partnerportal.contacts.v1.ContactsService";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Rpc {
    /// grpc.health.v1.Health/Check (the framework's ceiling).
    Health,
    /// GetContacts of a random partner.
    Get,
    /// CheckOnboardingGate of a random partner (expects an open gate).
    Gate,
    /// ResolveRecipients(PURPOSE_PRODUCTION_ALERT) of a random partner.
    Resolve,
    /// UpdateContacts of a random partner: masked, unconditional update of
    /// technical_emergency_contacts.
    Update,
    /// Cross-replica staleness: update on the first --addr, poll the others.
    Staleness,
    /// Fill the server's caches: one CheckOnboardingGate per partner, 1..=N
    /// in order, --connections x --streams at a time, for at most --duration
    /// seconds.
    Warm,
    /// Wait until the server reports SERVING; print the time since --since-ns.
    WaitServing,
    /// Fault test: open-loop mixed load with request ids and deadlines,
    /// every call recorded to --calls.
    FaultSteady,
    /// Fault test: Health/Check every --poll-ms, transitions and latencies.
    HealthWatch,
    /// Fault test: acknowledged writes against the history, retries.
    FaultVerify,
    /// Fault test: --concurrency closed-loop calls against the call limit.
    Overload,
    /// Fault test: SIGTERM with calls in flight and a stream open.
    Drain,
    /// GetContacts of --partner once; its answer's protobuf bytes to --out.
    FetchGet,
    /// h2load request bodies for --partner into the directory --out.
    Bodies,
    /// Send the framed request --body to --path once; check the answer.
    CheckBody,
    /// Draw --iterations partners from --distribution (no calls).
    Sample,
}

#[derive(Parser, Debug)]
#[command(
    name = "partner-contacts-loadgen",
    about = "Closed-loop gRPC load generator for the partner-contacts benchmark"
)]
struct Args {
    /// host:port of the server; for `staleness`, a comma-separated list
    /// (updates go to the first, the others are polled).
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: String,
    #[arg(long, value_enum)]
    rpc: Rpc,
    /// Partners are `{prefix}1` .. `{prefix}N`, in `production`.
    #[arg(long, default_value_t = 1000)]
    partners: u64,
    #[arg(long, default_value = "bench-")]
    partner_prefix: String,
    /// HTTP/2 connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Requests in flight on each connection.
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// `staleness`: how many updates to follow.
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// `staleness`: give up on one replica after this long; `wait-serving`:
    /// give up after this long.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// `wait-serving`: the instant (ns since the Unix epoch) the server was
    /// started; default: when this process started.
    #[arg(long)]
    since_ns: Option<u64>,
    /// `wait-serving`: poll period.
    #[arg(long, default_value_t = 5)]
    poll_ms: u64,
    #[arg(long, default_value_t = 0x5eed)]
    seed: u64,
    /// How calls pick their partner among --partners.
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    distribution: Distribution,
    /// `--distribution zipf`: the exponent s (rank k has weight 1/k^s).
    #[arg(long, default_value_t = 1.0)]
    zipf_s: f64,
    /// `sample`: also print the share of misses an ideal static cache of
    /// this many entries (the most popular partners) could not avoid.
    #[arg(long)]
    cache_entries: Option<u64>,
    /// The partner of `--distribution one`, `fetch-get` and `bodies`.
    #[arg(long, default_value_t = 1)]
    partner: u64,
    /// `check-body`: a file holding one framed gRPC request, as h2load sends it.
    #[arg(long)]
    body: Option<std::path::PathBuf>,
    /// `check-body`: the method, e.g. /grpc.health.v1.Health/Check.
    #[arg(long)]
    path: Option<String>,
    #[command(flatten)]
    faults: faults::FaultArgs,
}

/// splitmix64: fast, good enough to pick partners uniformly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn partner(&mut self, n: u64) -> u64 {
        self.next() % n + 1
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

fn contact_info_name(prefix: &str, i: u64) -> String {
    format!("partners/{prefix}{i}/environments/production/contactInfo")
}

async fn connect(addr: &str, timeout: Duration) -> Result<Channel, String> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| format!("bad address {addr}: {e}"))?
        .tcp_nodelay(true)
        .connect_timeout(timeout)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
}

enum Failure {
    Status(tonic::Status),
    /// gRPC OK, but not the answer the benchmark data implies.
    Wrong(&'static str),
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        Self::Status(s)
    }
}

fn check(ok: bool, what: &'static str) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(Failure::Wrong(what))
    }
}

struct Clients {
    health: HealthClient<Channel>,
    contacts: ContactsServiceClient<Channel>,
}

impl Clients {
    fn new(channel: &Channel) -> Self {
        Self {
            health: HealthClient::new(channel.clone()),
            contacts: ContactsServiceClient::new(channel.clone()),
        }
    }
}

fn update_request(name: String, email: &str) -> pb::UpdateContactsRequest {
    pb::UpdateContactsRequest {
        contact_info: Some(pb::ContactInfo {
            name,
            technical_emergency_contacts: vec![pb::Contact {
                email: email.to_owned(),
                phone_number: "+16502530000".to_owned(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["technical_emergency_contacts".to_owned()],
        }),
        validate_only: false,
        request_id: String::new(),
    }
}

fn get_request(name: String) -> pb::GetContactsRequest {
    pb::GetContactsRequest {
        name,
        read_time: None,
    }
}

fn gate_request(name: String) -> pb::CheckOnboardingGateRequest {
    pb::CheckOnboardingGateRequest {
        name,
        integration_type: String::new(),
    }
}

/// Every loaded partner is complete, so its gate is open (with the etag it
/// was decided on).
fn gate_open(r: &pb::CheckOnboardingGateResponse) -> bool {
    r.open && !r.etag.is_empty()
}

fn alert_request(name: String) -> pb::ResolveRecipientsRequest {
    pb::ResolveRecipientsRequest {
        name,
        purpose: pb::Purpose::ProductionAlert as i32,
        at_time: None,
    }
}

/// Every loaded partner has alert contacts, so production alerts go to
/// them, with no fallback.
fn alerts_to_alert_contacts(r: &pb::ResolveRecipientsResponse) -> bool {
    r.recipients
        .first()
        .is_some_and(|x| x.field == "alert_contacts")
        && r.fallback.is_none()
}

/// One call, its response decoded and checked against the loaded data.
async fn one_call(
    rpc: Rpc,
    c: &mut Clients,
    prefix: &str,
    partner: u64,
    seq: u64,
) -> Result<(), Failure> {
    match rpc {
        Rpc::Health => {
            let r = c
                .health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?
                .into_inner();
            check(
                r.status == ServingStatus::Serving as i32,
                "health not SERVING",
            )
        }
        Rpc::Get => {
            let name = contact_info_name(prefix, partner);
            let r = c
                .contacts
                .get_contacts(get_request(name.clone()))
                .await?
                .into_inner();
            check(
                r.name == name && !r.etag.is_empty() && !r.technical_emergency_contacts.is_empty(),
                "GetContacts returned another or an incomplete resource",
            )
        }
        Rpc::Gate => {
            let r = c
                .contacts
                .check_onboarding_gate(gate_request(contact_info_name(prefix, partner)))
                .await?
                .into_inner();
            check(gate_open(&r), "gate closed for a complete partner")
        }
        Rpc::Resolve => {
            let r = c
                .contacts
                .resolve_recipients(alert_request(contact_info_name(prefix, partner)))
                .await?
                .into_inner();
            check(
                alerts_to_alert_contacts(&r),
                "production alert not resolved to the alert contacts",
            )
        }
        Rpc::Update => {
            let email = format!("pager-{seq}@{prefix}{partner}.example");
            let r = c
                .contacts
                .update_contacts(update_request(contact_info_name(prefix, partner), &email))
                .await?
                .into_inner();
            check(
                r.technical_emergency_contacts
                    .first()
                    .is_some_and(|x| x.email == email)
                    && !r.alert_contacts.is_empty(),
                "update did not return what was saved",
            )
        }
        Rpc::Staleness
        | Rpc::WaitServing
        | Rpc::Warm
        | Rpc::FaultSteady
        | Rpc::HealthWatch
        | Rpc::FaultVerify
        | Rpc::Overload
        | Rpc::Drain
        | Rpc::FetchGet
        | Rpc::Bodies
        | Rpc::CheckBody
        | Rpc::Sample => unreachable!("not a load mode"),
    }
}

#[derive(Default)]
struct Stats {
    /// Nanoseconds per measured request.
    latencies: Vec<u64>,
    ok: u64,
    failures: BTreeMap<String, u64>,
    first_failure: Option<String>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latencies.extend(other.latencies);
        self.ok += other.ok;
        for (k, v) in other.failures {
            *self.failures.entry(k).or_default() += v;
        }
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }

    fn record(&mut self, result: Result<(), Failure>) {
        match result {
            Ok(()) => self.ok += 1,
            Err(f) => self.record_failure(f),
        }
    }

    fn record_failure(&mut self, f: Failure) {
        let (key, text) = match f {
            Failure::Status(s) => (
                format!("{:?}", s.code()),
                format!("{:?}: {}", s.code(), s.message()),
            ),
            Failure::Wrong(what) => ("WrongAnswer".to_owned(), format!("WrongAnswer: {what}")),
        };
        *self.failures.entry(key).or_default() += 1;
        if self.first_failure.is_none() {
            self.first_failure = Some(text);
        }
    }

    /// The workers' stats, merged.
    async fn join(tasks: Vec<tokio::task::JoinHandle<Stats>>) -> Result<Stats, String> {
        let mut total = Stats::default();
        for t in tasks {
            total.merge(t.await.map_err(|e| format!("worker panicked: {e}"))?);
        }
        Ok(total)
    }

    fn print_failures(&self) {
        for (code, n) in &self.failures {
            println!("FAILURES code={code} count={n}");
        }
        if let Some(f) = &self.first_failure {
            eprintln!("loadgen: first failure: {f}");
        }
    }
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// `p50_ms=.. p99_ms=.. max_ms=..` of sorted latencies (ns): one format for
/// every `RESULT` line, which the scripts read by key.
fn p50_p99_max_ms(sorted: &[u64]) -> String {
    format!(
        "p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        ms(percentile(sorted, 50.0)),
        ms(percentile(sorted, 99.0)),
        ms(sorted.last().copied().unwrap_or(0)),
    )
}

async fn closed_loop(args: &Args) -> Result<bool, String> {
    if args.partners == 0 || args.connections == 0 || args.streams == 0 {
        return Err("--partners, --connections and --streams must be positive".to_owned());
    }
    let picker = Picker::new(args.distribution, args.partners, args.zipf_s, args.partner)?;
    let mut channels = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        channels.push(connect(&args.addr, Duration::from_secs(5)).await?);
    }
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for (c, channel) in channels.iter().enumerate() {
        for s in 0..args.streams {
            let worker = (c * args.streams + s) as u64;
            let mut clients = Clients::new(channel);
            let rpc = args.rpc;
            let prefix = args.partner_prefix.clone();
            let picker = picker.clone();
            let mut rng = Rng(args.seed ^ (worker.wrapping_mul(0x2545_F491_4F6C_DD1D)));
            tasks.push(tokio::spawn(async move {
                let mut stats = Stats {
                    latencies: Vec::with_capacity(1 << 16),
                    ..Default::default()
                };
                let mut seq = worker << 32;
                loop {
                    let started = Instant::now();
                    if started >= end {
                        break;
                    }
                    seq += 1;
                    let partner = picker.pick(&mut rng);
                    let result = one_call(rpc, &mut clients, &prefix, partner, seq).await;
                    if started < measure_from {
                        continue;
                    }
                    stats.latencies.push(started.elapsed().as_nanos() as u64);
                    stats.record(result);
                }
                stats
            }));
        }
    }
    let mut total = Stats::join(tasks).await?;
    let measured = end.saturating_duration_since(measure_from).as_secs_f64();
    total.latencies.sort_unstable();
    let requests = total.latencies.len() as u64;
    let failed: u64 = total.failures.values().sum();
    println!(
        "RESULT rpc={:?} connections={} streams={} partners={} distribution={} duration_s={:.3} requests={} ok={} failed={} rps={:.1} {}",
        args.rpc,
        args.connections,
        args.streams,
        args.partners,
        match args.distribution {
            Distribution::Uniform => "uniform".to_owned(),
            Distribution::Zipf => format!("zipf:{}", args.zipf_s),
            Distribution::One => format!("one:{}", args.partner),
        },
        measured,
        requests,
        total.ok,
        failed,
        requests as f64 / measured,
        p50_p99_max_ms(&total.latencies),
    );
    total.print_failures();
    Ok(failed == 0 && total.ok > 0)
}

async fn warm(args: &Args) -> Result<bool, String> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    let next = Arc::new(AtomicU64::new(1));
    let started = Instant::now();
    let stop_at = started + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let channel = connect(&args.addr, Duration::from_secs(5)).await?;
        for _ in 0..args.streams {
            let mut clients = Clients::new(&channel);
            let next = next.clone();
            let prefix = args.partner_prefix.clone();
            let partners = args.partners;
            tasks.push(tokio::spawn(async move {
                let mut stats = Stats::default();
                loop {
                    if Instant::now() >= stop_at {
                        break;
                    }
                    let partner = next.fetch_add(1, Ordering::Relaxed);
                    if partner > partners {
                        break;
                    }
                    stats.record(one_call(Rpc::Gate, &mut clients, &prefix, partner, 0).await);
                }
                stats
            }));
        }
    }
    let total = Stats::join(tasks).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let failed: u64 = total.failures.values().sum();
    println!(
        "RESULT rpc=Warm partners={} warmed={} ok={} failed={} seconds={:.1} rps={:.1}",
        args.partners,
        total.ok + failed,
        total.ok,
        failed,
        elapsed,
        (total.ok + failed) as f64 / elapsed,
    );
    total.print_failures();
    Ok(failed == 0)
}

async fn staleness(args: &Args) -> Result<bool, String> {
    let addrs: Vec<&str> = args.addr.split(',').filter(|a| !a.is_empty()).collect();
    if addrs.len() < 2 {
        return Err("staleness needs --addr WRITER,READER[,READER...]".to_owned());
    }
    let mut clients = Vec::new();
    for a in &addrs {
        clients.push(ContactsServiceClient::new(
            connect(a, Duration::from_secs(5)).await?,
        ));
    }
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut rng = Rng(args.seed ^ 0x57a1e);
    let mut samples: Vec<u64> = Vec::new();
    let (mut timeouts, mut errors, mut ryw_violations) = (0u64, 0u64, 0u64);
    let mut first_error: Option<String> = None;
    for it in 0..args.iterations {
        let partner = rng.partner(args.partners);
        let name = contact_info_name(&args.partner_prefix, partner);
        // The readers hold the current state in their caches: the case where
        // only invalidation can make them see the change.
        for c in clients.iter_mut().skip(1) {
            c.get_contacts(get_request(name.clone()))
                .await
                .map_err(|e| format!("priming read failed: {:?} {}", e.code(), e.message()))?;
        }
        let email = format!("pager-stale-{it}@{}{partner}.example", args.partner_prefix);
        let saved = clients[0]
            .update_contacts(update_request(name.clone(), &email))
            .await
            .map_err(|e| format!("update failed: {:?} {}", e.code(), e.message()))?
            .into_inner();
        let acked = Instant::now();
        let etag = saved.etag;
        let mut polls = Vec::new();
        for c in clients.iter().skip(1) {
            let mut c = c.clone();
            let name = name.clone();
            let etag = etag.clone();
            polls.push(tokio::spawn(async move {
                loop {
                    match c.get_contacts(get_request(name.clone())).await {
                        Ok(r) if r.get_ref().etag == etag => {
                            return Ok(Some(acked.elapsed().as_nanos() as u64));
                        }
                        Ok(_) => {}
                        Err(e) => return Err(format!("{:?}: {}", e.code(), e.message())),
                    }
                    if acked.elapsed() > timeout {
                        return Ok(None);
                    }
                }
            }));
        }
        for p in polls {
            match p.await.map_err(|e| format!("poller panicked: {e}"))? {
                Ok(Some(ns)) => samples.push(ns),
                Ok(None) => timeouts += 1,
                Err(e) => {
                    errors += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        // A replica always reads its own writes.
        let own = clients[0]
            .get_contacts(get_request(name.clone()))
            .await
            .map_err(|e| format!("own read failed: {:?} {}", e.code(), e.message()))?;
        if own.get_ref().etag != etag {
            ryw_violations += 1;
        }
    }
    samples.sort_unstable();
    println!(
        "RESULT rpc=Staleness replicas={} iterations={} samples={} {} timeouts={} errors={} ryw_violations={}",
        addrs.len(),
        args.iterations,
        samples.len(),
        p50_p99_max_ms(&samples),
        timeouts,
        errors,
        ryw_violations,
    );
    if let Some(e) = first_error {
        eprintln!("loadgen: first polling error: {e}");
    }
    Ok(timeouts == 0 && errors == 0 && ryw_violations == 0 && !samples.is_empty())
}

async fn wait_serving(args: &Args) -> Result<bool, String> {
    let since = args
        .since_ns
        .map(|ns| UNIX_EPOCH + Duration::from_nanos(ns))
        .unwrap_or_else(SystemTime::now);
    let deadline = Instant::now() + Duration::from_millis(args.timeout_ms);
    let poll = Duration::from_millis(args.poll_ms);
    let mut client: Option<HealthClient<Channel>> = None;
    loop {
        if client.is_none()
            && let Ok(ch) = connect(&args.addr, Duration::from_millis(200)).await
        {
            client = Some(HealthClient::new(ch));
        }
        if let Some(c) = client.as_mut() {
            match c
                .check(HealthCheckRequest {
                    service: SERVICE_NAME.to_owned(),
                })
                .await
            {
                Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {
                    let elapsed = SystemTime::now()
                        .duration_since(since)
                        .unwrap_or(Duration::ZERO);
                    println!(
                        "RESULT rpc=WaitServing serving_ms={:.1}",
                        elapsed.as_secs_f64() * 1e3
                    );
                    return Ok(true);
                }
                // NOT_SERVING, or NOT_FOUND before the status is registered.
                Ok(_) => {}
                Err(e) if e.code() == tonic::Code::Unavailable => client = None,
                Err(_) => {}
            }
        }
        if Instant::now() > deadline {
            eprintln!(
                "loadgen: {} not SERVING after {} ms",
                args.addr, args.timeout_ms
            );
            return Ok(false);
        }
        tokio::time::sleep(poll).await;
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(async {
        match args.rpc {
            Rpc::Staleness => staleness(&args).await,
            Rpc::WaitServing => wait_serving(&args).await,
            Rpc::Warm => warm(&args).await,
            Rpc::FaultSteady => faults::steady(&args).await,
            Rpc::HealthWatch => faults::health_watch(&args).await,
            Rpc::FaultVerify => faults::verify(&args).await,
            Rpc::Overload => faults::overload(&args).await,
            Rpc::Drain => faults::drain(&args).await,
            Rpc::FetchGet => raw::fetch_get(&args).await,
            Rpc::Bodies => raw::bodies(&args),
            Rpc::CheckBody => raw::check_body(&args).await,
            Rpc::Sample => raw::sample(&args),
            Rpc::Health | Rpc::Get | Rpc::Gate | Rpc::Resolve | Rpc::Update => {
                closed_loop(&args).await
            }
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(1)
        }
    }
}
