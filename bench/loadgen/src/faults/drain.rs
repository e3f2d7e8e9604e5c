//! `drain`: SIGTERM to `--server-pid` with calls in flight and a stream open
//! (phase 5).
//!
//! Opens a WatchContacts stream on `--watch-partner`, starts `--in-flight`
//! UpdateContacts on `--lock-partner` (whose row `bench/faults` holds
//! locked), sends SIGTERM once they wait on the lock and `--term-after-ms`
//! after they started, and writes `COMMIT` into `--release-fifo`
//! `--release-after-ms` after SIGTERM. Prints what health, new calls, the
//! stream and the calls saw, and when the process exited.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use partner_contacts::telemetry::metrics::code_name;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_types::StatusExt;

use super::{
    Failed, NO_ANSWER, WRONG_ANSWER, bounded, fault_update, file_error, first_email,
    health_request, health_status_name, ms_between, ms_or_none, now_ns, with_deadline,
};
use crate::pb::contacts_service_client::ContactsServiceClient;
use crate::{Args, connect, contact_info_name, get_request, pb};

pub async fn drain(args: &Args) -> Result<bool, String> {
    let f = &args.faults;
    let pid = f.server_pid.ok_or("drain needs --server-pid")?;
    let url = f.pg_url.clone().ok_or("drain needs --pg-url")?;
    let fifo = f.release_fifo.clone().ok_or("drain needs --release-fifo")?;
    let prefix = &args.partner_prefix;
    let (calls_channel, health, watch) = open(args).await?;

    let t_calls = Instant::now();
    let t_calls_ns = now_ns();
    let deadline = Duration::from_millis(f.deadline_ms);
    let mut calls = start_calls(
        &calls_channel,
        prefix,
        f.lock_partner,
        f.in_flight,
        deadline,
    );
    if let Some(p) = &f.out {
        calls.write_ids(p)?;
    }
    let term_at = t_calls + Duration::from_millis(f.term_after_ms);
    let give_up = t_calls + Duration::from_millis(f.term_after_ms.max(1500));
    let waiters = await_lock_waiters(&url, &f.pg_database, term_at, give_up).await?;
    let finished_before_term = calls.take_finished();
    let n_finished_before_term = finished_before_term.len();

    sigterm(pid).await?;
    let t_term = Instant::now();
    let t_term_ns = now_ns();
    let health_polls = tokio::spawn(poll_health(health.clone()));
    let new_calls = tokio::spawn(probe_new_calls(
        args.addr.clone(),
        calls_channel.clone(),
        contact_info_name(prefix, f.watch_partner + 1),
    ));
    tokio::time::sleep_until((t_term + Duration::from_millis(f.release_after_ms)).into()).await;
    release_lock(fifo).await?;
    let t_release_ns = now_ns();

    let results = join_calls(finished_before_term, calls.set).await?;
    let grace = Duration::from_secs_f64(f.grace_seconds);
    let watch_end = tokio::time::timeout(grace + Duration::from_secs(3), watch).await;
    let health_seen = health_polls
        .await
        .map_err(|e| format!("health polls failed: {e}"))?;
    let (same_conn, new_conn) = new_calls
        .await
        .map_err(|e| format!("new calls failed: {e}"))?;
    let exited_ns = await_exit(pid, t_term + grace + Duration::from_secs(5)).await;

    for c in results.iter().filter(|c| c.code != "OK").take(5) {
        eprintln!("loadgen: in-flight call failed: {}: {}", c.code, c.message);
    }
    let watch = match watch_end {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => return Err(format!("watch task failed: {e}")),
        Err(_) => WatchEnd::still_open(),
    };
    Seen {
        results,
        finished_before_term: n_finished_before_term,
        waiters,
        t_calls_ns,
        t_term_ns,
        t_release_ns,
        watch,
        health: health_seen,
        same_conn,
        new_conn,
        exited_ns,
        serving_tolerance_ms: f.serving_tolerance_ms,
    }
    .print();
    Ok(true)
}

