//! `fault-steady`: the open-loop load of phases 1-2, through the PostgreSQL
//! outage.
//!
//! For `--duration` seconds (or until `--stop-file` exists): `--write-rps`
//! UpdateContacts, each with a fresh `request_id` and a value of its own,
//! and `--read-rps` reads (GetContacts, CheckOnboardingGate,
//! ResolveRecipients in turn), every call with a `--deadline-ms`
//! grpc-timeout. Open loop, so that calls keep coming while the server
//! stalls, as they would from real callers. Every call goes to `--calls`
//! (TSV), and `RESULT` lines count them by RPC and gRPC code.
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tonic::transport::Channel;

use super::{
    ByCode, Call, Failed, Samples, bounded, contacts_clients, fault_update, file_error,
    first_email, now_ns, print_by_code, print_samples, sample, with_deadline, wrong_unless,
};
use crate::pb::contacts_service_client::ContactsServiceClient;
use crate::{
    Args, Rng, alert_request, alerts_to_alert_contacts, contact_info_name, gate_open, gate_request,
    get_request,
};

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
        schedulers.spawn(
            Scheduler {
                writes: stream == 0,
                rate,
                end,
                stop_file: f.stop_file.clone(),
                clients: clients.clone(),
                prefix: args.partner_prefix.clone(),
                partners: args.partners,
                rng: Rng(args.seed ^ (stream + 1).wrapping_mul(0x9E37_79B9)),
                seq: seq.clone(),
                deadline,
                samples: samples.clone(),
            }
            .run(),
        );
    }
    let mut all: Vec<Call> = Vec::new();
    while let Some(r) = schedulers.join_next().await {
        all.extend(r.map_err(|e| format!("scheduler panicked: {e}"))?);
    }
    all.sort_by_key(|c| c.start_ns);
    write_calls(&path, &all)?;
    let mut groups = ByCode::new();
    for c in &all {
        groups
            .entry((c.rpc.clone(), c.code.clone()))
            .or_default()
            .push(c.latency_ns());
    }
    print_by_code("fault-steady", &groups);
    print_totals(&all, started_ns, args.duration);
    print_samples(&samples);
    Ok(true)
}

/// One stream of calls at a fixed rate: the writes, or the reads.
struct Scheduler {
    writes: bool,
    rate: f64,
    end: Instant,
    stop_file: Option<PathBuf>,
    clients: Vec<ContactsServiceClient<Channel>>,
    prefix: String,
    partners: u64,
    rng: Rng,
    /// Shared by both streams: it spreads the calls over the connections
    /// and makes every written value unique.
    seq: Arc<AtomicU64>,
    deadline: Duration,
    samples: Samples,
}

impl Scheduler {
    async fn run(mut self) -> Vec<Call> {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / self.rate));
        // A starved generator sends late rather than in a burst.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut calls = JoinSet::new();
        let mut reads = 0u64;
        let mut done = Vec::new();
        loop {
            tick.tick().await;
            if Instant::now() >= self.end || self.stop_file.as_ref().is_some_and(|p| p.exists()) {
                break;
            }
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let kind = if self.writes {
                0
            } else {
                reads += 1;
                1 + reads % 3
            };
            let client = self.clients[(n as usize) % self.clients.len()].clone();
            calls.spawn(steady_call(
                client,
                self.prefix.clone(),
                kind,
                self.rng.partner(self.partners),
                n,
                self.deadline,
                self.samples.clone(),
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
    }
}

/// One call of `kind`: 0 UpdateContacts, 1 GetContacts, 2
/// CheckOnboardingGate, 3 ResolveRecipients.
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
    let mut call = Call {
        start_ns: now_ns(),
        end_ns: 0,
        rpc: String::new(),
        partner,
        code: String::new(),
        request_id: String::new(),
        value: String::new(),
        etag: String::new(),
    };
    let (rpc, outcome) = match kind {
        0 => (
            "UpdateContacts",
            write(&mut client, &prefix, seq, deadline, &mut call).await,
        ),
        1 => ("GetContacts", get(&mut client, name, deadline).await),
        2 => (
            "CheckOnboardingGate",
            gate(&mut client, name, deadline).await,
        ),
        _ => (
            "ResolveRecipients",
            resolve(&mut client, name, deadline).await,
        ),
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

/// The write's request id and value go into `call` whatever the outcome:
/// `fault-verify` looks for failed writes in the history too.
async fn write(
    client: &mut ContactsServiceClient<Channel>,
    prefix: &str,
    seq: u64,
    deadline: Duration,
    call: &mut Call,
) -> Result<(), Failed> {
    call.request_id = uuid::Uuid::new_v4().hyphenated().to_string();
    call.value = format!("w{seq}@{prefix}{}.example", call.partner);
    let req = fault_update(prefix, call.partner, &call.value, &call.request_id);
    let ci = bounded(
        deadline,
        client.update_contacts(with_deadline(req, deadline)),
    )
    .await?;
    wrong_unless(
        first_email(&ci) == call.value && !ci.etag.is_empty(),
        "the update did not return its own value",
    )?;
    call.etag = ci.etag;
    Ok(())
}

async fn get(
    client: &mut ContactsServiceClient<Channel>,
    name: String,
    deadline: Duration,
) -> Result<(), Failed> {
    let req = get_request(name.clone());
    let ci = bounded(deadline, client.get_contacts(with_deadline(req, deadline))).await?;
    wrong_unless(
        ci.name == name && !ci.etag.is_empty(),
        "another or an incomplete resource",
    )
}

async fn gate(
    client: &mut ContactsServiceClient<Channel>,
    name: String,
    deadline: Duration,
) -> Result<(), Failed> {
    let req = gate_request(name);
    let g = bounded(
        deadline,
        client.check_onboarding_gate(with_deadline(req, deadline)),
    )
    .await?;
    wrong_unless(gate_open(&g), "gate closed for a complete partner")
}

async fn resolve(
    client: &mut ContactsServiceClient<Channel>,
    name: String,
    deadline: Duration,
) -> Result<(), Failed> {
    let req = alert_request(name);
    let x = bounded(
        deadline,
        client.resolve_recipients(with_deadline(req, deadline)),
    )
    .await?;
    wrong_unless(
        alerts_to_alert_contacts(&x),
        "not resolved to the alert contacts",
    )
}

fn write_calls(path: &Path, calls: &[Call]) -> Result<(), String> {
    let err = file_error(path);
    let mut w = BufWriter::new(std::fs::File::create(path).map_err(&err)?);
    for c in calls {
        writeln!(w, "{}", c.tsv()).map_err(&err)?;
    }
    w.flush().map_err(&err)
}

fn print_totals(all: &[Call], started_ns: u64, duration: f64) {
    let writes = all.iter().filter(|c| c.rpc == "UpdateContacts").count();
    let elapsed = (now_ns() - started_ns) as f64 / 1e9;
    // The scheduling time: from the first call's start to the last one's.
    let span = match (all.first(), all.iter().map(|c| c.start_ns).max()) {
        (Some(a), Some(b)) if b > a.start_ns => (b - a.start_ns) as f64 / 1e9,
        _ => duration,
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
}
