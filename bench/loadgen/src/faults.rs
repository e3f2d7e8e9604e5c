//! Modes for the fault test, `bench/faults` (see `bench/FAULTS.md`).
//!
//! - `fault-steady`: open-loop mixed load for `--duration` seconds:
//!   `--write-rps` UpdateContacts (each with a fresh `request_id` and a
//!   value of its own) and `--read-rps` reads (GetContacts,
//!   CheckOnboardingGate, ResolveRecipients in turn), every call with a
//!   `--deadline-ms` grpc-timeout. Every call goes to `--calls` (TSV), and
//!   `RESULT` lines count them by RPC and gRPC code.
//! - `health-watch`: Health/Check every `--poll-ms` on its own connection
//!   for `--duration` seconds, each bounded by `--deadline-ms`; prints
//!   `TRANSITION` lines and a `RESULT` with latency percentiles; every
//!   check goes to `--out`.
//! - `fault-verify`: reads `--calls` back: time from `--pg-ready-ns` to the
//!   first acknowledged write, every acknowledged write found in the
//!   revision history (ListContactInfoRevisions) with its value and etag,
//!   failed writes that were saved anyway, and `--retries` retries of
//!   acknowledged and failed writes with the same `request_id`.
//! - `overload`: `--concurrency` closed-loop workers over `--connections`
//!   connections (UpdateContacts, every `--read-every`th call a
//!   GetContacts) for `--duration` seconds; counts by code, shed fraction,
//!   latency of the admitted calls.
//! - `drain`: the SIGTERM drain of `--server-pid`: a WatchContacts stream
//!   on `--watch-partner`, `--in-flight` UpdateContacts on
//!   `--lock-partner` (whose row `bench/faults` holds locked), SIGTERM
//!   `--term-after-ms` after they start, `COMMIT` into `--release-fifo`
//!   `--release-after-ms` after SIGTERM; what health, new calls, the
//!   stream and the calls saw, and when the process exited.
//!
//! Codes are gRPC's canonical names, plus `NO_ANSWER` (nothing 1 s past
//! the deadline), `WRONG_ANSWER` (OK with the wrong content) and
//! `CLIENT_DEADLINE` (tonic's client timer fired before the server's answer
//! came). The bash script judges the `RESULT` lines; exit status 1 means the mode
//! itself could not run (usage, connection), 0 otherwise.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::task::JoinSet;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use crate::pb::contacts_service_client::ContactsServiceClient;
use crate::{
    Args, Rng, SERVICE_NAME, connect, contact_info_name, ms, pb, percentile, update_request,
};

#[derive(clap::Args, Debug)]
pub struct FaultArgs {
    /// fault-steady: UpdateContacts per second (open loop).
    #[arg(long, default_value_t = 200.0)]
    pub write_rps: f64,
    /// fault-steady: reads per second (open loop), GetContacts,
    /// CheckOnboardingGate and ResolveRecipients in turn.
    #[arg(long, default_value_t = 300.0)]
    pub read_rps: f64,
    /// Deadline (grpc-timeout) of every call; health-watch: of every check.
    #[arg(long, default_value_t = 2000)]
    pub deadline_ms: u64,
    /// fault-steady: file to write every call to (TSV); fault-verify: to read.
    #[arg(long)]
    pub calls: Option<PathBuf>,
    /// fault-verify: when `pg_ctlcluster stop` had returned (ns since the epoch).
    #[arg(long)]
    pub pg_down_ns: Option<u64>,
    /// fault-verify: when `pg_ctlcluster start` was run.
    #[arg(long)]
    pub pg_start_ns: Option<u64>,
    /// fault-verify: when PostgreSQL accepted connections again (pg_isready).
    #[arg(long)]
    pub pg_ready_ns: Option<u64>,
    /// fault-verify: acknowledged writes to retry (and half as many failed
    /// ones that were saved, and as many that were not).
    #[arg(long, default_value_t = 100)]
    pub retries: usize,
    /// fault-steady, health-watch: stop as soon as this file exists
    /// (`--duration` is then only an upper bound).
    #[arg(long)]
    pub stop_file: Option<PathBuf>,
    /// health-watch: every check; drain: the request ids of the calls.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// overload: calls in flight (closed loop).
    #[arg(long, default_value_t = 320)]
    pub concurrency: usize,
    /// overload: every Nth call is a GetContacts (0: updates only).
    #[arg(long, default_value_t = 4)]
    pub read_every: u64,
    /// drain: the server process to send SIGTERM to.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// drain: UpdateContacts in flight on the locked partner at SIGTERM.
    #[arg(long, default_value_t = 50)]
    pub in_flight: usize,
    #[arg(long, default_value_t = 1)]
    pub lock_partner: u64,
    #[arg(long, default_value_t = 2)]
    pub watch_partner: u64,
    /// drain: URL psql uses to watch pg_stat_activity.
    #[arg(long)]
    pub pg_url: Option<String>,
    /// drain: the database whose lock waiters are counted.
    #[arg(long, default_value = "pcfaults")]
    pub pg_database: String,
    #[arg(long, default_value_t = 500)]
    pub term_after_ms: u64,
    #[arg(long, default_value_t = 500)]
    pub release_after_ms: u64,
    /// drain: the fifo the lock-holding psql reads; `COMMIT;` releases it.
    #[arg(long)]
    pub release_fifo: Option<PathBuf>,
    /// drain: a health check sent this soon after SIGTERM may still say
    /// SERVING (the signal reaches the server's runtime asynchronously).
    #[arg(long, default_value_t = 10)]
    pub serving_tolerance_ms: u64,
    /// drain: the server's --shutdown-grace-seconds (how long to wait for it).
    #[arg(long, default_value_t = 10.0)]
    pub grace_seconds: f64,
}