/// The calls' connection, a health client and the WatchContacts stream, each
/// on a connection of its own opened before SIGTERM: what a draining server
/// does to open connections is part of the test.
async fn open(
    args: &Args,
) -> Result<(Channel, HealthClient<Channel>, JoinHandle<WatchEnd>), String> {
    let calls_channel = connect(&args.addr, Duration::from_secs(5)).await?;
    let health = HealthClient::new(connect(&args.addr, Duration::from_secs(5)).await?);
    let watch_channel = connect(&args.addr, Duration::from_secs(5)).await?;
    let before = health_status(health.clone()).await;
    if before != "SERVING" {
        return Err(format!(
            "the server is not SERVING before the test ({before})"
        ));
    }
    let watch_name = contact_info_name(&args.partner_prefix, args.faults.watch_partner);
    let watch = open_watch(watch_channel, watch_name).await?;
    Ok((calls_channel, health, watch))
}

/// Runs a blocking closure off the runtime's thread, so that the calls and
/// the stream go on meanwhile.
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

/// What one health check answered: as [`health_status_name`], or
/// `REFUSED_CODE` once the server no longer takes calls, or `NO_ANSWER`.
async fn health_status(mut h: HealthClient<Channel>) -> String {
    let d = Duration::from_millis(200);
    match tokio::time::timeout(d, h.check(health_request(d))).await {
        Ok(Ok(r)) => health_status_name(r.get_ref().status),
        Ok(Err(s)) => format!("REFUSED_{}", code_name(s.code())),
        Err(_) => NO_ANSWER.to_owned(),
    }
}

/// How the WatchContacts stream ended.
struct WatchEnd {
    /// ns since the epoch; `None` while it is still open.
    t_ns: Option<u64>,
    code: String,
    /// `ErrorInfo.reason` of the status details.
    reason: String,
    message: String,
    /// States received after the first.
    states: u64,
}

impl WatchEnd {
    fn still_open() -> Self {
        Self {
            t_ns: None,
            code: "STILL_OPEN".to_owned(),
            reason: String::new(),
            message: String::new(),
            states: 0,
        }
    }
}

/// The stream, open and past its first state, followed to its end.
async fn open_watch(channel: Channel, name: String) -> Result<JoinHandle<WatchEnd>, String> {
    let mut watcher = ContactsServiceClient::new(channel);
    let mut stream = tokio::time::timeout(
        Duration::from_secs(5),
        watcher.watch_contacts(pb::WatchContactsRequest { name }),
    )
    .await
    .map_err(|_| "WatchContacts did not answer in 5 s".to_owned())?
    .map_err(|s| format!("WatchContacts: {}: {}", code_name(s.code()), s.message()))?
    .into_inner();
    match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
        Ok(Ok(Some(_))) => {}
        other => return Err(format!("WatchContacts sent no first state: {other:?}")),
    }
    Ok(tokio::spawn(async move {
        let mut states = 0u64;
        loop {
            match stream.message().await {
                Ok(Some(_)) => states += 1,
                Ok(None) => {
                    return WatchEnd {
                        t_ns: Some(now_ns()),
                        code: "ENDED_OK".to_owned(),
                        reason: String::new(),
                        message: String::new(),
                        states,
                    };
                }
                Err(s) => {
                    return WatchEnd {
                        t_ns: Some(now_ns()),
                        code: code_name(s.code()).to_owned(),
                        reason: s
                            .get_error_details()
                            .error_info()
                            .map(|e| e.reason.clone())
                            .unwrap_or_default(),
                        message: s.message().to_owned(),
                        states,
                    };
                }
            }
        }
    }))
}

/// How one of the calls on the locked row ended.
struct CallEnd {
    end_ns: u64,
    code: String,
    message: String,
}

struct LockedCalls {
    set: JoinSet<CallEnd>,
    /// (request id, value) of each, for the script's SQL check.
    ids: Vec<(String, String)>,
}

impl LockedCalls {
    /// Calls that already ended (before SIGTERM, there should be none).
    fn take_finished(&mut self) -> Vec<Result<CallEnd, JoinError>> {
        let mut finished = Vec::new();
        while let Some(r) = self.set.try_join_next() {
            finished.push(r);
        }
        finished
    }

