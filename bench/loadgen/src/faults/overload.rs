//! `overload`: ten times the server's call limit (phase 4).
//!
//! `--concurrency` closed-loop workers over `--connections` connections for
//! `--duration` seconds. Most calls are UpdateContacts, because those hold
//! their slot for a database round trip, so that the limit really is
//! reached; every `--read-every`th is a GetContacts. A shed call is sent
//! again at once, without backoff: the worst client. Prints the counts by
//! code, the shed fraction and the latency of the admitted calls.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tonic::transport::Channel;

use super::{
    ByCode, Failed, Samples, bounded, contacts_clients, first_email, print_by_code, print_samples,
    sample, with_deadline, wrong_unless,
};
use crate::pb::contacts_service_client::ContactsServiceClient;
use crate::{Args, Rng, contact_info_name, get_request, ms, percentile, update_request};

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
        set.spawn(
            Worker {
                client: clients[w % clients.len()].clone(),
                prefix: args.partner_prefix.clone(),
                partners: args.partners,
                read_every: f.read_every,
                seq: seq.clone(),
                samples: samples.clone(),
                rng: Rng(args.seed ^ (w as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D)),
                deadline,
                measure_from,
                end,
            }
            .run(),
        );
    }
    let mut groups = ByCode::new();
    while let Some(r) = set.join_next().await {
        for (k, v) in r.map_err(|e| format!("worker panicked: {e}"))? {
            groups.entry(k).or_default().extend(v);
        }
    }
    print_by_code("overload", &groups);
    print_summary(f.concurrency, clients.len(), args.duration, &groups);
    print_samples(&samples);
    Ok(true)
}

/// One call in flight, sent again as soon as it is answered.
struct Worker {
    client: ContactsServiceClient<Channel>,
    prefix: String,
    partners: u64,
    read_every: u64,
    /// Shared by the workers, so that one call in `read_every` is a read.
    seq: Arc<AtomicU64>,
    samples: Samples,
    rng: Rng,
    deadline: Duration,
    measure_from: Instant,
    end: Instant,
}

impl Worker {
    async fn run(mut self) -> ByCode {
        let mut groups = ByCode::new();
        loop {
            let started = Instant::now();
            if started >= self.end {
                break;
            }
            let n = self.seq.fetch_add(1, Ordering::Relaxed);
            let (rpc, r) = self.call(n).await;
            if started < self.measure_from {
                continue;
            }
            let lat = started.elapsed().as_nanos() as u64;
            let code = match r {
                Ok(()) => "OK",
                Err((code, msg)) => {
                    sample(&self.samples, rpc, code, &msg);
                    code
                }
            };
            groups
                .entry((rpc.to_owned(), code.to_owned()))
                .or_default()
                .push(lat);
        }
        groups
    }

    /// Call `n`, on a random partner: a GetContacts or an UpdateContacts.
    async fn call(&mut self, n: u64) -> (&'static str, Result<(), Failed>) {
        let partner = self.rng.partner(self.partners);
        let name = contact_info_name(&self.prefix, partner);
        let deadline = self.deadline;
        let unexpected = |right: bool| wrong_unless(right, "unexpected content");
        if self.read_every > 0 && n.is_multiple_of(self.read_every) {
            let req = get_request(name.clone());
            let r = bounded(
                deadline,
                self.client.get_contacts(with_deadline(req, deadline)),
            )
            .await;
            ("GetContacts", r.and_then(|ci| unexpected(ci.name == name)))
        } else {
            let email = format!("o{n}@{}{partner}.example", self.prefix);
            let req = update_request(name, &email);
            let r = bounded(
                deadline,
                self.client.update_contacts(with_deadline(req, deadline)),
            )
            .await;
            (
                "UpdateContacts",
                r.and_then(|ci| unexpected(first_email(&ci) == email)),
            )
        }
    }
}

/// Sorted latencies of the groups whose code is (or is not) RESOURCE_EXHAUSTED.
fn latencies(groups: &ByCode, shed: bool) -> Vec<u64> {
    let mut lat: Vec<u64> = groups
        .iter()
        .filter(|((_, c), _)| (c == "RESOURCE_EXHAUSTED") == shed)
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    lat.sort_unstable();
    lat
}

fn print_summary(concurrency: usize, connections: usize, duration: f64, groups: &ByCode) {
    let total: usize = groups.values().map(Vec::len).sum();
    let admitted = latencies(groups, false);
    let shed = latencies(groups, true);
    let ok_writes = groups
        .get(&("UpdateContacts".to_owned(), "OK".to_owned()))
        .map_or(0, Vec::len);
    println!(
        "RESULT mode=overload concurrency={} connections={} seconds={:.1} calls={} shed={} shed_fraction={:.4} admitted={} admitted_p50_ms={:.3} admitted_p99_ms={:.3} admitted_max_ms={:.3} shed_p50_ms={:.3} shed_p99_ms={:.3} ok_writes_per_s={:.1} rps={:.1}",
        concurrency,
        connections,
        duration,
        total,
        shed.len(),
        if total == 0 {
            0.0
        } else {
            shed.len() as f64 / total as f64
        },
        admitted.len(),
        ms(percentile(&admitted, 50.0)),
        ms(percentile(&admitted, 99.0)),
        ms(admitted.last().copied().unwrap_or(0)),
        ms(percentile(&shed, 50.0)),
        ms(percentile(&shed, 99.0)),
        ok_writes as f64 / duration,
        total as f64 / duration,
    );
}