/// How long past its deadline a call may take before it counts as
/// `NO_ANSWER` (the server promised to end it at the deadline).
const PAST_DEADLINE: Duration = Duration::from_secs(1);

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The canonical gRPC name of a code (as in the spec, not tonic's Debug).
pub fn code_name(c: Code) -> &'static str {
    match c {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// No answer within the deadline plus [`PAST_DEADLINE`].
const NO_ANSWER: &str = "NO_ANSWER";
/// The deadline passed at the client before the server's answer arrived:
/// tonic's client runs its own timer for the `grpc-timeout` it sends and
/// reports CANCELLED "Timeout expired" when that fires first (a gRPC client
/// of another language says DEADLINE_EXCEEDED). The server's own count of
/// the call is in its metrics; `bench/faults` compares the two.
const CLIENT_DEADLINE: &str = "CLIENT_DEADLINE";
/// gRPC OK, but not the content the data implies.
const WRONG_ANSWER: &str = "WRONG_ANSWER";

fn with_deadline<T>(message: T, deadline: Duration) -> Request<T> {
    let mut r = Request::new(message);
    r.set_timeout(deadline);
    r
}

/// Awaits a call for at most its deadline plus [`PAST_DEADLINE`]; errors
/// are (code name, message, status).
async fn bounded<T>(
    deadline: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, (&'static str, String, Option<Status>)> {
    let started = Instant::now();
    match tokio::time::timeout(deadline + PAST_DEADLINE, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s))
            if s.code() == Code::Cancelled
                && s.message() == "Timeout expired"
                && started.elapsed() >= deadline =>
        {
            Err((CLIENT_DEADLINE, s.message().to_owned(), Some(s)))
        }
        Ok(Err(s)) => Err((code_name(s.code()), s.message().to_owned(), Some(s))),
        Err(_) => Err((
            NO_ANSWER,
            format!(
                "no answer {} ms after the deadline",
                PAST_DEADLINE.as_millis()
            ),
            None,
        )),
    }
}

/// The UpdateContacts of the fault test: masked update of
/// technical_emergency_contacts to `email`, with `request_id`. A retry
/// builds the very same request.
fn fault_update(
    prefix: &str,
    partner: u64,
    email: &str,
    request_id: &str,
) -> pb::UpdateContactsRequest {
    let mut r = update_request(contact_info_name(prefix, partner), email);
    r.request_id = request_id.to_owned();
    r
}

fn first_email(ci: &pb::ContactInfo) -> &str {
    ci.technical_emergency_contacts
        .first()
        .map_or("", |c| c.email.as_str())
}

/// One call of the steady load.
#[derive(Clone, Debug)]
struct Call {
    start_ns: u64,
    end_ns: u64,
    rpc: String,
    partner: u64,
    code: String,
    request_id: String,
    value: String,
    etag: String,
}

impl Call {
    fn tsv(&self) -> String {
        let dash = |s: &str| {
            if s.is_empty() {
                "-".to_owned()
            } else {
                s.to_owned()
            }
        };
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            self.start_ns,
            self.end_ns,
            self.rpc,
            self.partner,
            self.code,
            dash(&self.request_id),
            dash(&self.value),
            dash(&self.etag)
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 8 {
            return None;
        }
        let undash = |s: &str| {
            if s == "-" {
                String::new()
            } else {
                s.to_owned()
            }
        };
        Some(Self {
            start_ns: f[0].parse().ok()?,
            end_ns: f[1].parse().ok()?,
            rpc: f[2].to_owned(),
            partner: f[3].parse().ok()?,
            code: f[4].to_owned(),
            request_id: undash(f[5]),
            value: undash(f[6]),
            etag: undash(f[7]),
        })
    }

    fn latency_ns(&self) -> u64 {
        self.end_ns.saturating_sub(self.start_ns)
    }
}

/// The first message seen per (RPC, code), for the logs.
type Samples = Arc<Mutex<BTreeMap<(String, String), String>>>;

fn sample(samples: &Samples, rpc: &str, code: &str, message: &str) {
    if let Ok(mut s) = samples.lock() {
        s.entry((rpc.to_owned(), code.to_owned()))
            .or_insert_with(|| message.to_owned());
    }
}

fn print_samples(samples: &Samples) {
    if let Ok(s) = samples.lock() {
        for ((rpc, code), msg) in s.iter() {
            eprintln!("loadgen: first {code} of {rpc}: {msg}");
        }
    }
}

async fn steady_call(
    mut client: ContactsServiceClient<Channel>,
    prefix: String,
    kind: u64,
    partner: u64,
    seq: u64,
    deadline: Duration,
    samples: Samples,
) -> Call {
    let name = contact_info_name(&prefix, partner);
    let start_ns = now_ns();
    let mut call = Call {
        start_ns,
        end_ns: 0,
        rpc: String::new(),
        partner,
        code: String::new(),
        request_id: String::new(),
        value: String::new(),
        etag: String::new(),
    };
    let (rpc, outcome): (&str, Result<(), (&str, String)>) = match kind {
        0 => {
            let request_id = uuid::Uuid::new_v4().hyphenated().to_string();
            let value = format!("w{seq}@{prefix}{partner}.example");
            let req = fault_update(&prefix, partner, &value, &request_id);
            let r = bounded(
                deadline,
                client.update_contacts(with_deadline(req, deadline)),
            )
            .await;
            let outcome = match r {
                Ok(ci) if first_email(&ci) == value && !ci.etag.is_empty() => {
                    call.etag = ci.etag;
                    Ok(())
                }
                Ok(_) => Err((
                    WRONG_ANSWER,
                    "the update did not return its own value".to_owned(),
                )),
                Err((c, m, _)) => Err((c, m)),
            };
            call.request_id = request_id;
            call.value = value;
            ("UpdateContacts", outcome)
        }
        1 => {
            let req = pb::GetContactsRequest {
                name: name.clone(),
                read_time: None,
            };
            let r = bounded(deadline, client.get_contacts(with_deadline(req, deadline))).await;
            (
                "GetContacts",
                match r {
                    Ok(ci) if ci.name == name && !ci.etag.is_empty() => Ok(()),
                    Ok(_) => Err((WRONG_ANSWER, "another or an incomplete resource".to_owned())),
                    Err((c, m, _)) => Err((c, m)),
                },
            )
        }
        2 => {
            let req = pb::CheckOnboardingGateRequest {
                name: name.clone(),
                integration_type: String::new(),
            };
            let r = bounded(
                deadline,
                client.check_onboarding_gate(with_deadline(req, deadline)),
            )
            .await;
            (
                "CheckOnboardingGate",
                match r {
                    Ok(g) if g.open && !g.etag.is_empty() => Ok(()),
                    Ok(_) => Err((
                        WRONG_ANSWER,
                        "gate closed for a complete partner".to_owned(),
                    )),
                    Err((c, m, _)) => Err((c, m)),
                },
            )
        }
        _ => {
            let req = pb::ResolveRecipientsRequest {
                name,
                purpose: pb::Purpose::ProductionAlert as i32,
                at_time: None,
            };
            let r = bounded(
                deadline,
                client.resolve_recipients(with_deadline(req, deadline)),
            )
            .await;
            (
                "ResolveRecipients",
                match r {
                    Ok(x)
                        if x.recipients
                            .first()
                            .is_some_and(|r| r.field == "alert_contacts")
                            && x.fallback.is_none() =>
                    {
                        Ok(())
                    }
                    Ok(_) => Err((
                        WRONG_ANSWER,
                        "not resolved to the alert contacts".to_owned(),
                    )),
                    Err((c, m, _)) => Err((c, m)),
                },
            )
        }
    };
    call.end_ns = now_ns();
    call.rpc = rpc.to_owned();
    call.code = match outcome {
        Ok(()) => "OK".to_owned(),
        Err((code, message)) => {
            sample(&samples, rpc, code, &message);
            code.to_owned()
        }
    };
    call
}

/// Prints `RESULT mode=MODE rpc=R code=C count=N p50_ms p99_ms max_ms`
/// per (RPC, code).
fn print_by_code(mode: &str, groups: &BTreeMap<(String, String), Vec<u64>>) {
    for ((rpc, code), lat) in groups {
        let mut lat = lat.clone();
        lat.sort_unstable();
        println!(
            "RESULT mode={mode} rpc={rpc} code={code} count={} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
            lat.len(),
            ms(percentile(&lat, 50.0)),
            ms(percentile(&lat, 99.0)),
            ms(lat.last().copied().unwrap_or(0)),
        );
    }
}

/// `--connections` clients (at least one), each on its own HTTP/2 connection.
async fn contacts_clients(args: &Args) -> Result<Vec<ContactsServiceClient<Channel>>, String> {
    let mut clients = Vec::new();
    for _ in 0..args.connections.max(1) {
        clients.push(ContactsServiceClient::new(
            connect(&args.addr, Duration::from_secs(5)).await?,
        ));
    }
    Ok(clients)
}

pub async fn steady(args: &Args) -> Result<bool, String> {
    let f = &args.faults;
    let path = f.calls.clone().ok_or("fault-steady needs --calls FILE")?;
    if args.partners == 0 {
        return Err("--partners must be positive".to_owned());
    }
    let clients = contacts_clients(args).await?;
    let deadline = Duration::from_millis(f.deadline_ms);
    let samples: Samples = Arc::default();
    let seq = Arc::new(AtomicU64::new(0));
    let end = Instant::now() + Duration::from_secs_f64(args.duration);
    let started_ns = now_ns();
    let mut schedulers = JoinSet::new();
    for (stream, rate) in [(0u64, f.write_rps), (1u64, f.read_rps)] {
        if rate <= 0.0 {
            continue;
        }
        let clients = clients.clone();
        let samples = samples.clone();
        let seq = seq.clone();
        let prefix = args.partner_prefix.clone();
        let partners = args.partners;
        let stop_file = f.stop_file.clone();
        let mut rng = Rng(args.seed ^ (stream + 1).wrapping_mul(0x9E37_79B9));
        schedulers.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut calls = JoinSet::new();
            let mut reads = 0u64;
            let mut done = Vec::new();
            loop {
                tick.tick().await;
                if Instant::now() >= end || stop_file.as_ref().is_some_and(|p| p.exists()) {
                    break;
                }
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let kind = if stream == 0 {
                    0
                } else {
                    reads += 1;
                    1 + reads % 3
                };
                let client = clients[(n as usize) % clients.len()].clone();
                calls.spawn(steady_call(
                    client,
                    prefix.clone(),
                    kind,
                    rng.partner(partners),
                    n,
                    deadline,
                    samples.clone(),
                ));
                // Collect what finished, so that the set stays small.
                while let Some(Ok(c)) = calls.try_join_next() {
                    done.push(c);
                }
            }
            // Every call is bounded by its deadline plus PAST_DEADLINE.
            while let Some(r) = calls.join_next().await {
                if let Ok(c) = r {
                    done.push(c);
                }
            }
            done
        });
    }
    let mut all: Vec<Call> = Vec::new();
    while let Some(r) = schedulers.join_next().await {
        all.extend(r.map_err(|e| format!("scheduler panicked: {e}"))?);
    }
    all.sort_by_key(|c| c.start_ns);
    let file = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut w = BufWriter::new(file);
    for c in &all {
        writeln!(w, "{}", c.tsv()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    w.flush().map_err(|e| format!("{}: {e}", path.display()))?;
    let mut groups: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    for c in &all {
        groups
            .entry((c.rpc.clone(), c.code.clone()))
            .or_default()
            .push(c.latency_ns());
    }
    print_by_code("fault-steady", &groups);
    let writes = all.iter().filter(|c| c.rpc == "UpdateContacts").count();
    let elapsed = (now_ns() - started_ns) as f64 / 1e9;
    // The scheduling time: from the first call's start to the last one's.
    let span = match (all.first(), all.iter().map(|c| c.start_ns).max()) {
        (Some(a), Some(b)) if b > a.start_ns => (b - a.start_ns) as f64 / 1e9,
        _ => args.duration,
    };
    println!(
        "RESULT mode=fault-steady calls={} writes={} reads={} acked={} seconds={:.1} write_rps={:.1} read_rps={:.1}",
        all.len(),
        writes,
        all.len() - writes,
        all.iter()
            .filter(|c| c.rpc == "UpdateContacts" && c.code == "OK")
            .count(),
        elapsed,
        writes as f64 / span,
        (all.len() - writes) as f64 / span,
    );
    print_samples(&samples);
    Ok(true)
}

pub async fn health_watch(args: &Args) -> Result<bool, String> {
    let f = &args.faults;
    let deadline = Duration::from_millis(f.deadline_ms);
    let poll = Duration::from_millis(args.poll_ms.max(1));
    let end = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut out = match &f.out {
        Some(p) => Some(BufWriter::new(
            std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()))?,
        )),
        None => None,
    };
    let mut client = HealthClient::new(connect(&args.addr, Duration::from_secs(5)).await?);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = String::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies = Vec::new();
    let mut first_error: Option<String> = None;
    while Instant::now() < end && !f.stop_file.as_ref().is_some_and(|p| p.exists()) {
        tick.tick().await;
        let t = now_ns();
        let started = Instant::now();
        let r = bounded(
            deadline,
            client.check(with_deadline(
                HealthCheckRequest {
                    service: SERVICE_NAME.to_owned(),
                },
                deadline,
            )),
        )
        .await;
        let lat = started.elapsed().as_nanos() as u64;
        latencies.push(lat);
        let status = match r {
            Ok(h) if h.status == ServingStatus::Serving as i32 => "SERVING".to_owned(),
            Ok(h) if h.status == ServingStatus::NotServing as i32 => "NOT_SERVING".to_owned(),
            Ok(h) => format!("STATUS_{}", h.status),
            Err((code, msg, _)) => {
                first_error.get_or_insert_with(|| format!("{code}: {msg}"));
                format!("ERR_{code}")
            }
        };
        if let Some(w) = out.as_mut() {
            let _ = writeln!(w, "{t}\t{status}\t{lat}");
        }
        if status != last {
            println!(
                "TRANSITION t_ns={t} status={status} latency_ms={:.3}",
                ms(lat)
            );
            last.clone_from(&status);
        }
        *counts.entry(status).or_default() += 1;
    }
    if let Some(mut w) = out {
        let _ = w.flush();
    }
    latencies.sort_unstable();
    let failed: u64 = counts
        .iter()
        .filter(|(k, _)| k.as_str() != "SERVING" && k.as_str() != "NOT_SERVING")
        .map(|(_, v)| *v)
        .sum();
    println!(
        "RESULT mode=health-watch checks={} serving={} not_serving={} failed={} last={} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
        latencies.len(),
        counts.get("SERVING").copied().unwrap_or(0),
        counts.get("NOT_SERVING").copied().unwrap_or(0),
        failed,
        if last.is_empty() { "none" } else { &last },
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies.last().copied().unwrap_or(0)),
    );
    for (k, v) in &counts {
        println!("HEALTH status={k} count={v}");
    }
    if let Some(e) = first_error {
        eprintln!("loadgen: first failed health check: {e}");
    }
    Ok(true)
}