    fn write_ids(&self, path: &Path) -> Result<(), String> {
        let text: String = self
            .ids
            .iter()
            .map(|(id, v)| format!("{id}\t{v}\n"))
            .collect();
        std::fs::write(path, text).map_err(file_error(path))
    }
}

/// `n` UpdateContacts on `partner`, each with a request id and a value of
/// its own, all on `channel`.
fn start_calls(
    channel: &Channel,
    prefix: &str,
    partner: u64,
    n: usize,
    deadline: Duration,
) -> LockedCalls {
    let mut calls = LockedCalls {
        set: JoinSet::new(),
        ids: Vec::new(),
    };
    for i in 0..n {
        let request_id = uuid::Uuid::new_v4().hyphenated().to_string();
        let value = format!("d{i}@{prefix}{partner}.example");
        calls.ids.push((request_id.clone(), value.clone()));
        let mut client = ContactsServiceClient::new(channel.clone());
        let req = fault_update(prefix, partner, &value, &request_id);
        calls.set.spawn(async move {
            let r = bounded(
                deadline,
                client.update_contacts(with_deadline(req, deadline)),
            )
            .await;
            let (code, message) = match r {
                Ok(ci) if first_email(&ci) == value => ("OK", String::new()),
                Ok(_) => (WRONG_ANSWER, "returned another value".to_owned()),
                Err((c, m)) => (c, m),
            };
            CallEnd {
                end_ns: now_ns(),
                code: code.to_owned(),
                message,
            }
        });
    }
    calls
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

/// Polls until the server's statements wait on the lock and `term_at` has
/// come, or until `give_up`; returns the last count of waiters. Waiting on
/// the lock proves the calls are in the database, not just in flight.
async fn await_lock_waiters(
    url: &str,
    db: &str,
    term_at: Instant,
    give_up: Instant,
) -> Result<u64, String> {
    let mut waiters = 0u64;
    loop {
        let (u, d) = (url.to_owned(), db.to_owned());
        waiters = blocking(move || lock_waiters(&u, &d))
            .await?
            .unwrap_or(waiters);
        let now = Instant::now();
        if (waiters > 0 && now >= term_at) || now >= give_up {
            return Ok(waiters);
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
}

async fn sigterm(pid: u32) -> Result<(), String> {
    let status = blocking(move || {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
    })
    .await?
    .map_err(|e| format!("kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -TERM {pid} failed: {status}"))
    }
}

/// Health every 10 ms for 100 ms after SIGTERM, on the connection that was
/// open before: (ns since the epoch, answer).
async fn poll_health(health: HealthClient<Channel>) -> Vec<(u64, String)> {
    let mut seen = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for _ in 0..11 {
        tick.tick().await;
        let t = now_ns();
        seen.push((t, health_status(health.clone()).await));
    }
    seen
}

/// A GetContacts 20 ms after SIGTERM on the calls' connection, and one on a
/// new connection: `SERVED_OK`, or how it was refused.
async fn probe_new_calls(addr: String, same_conn: Channel, name: String) -> (String, String) {
    tokio::time::sleep(Duration::from_millis(20)).await;
    let get = |name: String| with_deadline(get_request(name), Duration::from_secs(1));
    let outcome = |r: Result<pb::ContactInfo, Failed>| match r {
        Ok(_) => "SERVED_OK".to_owned(),
        // One word for the RESULT line.
        Err((c, m)) => format!("{c} ({})", m.replace(' ', "_")),
    };
    let mut c = ContactsServiceClient::new(same_conn);
    let same = outcome(bounded(Duration::from_secs(1), c.get_contacts(get(name.clone()))).await);
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
}

/// `COMMIT;` to the psql that holds the row lock.
async fn release_lock(fifo: PathBuf) -> Result<(), String> {
    blocking(move || -> Result<(), String> {
        let err = file_error(&fifo);
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .map_err(&err)?;
        w.write_all(b"COMMIT;\n").map_err(&err)
    })
    .await?
}

/// Every call's end (each bounded by its deadline + PAST_DEADLINE), those
/// that ended before SIGTERM first.
async fn join_calls(
    finished_before_term: Vec<Result<CallEnd, JoinError>>,
    mut set: JoinSet<CallEnd>,
) -> Result<Vec<CallEnd>, String> {
    let mut results = Vec::new();
    for r in finished_before_term {
        results.push(r.map_err(|e| format!("call task failed: {e}"))?);
    }
    while let Some(r) = set.join_next().await {
        results.push(r.map_err(|e| format!("call task failed: {e}"))?);
    }
    Ok(results)
}

/// When the process exited (ns since the epoch), if it did by `by`.
async fn await_exit(pid: u32, by: Instant) -> Option<u64> {
    while Instant::now() < by {
        if !running(pid) {
            return Some(now_ns());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
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

/// Everything the drain saw; times in ns since the epoch.
struct Seen {
    results: Vec<CallEnd>,
    finished_before_term: usize,
    waiters: u64,
    t_calls_ns: u64,
    t_term_ns: u64,
    t_release_ns: u64,
    watch: WatchEnd,
    /// Health checks after SIGTERM: (sent, answer).
    health: Vec<(u64, String)>,
    same_conn: String,
    new_conn: String,
    exited_ns: Option<u64>,
    serving_tolerance_ms: u64,
}

impl Seen {
    fn since_term(&self, ns: u64) -> f64 {
        ms_between(self.t_term_ns, ns)
    }

    /// Health checks answered SERVING, sent at or after the tolerance and
    /// before it.
    fn serving_late_and_early(&self) -> (usize, usize) {
        let tolerance = self.serving_tolerance_ms as f64;
        let serving = || self.health.iter().filter(|(_, s)| s == "SERVING");
        (
            serving()
                .filter(|(t, _)| self.since_term(*t) >= tolerance)
                .count(),
            serving()
                .filter(|(t, _)| self.since_term(*t) < tolerance)
                .count(),
        )
    }

    fn print(&self) {
        if !self.watch.message.is_empty() {
            eprintln!(
                "loadgen: watch stream ended: {} ({}): {}",
                self.watch.code, self.watch.reason, self.watch.message
            );
        }
        for (t, s) in &self.health {
            println!(
                "DRAIN health t_after_term_ms={:.1} status={s}",
                self.since_term(*t)
            );
        }
        println!("DRAIN new_call_same_connection={}", self.same_conn);
        println!("DRAIN new_call_new_connection={}", self.new_conn);
        let (serving_late, serving_early) = self.serving_late_and_early();
        let first_not_serving = self
            .health
            .iter()
            .find(|(_, s)| s != "SERVING")
            .map(|(t, _)| self.since_term(*t));
        let last_end = self.results.iter().map(|c| c.end_ns).max().unwrap_or(0);
        let first_word = |s: &str| s.split(' ').next().unwrap_or("").to_owned();
        println!(
            "RESULT mode=drain calls={} ok={} codes={} finished_before_term={} lock_waiters_at_term={} term_after_calls_ms={:.1} release_after_term_ms={:.1} last_call_after_term_ms={:.1} watch_code={} watch_reason={} watch_states_after_first={} watch_end_after_term_ms={} health_after_term={} health_serving_after_term={} health_serving_within_tolerance={} health_tolerance_ms={} health_first_not_serving_ms={} new_call_same_connection={} new_call_new_connection={} exited={} exit_after_term_ms={}",
            self.results.len(),
            self.results.iter().filter(|c| c.code == "OK").count(),
            tally(self.results.iter().map(|c| c.code.as_str())),
            self.finished_before_term,
            self.waiters,
            ms_between(self.t_calls_ns, self.t_term_ns),
            self.since_term(self.t_release_ns),
            self.since_term(last_end),
            self.watch.code,
            if self.watch.reason.is_empty() {
                "none"
            } else {
                &self.watch.reason
            },
            self.watch.states,
            ms_or_none(self.watch.t_ns.map(|t| self.since_term(t))),
            tally(self.health.iter().map(|(_, s)| s.as_str())),
            serving_late,
            serving_early,
            self.serving_tolerance_ms,
            ms_or_none(first_not_serving),
            first_word(&self.same_conn),
            first_word(&self.new_conn),
            u8::from(self.exited_ns.is_some()),
            ms_or_none(self.exited_ns.map(|t| self.since_term(t))),
        );
    }
}
