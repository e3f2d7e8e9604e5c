//! What the fault test's modes (`bench/faults`, see `bench/FAULTS.md`) share:
//! their flags, how a call's outcome becomes a code, the record of one call
//! of the steady load, and how codes and latencies are printed.
//!
//! One mode per file: `steady.rs` (`fault-steady`), `health_watch.rs`
//! (`health-watch`), `verify.rs` (`fault-verify`), `overload.rs`
//! (`overload`) and `drain.rs` (`drain`).
//!
//! Codes are gRPC's canonical names (the server's metrics use the same, so
//! the script can compare the two), plus `NO_ANSWER` (nothing 1 s past the
//! deadline), `WRONG_ANSWER` (OK with the wrong content) and
//! `CLIENT_DEADLINE` (tonic's client timer fired before the server's answer
//! came). The bash script judges the `RESULT` lines; exit status 1 means the
//! mode itself could not run (usage, connection), 0 otherwise.
mod drain;
mod health_watch;
mod overload;
mod steady;
mod verify;

pub use drain::drain;
pub use health_watch::health_watch;
pub use overload::overload;
pub use steady::steady;
pub use verify::verify;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use partner_contacts::telemetry::metrics::code_name;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::pb::contacts_service_client::ContactsServiceClient;
use crate::{Args, SERVICE_NAME, connect, contact_info_name, p50_p99_max_ms, pb, update_request};

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

/// A call that did not end well: its code (as above) and message.
type Failed = (&'static str, String);

/// Latencies (ns) per (RPC, code).
type ByCode = BTreeMap<(String, String), Vec<u64>>;

/// Wall-clock time, because the script's own timestamps (`date +%s%N`)
/// are compared with the calls'.
fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Milliseconds from `a` to `b` (ns since the epoch); negative when `b`
/// came first.
fn ms_between(a: u64, b: u64) -> f64 {
    (b as f64 - a as f64) / 1e6
}

/// A figure in ms with one decimal, or `none` when there is none.
fn ms_or_none(ms: Option<f64>) -> String {
    ms.map_or("none".to_owned(), |v| format!("{v:.1}"))
}

fn file_error(path: &Path) -> impl Fn(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

fn with_deadline<T>(message: T, deadline: Duration) -> Request<T> {
    let mut r = Request::new(message);
    r.set_timeout(deadline);
    r
}

/// Awaits a call for at most its deadline plus [`PAST_DEADLINE`].
async fn bounded<T>(
    deadline: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Failed> {
    let started = Instant::now();
    match tokio::time::timeout(deadline + PAST_DEADLINE, call).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s))
            if s.code() == Code::Cancelled
                && s.message() == "Timeout expired"
                && started.elapsed() >= deadline =>
        {
            Err((CLIENT_DEADLINE, s.message().to_owned()))
        }
        Ok(Err(s)) => Err((code_name(s.code()), s.message().to_owned())),
        Err(_) => Err((
            NO_ANSWER,
            format!(
                "no answer {} ms after the deadline",
                PAST_DEADLINE.as_millis()
            ),
        )),
    }
}

/// `WRONG_ANSWER` with `what` unless the content is `right`.
fn wrong_unless(right: bool, what: &str) -> Result<(), Failed> {
    if right {
        Ok(())
    } else {
        Err((WRONG_ANSWER, what.to_owned()))
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

fn health_request(deadline: Duration) -> Request<HealthCheckRequest> {
    with_deadline(
        HealthCheckRequest {
            service: SERVICE_NAME.to_owned(),
        },
        deadline,
    )
}

/// A health answer as the script reads it: `SERVING`, `NOT_SERVING`, or
/// `STATUS_n` for anything else.
fn health_status_name(status: i32) -> String {
    if status == ServingStatus::Serving as i32 {
        "SERVING".to_owned()
    } else if status == ServingStatus::NotServing as i32 {
        "NOT_SERVING".to_owned()
    } else {
        format!("STATUS_{status}")
    }
}

/// One call of the steady load: a line of `--calls`, written by
/// `fault-steady` and read back by `fault-verify`.
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

/// The first message seen per (RPC, code): the script quotes it next to a
/// code that should not have happened.
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

/// `count=N p50_ms=.. p99_ms=.. max_ms=..` of unsorted latencies (ns).
fn count_and_latency(latencies: &[u64]) -> String {
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    format!("count={} {}", sorted.len(), p50_p99_max_ms(&sorted))
}

/// Prints `RESULT mode=MODE rpc=R code=C count=N p50_ms p99_ms max_ms`
/// per (RPC, code).
fn print_by_code(mode: &str, groups: &ByCode) {
    for ((rpc, code), lat) in groups {
        println!(
            "RESULT mode={mode} rpc={rpc} code={code} {}",
            count_and_latency(lat)
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