/// One revision of the history, as much as the test needs.
#[derive(Clone, Debug)]
struct Rev {
    revision: String,
    etag: String,
    email: String,
}

/// Every revision of a partner's production contact info that carries a
/// request id, by request id (lower case).
async fn history(
    mut client: ContactsServiceClient<Channel>,
    prefix: String,
    partner: u64,
) -> Result<Vec<(String, Rev)>, String> {
    let name = contact_info_name(&prefix, partner);
    let deadline = Duration::from_secs(10);
    let mut token = String::new();
    let mut found = Vec::new();
    loop {
        let mut attempt = 0;
        let page = loop {
            let req = pb::ListContactInfoRevisionsRequest {
                name: name.clone(),
                page_size: 1000,
                page_token: token.clone(),
            };
            match bounded(
                deadline,
                client.list_contact_info_revisions(with_deadline(req, deadline)),
            )
            .await
            {
                Ok(p) => break p,
                Err((code, msg, _)) if code == "UNAVAILABLE" && attempt < 5 => {
                    attempt += 1;
                    eprintln!("loadgen: history of {name}: {code} ({msg}); retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err((code, msg, _)) => return Err(format!("history of {name}: {code}: {msg}")),
            }
        };
        for r in page.revisions {
            if r.request_id.is_empty() {
                continue;
            }
            let (etag, email) = r
                .contact_info
                .as_ref()
                .map(|ci| (ci.etag.clone(), first_email(ci).to_owned()))
                .unwrap_or_default();
            found.push((
                r.request_id.to_ascii_lowercase(),
                Rev {
                    revision: r.name,
                    etag,
                    email,
                },
            ));
        }
        if page.next_page_token.is_empty() {
            return Ok(found);
        }
        token = page.next_page_token;
    }
}

/// Histories of `partners`, 16 at a time.
async fn histories(
    client: &ContactsServiceClient<Channel>,
    prefix: &str,
    partners: &[u64],
) -> Result<HashMap<String, Vec<Rev>>, String> {
    let mut by_id: HashMap<String, Vec<Rev>> = HashMap::new();
    let mut set = JoinSet::new();
    let mut next = partners.iter();
    loop {
        while set.len() < 16 {
            let Some(&p) = next.next() else { break };
            set.spawn(history(client.clone(), prefix.to_owned(), p));
        }
        let Some(r) = set.join_next().await else {
            break;
        };
        for (id, rev) in r.map_err(|e| format!("history task panicked: {e}"))?? {
            by_id.entry(id).or_default().push(rev);
        }
    }
    Ok(by_id)
}

/// Every `len / k`-th element, at most `k` of them.
fn spread<T: Clone>(items: &[T], k: usize) -> Vec<T> {
    if k == 0 || items.is_empty() {
        return Vec::new();
    }
    let step = items.len().div_ceil(k).max(1);
    items.iter().step_by(step).take(k).cloned().collect()
}

/// Sends `c`'s UpdateContacts again, same request id and content.
async fn retry(
    client: &mut ContactsServiceClient<Channel>,
    prefix: &str,
    c: &Call,
) -> Result<pb::ContactInfo, String> {
    let deadline = Duration::from_secs(5);
    let req = fault_update(prefix, c.partner, &c.value, &c.request_id);
    bounded(
        deadline,
        client.update_contacts(with_deadline(req, deadline)),
    )
    .await
    .map_err(|(code, msg, _)| format!("{code}: {msg}"))
}

pub async fn verify(args: &Args) -> Result<bool, String> {
    let f = &args.faults;
    let path = f.calls.clone().ok_or("fault-verify needs --calls FILE")?;
    let down = f.pg_down_ns.ok_or("fault-verify needs --pg-down-ns")?;
    let start = f.pg_start_ns.ok_or("fault-verify needs --pg-start-ns")?;
    let ready = f.pg_ready_ns.ok_or("fault-verify needs --pg-ready-ns")?;
    let prefix = args.partner_prefix.clone();
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut calls = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        calls.push(
            Call::parse(&line).ok_or_else(|| format!("{}:{}: bad line", path.display(), i + 1))?,
        );
    }
    let writes: Vec<&Call> = calls.iter().filter(|c| c.rpc == "UpdateContacts").collect();
    let acked: Vec<&Call> = writes.iter().copied().filter(|c| c.code == "OK").collect();
    let failed: Vec<&Call> = writes
        .iter()
        .copied()
        .filter(|c| {
            c.code == "UNAVAILABLE" || c.code == "DEADLINE_EXCEEDED" || c.code == CLIENT_DEADLINE
        })
        .collect();

    // Recovery: PostgreSQL is down from `down` (stop returned; an immediate
    // stop ends every connection, so no write in flight then can succeed)
    // until `start` at least; pg_isready saw it back at `ready` (polled, so
    // the service may see it a few ms sooner).
    let acked_in_outage = acked
        .iter()
        .filter(|c| c.end_ns > down && c.end_ns < start)
        .count();
    let last_ok_before = acked
        .iter()
        .filter(|c| c.end_ns <= down)
        .map(|c| c.end_ns)
        .max();
    let first_ok_after = acked
        .iter()
        .filter(|c| c.end_ns >= start)
        .min_by_key(|c| c.end_ns);
    let ms_between = |a: u64, b: u64| (b as f64 - a as f64) / 1e6;
    // Writes that failed after the database was back.
    let failed_after_ready = writes
        .iter()
        .filter(|c| c.code != "OK" && c.start_ns >= ready)
        .count();
    let last_failed_after_ready = writes
        .iter()
        .filter(|c| c.code != "OK" && c.start_ns >= ready)
        .map(|c| c.end_ns)
        .max();
    let mut outage_codes: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for c in writes
        .iter()
        .filter(|c| c.start_ns >= down && c.start_ns < ready)
    {
        outage_codes
            .entry(c.code.as_str())
            .or_default()
            .push(c.latency_ns());
    }
    println!(
        "RESULT mode=fault-verify part=recovery acked_in_outage={} last_ok_before_stop_ms={} recover_ms={} first_ok_write_started_ms={} failed_writes_started_after_ready={} last_failure_after_ready_ms={}",
        acked_in_outage,
        last_ok_before.map_or("none".to_owned(), |t| format!("{:.1}", ms_between(down, t))),
        first_ok_after.map_or("none".to_owned(), |c| format!(
            "{:.1}",
            ms_between(ready, c.end_ns)
        )),
        first_ok_after.map_or("none".to_owned(), |c| format!(
            "{:.1}",
            ms_between(ready, c.start_ns)
        )),
        failed_after_ready,
        last_failed_after_ready.map_or("none".to_owned(), |t| format!(
            "{:.1}",
            ms_between(ready, t)
        )),
    );
    for (code, lat) in &mut outage_codes {
        lat.sort_unstable();
        println!(
            "RESULT mode=fault-verify part=outage-writes code={code} count={} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
            lat.len(),
            ms(percentile(lat, 50.0)),
            ms(percentile(lat, 99.0)),
            ms(lat.last().copied().unwrap_or(0))
        );
    }

    // Every acknowledged write is in the history, exactly once, with its
    // value and the etag it returned.
    let channel = connect(&args.addr, Duration::from_secs(5)).await?;
    let client = ContactsServiceClient::new(channel);
    let mut partners: Vec<u64> = writes
        .iter()
        .map(|c| c.partner)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    partners.sort_unstable();
    let t0 = Instant::now();
    let by_id = histories(&client, &prefix, &partners).await?;
    let revisions_with_id: usize = by_id.values().map(Vec::len).sum();
    let (mut missing, mut wrong_value, mut wrong_etag) = (0u64, 0u64, 0u64);
    let mut problems: Vec<String> = Vec::new();
    for c in &acked {
        match by_id.get(&c.request_id).map(Vec::as_slice) {
            None | Some([]) => {
                missing += 1;
                problems.push(format!(
                    "acked write {} (partner {}, {}) not in the history",
                    c.request_id, c.partner, c.value
                ));
            }
            Some(revs) => {
                if !revs.iter().any(|r| r.email == c.value) {
                    wrong_value += 1;
                    problems.push(format!(
                        "acked write {}: revision {} holds {} not {}",
                        c.request_id, revs[0].revision, revs[0].email, c.value
                    ));
                }
                if !revs.iter().any(|r| r.etag == c.etag) {
                    wrong_etag += 1;
                    problems.push(format!(
                        "acked write {}: revision {} has etag {} but the call returned {}",
                        c.request_id, revs[0].revision, revs[0].etag, c.etag
                    ));
                }
            }
        }
    }
    let duplicated = by_id.values().filter(|v| v.len() > 1).count();
    for (id, revs) in by_id.iter().filter(|(_, v)| v.len() > 1).take(5) {
        problems.push(format!(
            "request {id} saved {} times: {:?}",
            revs.len(),
            revs.iter().map(|r| &r.revision).collect::<Vec<_>>()
        ));
    }
    // Failed writes: allowed either way; how many were saved.
    let failed_saved: Vec<&Call> = failed
        .iter()
        .copied()
        .filter(|c| {
            by_id
                .get(&c.request_id)
                .is_some_and(|v| v.iter().any(|r| r.email == c.value))
        })
        .collect();
    for c in failed_saved.iter().take(10) {
        eprintln!(
            "loadgen: saved though it failed: {} {} on partner {}, started {:.1} ms and ended {:.1} ms after the stop returned (PostgreSQL back at {:.1} ms)",
            c.code,
            c.request_id,
            c.partner,
            ms_between(down, c.start_ns),
            ms_between(down, c.end_ns),
            ms_between(down, ready),
        );
    }
    let failed_unsaved: Vec<&Call> = failed
        .iter()
        .copied()
        .filter(|c| !by_id.contains_key(&c.request_id))
        .collect();
    let failed_other: usize = writes
        .iter()
        .filter(|c| {
            c.code != "OK"
                && c.code != "UNAVAILABLE"
                && c.code != "DEADLINE_EXCEEDED"
                && c.code != CLIENT_DEADLINE
        })
        .filter(|c| by_id.contains_key(&c.request_id))
        .count();
    let mut failed_saved_by_code: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for c in &failed {
        let e = failed_saved_by_code.entry(c.code.as_str()).or_default();
        e.0 += 1;
        if by_id.contains_key(&c.request_id) {
            e.1 += 1;
        }
    }
    println!(
        "RESULT mode=fault-verify part=history partners={} revisions_with_request_id={} acked={} missing={} wrong_value={} wrong_etag={} duplicated_request_ids={} failed={} failed_saved={} failed_other_code_saved={} seconds={:.1}",
        partners.len(),
        revisions_with_id,
        acked.len(),
        missing,
        wrong_value,
        wrong_etag,
        duplicated,
        failed.len(),
        failed_saved.len(),
        failed_other,
        t0.elapsed().as_secs_f64(),
    );
    for (code, (n, saved)) in &failed_saved_by_code {
        println!("RESULT mode=fault-verify part=failed-saved code={code} failed={n} saved={saved}");
    }

    // Retries with the same request id: an acknowledged or saved write
    // answers what was saved, an unsaved one saves now, once.
    let mut client = client;
    let acked_sample: Vec<&Call> = spread(&acked, f.retries);
    let saved_sample: Vec<&Call> = spread(&failed_saved, f.retries / 2);
    let unsaved_sample: Vec<&Call> = spread(&failed_unsaved, f.retries / 2);
    let (mut acked_same, mut acked_diff) = (0u64, 0u64);
    for c in &acked_sample {
        match retry(&mut client, &prefix, c).await {
            Ok(ci) if ci.etag == c.etag && first_email(&ci) == c.value => acked_same += 1,
            Ok(ci) => {
                acked_diff += 1;
                problems.push(format!(
                    "retry of acked {}: etag {} value {}, first call returned etag {} value {}",
                    c.request_id,
                    ci.etag,
                    first_email(&ci),
                    c.etag,
                    c.value
                ));
            }
            Err(e) => {
                acked_diff += 1;
                problems.push(format!("retry of acked {}: {e}", c.request_id));
            }
        }
    }
    let (mut saved_same, mut saved_diff) = (0u64, 0u64);
    for c in &saved_sample {
        let rev_etag = by_id
            .get(&c.request_id)
            .and_then(|v| v.first())
            .map(|r| r.etag.clone())
            .unwrap_or_default();
        match retry(&mut client, &prefix, c).await {
            Ok(ci) if ci.etag == rev_etag && first_email(&ci) == c.value => saved_same += 1,
            Ok(ci) => {
                saved_diff += 1;
                problems.push(format!(
                    "retry of failed-but-saved {}: etag {}, saved revision has {}",
                    c.request_id, ci.etag, rev_etag
                ));
            }
            Err(e) => {
                saved_diff += 1;
                problems.push(format!("retry of failed-but-saved {}: {e}", c.request_id));
            }
        }
    }
    let (mut unsaved_ok, mut unsaved_bad) = (0u64, 0u64);
    let mut unsaved_etags: HashMap<String, String> = HashMap::new();
    for c in &unsaved_sample {
        // First retry saves; a second must answer the same.
        let first = retry(&mut client, &prefix, c).await;
        let second = retry(&mut client, &prefix, c).await;
        match (first, second) {
            (Ok(a), Ok(b)) if a.etag == b.etag && first_email(&a) == c.value => {
                unsaved_ok += 1;
                unsaved_etags.insert(c.request_id.clone(), a.etag);
            }
            (a, b) => {
                unsaved_bad += 1;
                problems.push(format!(
                    "retries of failed-unsaved {}: {:?} then {:?}",
                    c.request_id,
                    a.map(|x| x.etag),
                    b.map(|x| x.etag)
                ));
            }
        }
    }
    // The retries saved nothing twice.
    let retried: Vec<&Call> = acked_sample
        .iter()
        .chain(&saved_sample)
        .chain(&unsaved_sample)
        .copied()
        .collect();
    let mut retried_partners: Vec<u64> = retried
        .iter()
        .map(|c| c.partner)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    retried_partners.sort_unstable();
    let after = histories(&client, &prefix, &retried_partners).await?;
    let mut not_once = 0u64;
    for c in &retried {
        let n = after.get(&c.request_id).map_or(0, Vec::len);
        if n != 1 {
            not_once += 1;
            problems.push(format!(
                "after retries, request {} has {n} revisions (expected 1)",
                c.request_id
            ));
        }
    }
    println!(
        "RESULT mode=fault-verify part=retries acked_retried={} acked_same={} acked_different={} saved_retried={} saved_same={} saved_different={} unsaved_retried={} unsaved_saved_once={} unsaved_bad={} not_exactly_one_revision={}",
        acked_sample.len(),
        acked_same,
        acked_diff,
        saved_sample.len(),
        saved_same,
        saved_diff,
        unsaved_sample.len(),
        unsaved_ok,
        unsaved_bad,
        not_once,
    );
    for p in problems.iter().take(50) {
        eprintln!("loadgen: PROBLEM {p}");
    }
    if problems.len() > 50 {
        eprintln!("loadgen: ... and {} more problems", problems.len() - 50);
    }
    Ok(true)
}

pub async fn overload(args: &Args) -> Result<bool, String> {
    let f = &args.faults;
    if f.concurrency == 0 || args.partners == 0 {
        return Err("--concurrency and --partners must be positive".to_owned());
    }
    let clients = contacts_clients(args).await?;
    let deadline = Duration::from_millis(f.deadline_ms);
    let samples: Samples = Arc::default();
    let measure_from = Instant::now() + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let seq = Arc::new(AtomicU64::new(0));
    let mut set = JoinSet::new();
    for w in 0..f.concurrency {
        let mut client = clients[w % clients.len()].clone();
        let prefix = args.partner_prefix.clone();
        let partners = args.partners;
        let read_every = f.read_every;
        let seq = seq.clone();
        let samples = samples.clone();
        let mut rng = Rng(args.seed ^ (w as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
        set.spawn(async move {
            let mut groups: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let partner = rng.partner(partners);
                let name = contact_info_name(&prefix, partner);
                let (rpc, r) = if read_every > 0 && n.is_multiple_of(read_every) {
                    let req = pb::GetContactsRequest {
                        name: name.clone(),
                        read_time: None,
                    };
                    (
                        "GetContacts",
                        bounded(deadline, client.get_contacts(with_deadline(req, deadline)))
                            .await
                            .map(|ci| ci.name == name),
                    )
                } else {
                    let email = format!("o{n}@{prefix}{partner}.example");
                    let req = update_request(name, &email);
                    (
                        "UpdateContacts",
                        bounded(
                            deadline,
                            client.update_contacts(with_deadline(req, deadline)),
                        )
                        .await
                        .map(|ci| first_email(&ci) == email),
                    )
                };
                if started < measure_from {
                    continue;
                }
                let lat = started.elapsed().as_nanos() as u64;
                let code = match r {
                    Ok(true) => "OK",
                    Ok(false) => {
                        sample(&samples, rpc, WRONG_ANSWER, "unexpected content");
                        WRONG_ANSWER
                    }
                    Err((code, msg, _)) => {
                        sample(&samples, rpc, code, &msg);
                        code
                    }
                };
                groups
                    .entry((rpc.to_owned(), code.to_owned()))
                    .or_default()
                    .push(lat);
            }
            groups
        });
    }
    let mut groups: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
    while let Some(r) = set.join_next().await {
        for (k, v) in r.map_err(|e| format!("worker panicked: {e}"))? {
            groups.entry(k).or_default().extend(v);
        }
    }
    print_by_code("overload", &groups);
    let total: usize = groups.values().map(Vec::len).sum();
    let shed: usize = groups
        .iter()
        .filter(|((_, c), _)| c == "RESOURCE_EXHAUSTED")
        .map(|(_, v)| v.len())
        .sum();
    let mut admitted: Vec<u64> = groups
        .iter()
        .filter(|((_, c), _)| c != "RESOURCE_EXHAUSTED")
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    admitted.sort_unstable();
    let mut shed_lat: Vec<u64> = groups
        .iter()
        .filter(|((_, c), _)| c == "RESOURCE_EXHAUSTED")
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    shed_lat.sort_unstable();
    let ok_writes = groups
        .get(&("UpdateContacts".to_owned(), "OK".to_owned()))
        .map_or(0, Vec::len);
    println!(
        "RESULT mode=overload concurrency={} connections={} seconds={:.1} calls={} shed={} shed_fraction={:.4} admitted={} admitted_p50_ms={:.3} admitted_p99_ms={:.3} admitted_max_ms={:.3} shed_p50_ms={:.3} shed_p99_ms={:.3} ok_writes_per_s={:.1} rps={:.1}",
        f.concurrency,
        clients.len(),
        args.duration,
        total,
        shed,
        if total == 0 {
            0.0
        } else {
            shed as f64 / total as f64
        },
        admitted.len(),
        ms(percentile(&admitted, 50.0)),
        ms(percentile(&admitted, 99.0)),
        ms(admitted.last().copied().unwrap_or(0)),
        ms(percentile(&shed_lat, 50.0)),
        ms(percentile(&shed_lat, 99.0)),
        ok_writes as f64 / args.duration,
        total as f64 / args.duration,
    );
    print_samples(&samples);
    Ok(true)
}

/// Runs a blocking closure off the runtime's thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("blocking task failed: {e}"))
}

/// Whether `pid` still runs (an exited child of the script stays a zombie
/// until the script waits for it).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

fn lock_waiters(url: &str, db: &str) -> Option<u64> {
    let query = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' \
         AND application_name = 'partner-contacts' AND wait_event_type = 'Lock'"
    );
    let out = std::process::Command::new("psql")
        .args(["-X", "-A", "-t", "-q", "-d", url, "-c", &query])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Counts of outcomes, `A:n,B:m`.
fn tally<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut m: BTreeMap<&str, u64> = BTreeMap::new();
    for i in items {
        *m.entry(i).or_default() += 1;
    }
    if m.is_empty() {
        return "none".to_owned();
    }
    m.iter()
        .map(|(k, v)| format!("{k}:{v}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn drain(args: &Args) -> Result<bool, String> {
    let f = &args.faults;
    let pid = f.server_pid.ok_or("drain needs --server-pid")?;
    let url = f.pg_url.clone().ok_or("drain needs --pg-url")?;
    let fifo = f.release_fifo.clone().ok_or("drain needs --release-fifo")?;
    let prefix = args.partner_prefix.clone();
    let deadline = Duration::from_millis(f.deadline_ms);

    let calls_channel = connect(&args.addr, Duration::from_secs(5)).await?;
    let mut health = HealthClient::new(connect(&args.addr, Duration::from_secs(5)).await?);
    let watch_channel = connect(&args.addr, Duration::from_secs(5)).await?;
    let check = |h: &mut HealthClient<Channel>| {
        let mut h = h.clone();
        async move {
            let d = Duration::from_millis(200);
            match tokio::time::timeout(
                d,
                h.check(with_deadline(
                    HealthCheckRequest {
                        service: SERVICE_NAME.to_owned(),
                    },
                    d,
                )),
            )
            .await
            {
                Ok(Ok(r)) if r.get_ref().status == ServingStatus::Serving as i32 => {
                    "SERVING".to_owned()
                }
                Ok(Ok(r)) if r.get_ref().status == ServingStatus::NotServing as i32 => {
                    "NOT_SERVING".to_owned()
                }
                Ok(Ok(r)) => format!("STATUS_{}", r.get_ref().status),
                Ok(Err(s)) => format!("REFUSED_{}", code_name(s.code())),
                Err(_) => "NO_ANSWER".to_owned(),
            }
        }
    };
    let before = check(&mut health).await;
    if before != "SERVING" {
        return Err(format!(
            "the server is not SERVING before the test ({before})"
        ));
    }

    // The stream, open and past its first state.
    let mut watcher = ContactsServiceClient::new(watch_channel);
    let watch_name = contact_info_name(&prefix, f.watch_partner);
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        watcher.watch_contacts(pb::WatchContactsRequest {
            name: watch_name.clone(),
        }),
    )
    .await
    .map_err(|_| "WatchContacts did not answer in 5 s".to_owned())?
    .map_err(|s| format!("WatchContacts: {}: {}", code_name(s.code()), s.message()))?
    .into_inner();
    match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
        Ok(Ok(Some(_))) => {}
        other => return Err(format!("WatchContacts sent no first state: {other:?}")),
    }
    let watch = tokio::spawn(async move {
        let mut states = 0u64;
        loop {
            match stream.message().await {
                Ok(Some(_)) => states += 1,
                Ok(None) => {
                    return (
                        now_ns(),
                        "ENDED_OK".to_owned(),
                        String::new(),
                        String::new(),
                        states,
                    );
                }
                Err(s) => {
                    let reason = s
                        .get_error_details()
                        .error_info()
                        .map(|e| e.reason.clone())
                        .unwrap_or_default();
                    return (
                        now_ns(),
                        code_name(s.code()).to_owned(),
                        reason,
                        s.message().to_owned(),
                        states,
                    );
                }
            }
        }
    });

    // The calls on the locked row.
    let t_calls = Instant::now();
    let t_calls_ns = now_ns();
    let mut calls = JoinSet::new();
    let mut ids = Vec::new();
    for i in 0..f.in_flight {
        let request_id = uuid::Uuid::new_v4().hyphenated().to_string();
        let value = format!("d{i}@{prefix}{}.example", f.lock_partner);
        ids.push((request_id.clone(), value.clone()));
        let mut client = ContactsServiceClient::new(calls_channel.clone());
        let req = fault_update(&prefix, f.lock_partner, &value, &request_id);
        calls.spawn(async move {
            let r = bounded(
                deadline,
                client.update_contacts(with_deadline(req, deadline)),
            )
            .await;
            let end = now_ns();
            match r {
                Ok(ci) if first_email(&ci) == value => (end, "OK".to_owned(), String::new()),
                Ok(_) => (
                    end,
                    WRONG_ANSWER.to_owned(),
                    "returned another value".to_owned(),
                ),
                Err((c, m, _)) => (end, c.to_owned(), m),
            }
        });
    }
    if let Some(p) = &f.out {
        let text: String = ids.iter().map(|(id, v)| format!("{id}\t{v}\n")).collect();
        std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()))?;
    }

    // Until the statements wait on the lock, and at least term_after_ms.
    let term_at = t_calls + Duration::from_millis(f.term_after_ms);
    let give_up = t_calls + Duration::from_millis(f.term_after_ms.max(1500));
    let mut waiters = 0u64;
    loop {
        let (u, d) = (url.clone(), f.pg_database.clone());
        waiters = blocking(move || lock_waiters(&u, &d))
            .await?
            .unwrap_or(waiters);
        let now = Instant::now();
        if (waiters > 0 && now >= term_at) || now >= give_up {
            break;
        }
        tokio::time::sleep(
            Duration::from_millis(25).min(
                term_at
                    .saturating_duration_since(now)
                    .max(Duration::from_millis(5)),
            ),
        )
        .await;
    }
    // Calls that already ended before SIGTERM (there should be none).
    let mut finished_before_term = Vec::new();
    while let Some(r) = calls.try_join_next() {
        finished_before_term.push(r);
    }
    let n_finished_before_term = finished_before_term.len();

    // SIGTERM.
    let term_result = blocking(move || {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
    })
    .await?
    .map_err(|e| format!("kill: {e}"))?;
    if !term_result.success() {
        return Err(format!("kill -TERM {pid} failed: {term_result}"));
    }
    let t_term = Instant::now();
    let t_term_ns = now_ns();
    let since_term = |ns: u64| (ns as f64 - t_term_ns as f64) / 1e6;

    // Health in the 100 ms after SIGTERM, every 10 ms, on the connection
    // that was open before; new calls on the calls' connection and on a new
    // one.
    let mut h = health.clone();
    let health_polls = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for _ in 0..11 {
            tick.tick().await;
            let t = now_ns();
            seen.push((t, check(&mut h).await));
        }
        seen
    });
    let addr = args.addr.clone();
    let same_conn = calls_channel.clone();
    let probe_name = contact_info_name(&prefix, f.watch_partner + 1);
    let new_calls = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let get = |name: String| {
            with_deadline(
                pb::GetContactsRequest {
                    name,
                    read_time: None,
                },
                Duration::from_secs(1),
            )
        };
        let outcome = |r: Result<pb::ContactInfo, (&'static str, String, Option<Status>)>| match r {
            Ok(_) => "SERVED_OK".to_owned(),
            Err((c, m, _)) => format!("{c} ({})", m.replace(' ', "_")),
        };
        let name = probe_name;
        let mut c = ContactsServiceClient::new(same_conn);
        let same =
            outcome(bounded(Duration::from_secs(1), c.get_contacts(get(name.clone()))).await);
        let fresh = match tokio::time::timeout(
            Duration::from_secs(2),
            connect(&addr, Duration::from_secs(1)),
        )
        .await
        {
            Ok(Ok(ch)) => {
                let mut c = ContactsServiceClient::new(ch);
                outcome(bounded(Duration::from_secs(1), c.get_contacts(get(name))).await)
            }
            Ok(Err(e)) => format!("CONNECT_REFUSED ({})", e.replace(' ', "_")),
            Err(_) => "CONNECT_NO_ANSWER".to_owned(),
        };
        (same, fresh)
    });

    // Release the lock.
    tokio::time::sleep_until((t_term + Duration::from_millis(f.release_after_ms)).into()).await;
    let fifo2 = fifo.clone();
    blocking(move || -> Result<(), String> {
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo2)
            .map_err(|e| format!("{}: {e}", fifo2.display()))?;
        w.write_all(b"COMMIT;\n")
            .map_err(|e| format!("{}: {e}", fifo2.display()))
    })
    .await??;
    let t_release_ns = now_ns();

    // The calls end (each bounded by its deadline + PAST_DEADLINE).
    let mut results = Vec::new();
    for r in finished_before_term {
        results.push(r.map_err(|e| format!("call task failed: {e}"))?);
    }
    while let Some(r) = calls.join_next().await {
        results.push(r.map_err(|e| format!("call task failed: {e}"))?);
    }
    let grace = Duration::from_secs_f64(f.grace_seconds);
    let watch_end = tokio::time::timeout(grace + Duration::from_secs(3), watch).await;
    let health_seen = health_polls
        .await
        .map_err(|e| format!("health polls failed: {e}"))?;
    let (same_conn_outcome, new_conn_outcome) = new_calls
        .await
        .map_err(|e| format!("new calls failed: {e}"))?;

    // The process exits.
    let exit_by = t_term + grace + Duration::from_secs(5);
    let mut exited_ns = None;
    while Instant::now() < exit_by {
        if !running(pid) {
            exited_ns = Some(now_ns());
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let ok = results.iter().filter(|r| r.1 == "OK").count();
    let last_end = results.iter().map(|r| r.0).max().unwrap_or(0);
    for (_, code, msg) in results.iter().filter(|r| r.1 != "OK").take(5) {
        eprintln!("loadgen: in-flight call failed: {code}: {msg}");
    }
    let (watch_t, watch_code, watch_reason, watch_msg, watch_states) = match watch_end {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => return Err(format!("watch task failed: {e}")),
        Err(_) => (0, "STILL_OPEN".to_owned(), String::new(), String::new(), 0),
    };
    if !watch_msg.is_empty() {
        eprintln!("loadgen: watch stream ended: {watch_code} ({watch_reason}): {watch_msg}");
    }
    for (t, s) in &health_seen {
        println!(
            "DRAIN health t_after_term_ms={:.1} status={s}",
            since_term(*t)
        );
    }
    println!("DRAIN new_call_same_connection={same_conn_outcome}");
    println!("DRAIN new_call_new_connection={new_conn_outcome}");
    let tolerance = f.serving_tolerance_ms as f64;
    let serving_late = health_seen
        .iter()
        .filter(|(t, s)| s == "SERVING" && since_term(*t) >= tolerance)
        .count();
    let serving_early = health_seen
        .iter()
        .filter(|(t, s)| s == "SERVING" && since_term(*t) < tolerance)
        .count();
    let first_not_serving = health_seen
        .iter()
        .find(|(_, s)| s != "SERVING")
        .map_or("none".to_owned(), |(t, _)| format!("{:.1}", since_term(*t)));
    println!(
        "RESULT mode=drain calls={} ok={} codes={} finished_before_term={} lock_waiters_at_term={} term_after_calls_ms={:.1} release_after_term_ms={:.1} last_call_after_term_ms={:.1} watch_code={} watch_reason={} watch_states_after_first={} watch_end_after_term_ms={} health_after_term={} health_serving_after_term={} health_serving_within_tolerance={} health_tolerance_ms={} health_first_not_serving_ms={} new_call_same_connection={} new_call_new_connection={} exited={} exit_after_term_ms={}",
        results.len(),
        ok,
        tally(results.iter().map(|r| r.1.as_str())),
        n_finished_before_term,
        waiters,
        (t_term_ns as f64 - t_calls_ns as f64) / 1e6,
        since_term(t_release_ns),
        since_term(last_end),
        watch_code,
        if watch_reason.is_empty() {
            "none"
        } else {
            &watch_reason
        },
        watch_states,
        if watch_t == 0 {
            "none".to_owned()
        } else {
            format!("{:.1}", since_term(watch_t))
        },
        tally(health_seen.iter().map(|(_, s)| s.as_str())),
        serving_late,
        serving_early,
        f.serving_tolerance_ms,
        first_not_serving,
        same_conn_outcome.split(' ').next().unwrap_or(""),
        new_conn_outcome.split(' ').next().unwrap_or(""),
        u8::from(exited_ns.is_some()),
        exited_ns.map_or("none".to_owned(), |t| format!("{:.1}", since_term(t))),
    );
    Ok(true)
}
