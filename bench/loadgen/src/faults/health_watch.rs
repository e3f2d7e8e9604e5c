//! `health-watch`: what `Health/Check` answered, during the outage (phase 2)
//! and under overload (phase 4).
//!
//! A check every `--poll-ms` on a connection of its own, for `--duration`
//! seconds (or until `--stop-file` exists), each bounded by
//! `--deadline-ms`. Prints a `TRANSITION` line whenever the answer changes,
//! then a `RESULT` with latency percentiles and a `HEALTH` line per answer;
//! every check goes to `--out` (time, status, latency ns).
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use tonic_health::pb::health_client::HealthClient;

use super::{bounded, file_error, health_request, health_status_name, now_ns};
use crate::{Args, connect, ms, p50_p99_max_ms};

pub async fn health_watch(args: &Args) -> Result<bool, String> {
    let f = &args.faults;
    let deadline = Duration::from_millis(f.deadline_ms);
    let poll = Duration::from_millis(args.poll_ms.max(1));
    let end = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut out = match &f.out {
        Some(p) => Some(BufWriter::new(
            std::fs::File::create(p).map_err(file_error(p))?,
        )),
        None => None,
    };
    let mut client = HealthClient::new(connect(&args.addr, Duration::from_secs(5)).await?);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = Seen::default();
    while Instant::now() < end && !f.stop_file.as_ref().is_some_and(|p| p.exists()) {
        tick.tick().await;
        let t = now_ns();
        let started = Instant::now();
        let r = bounded(deadline, client.check(health_request(deadline))).await;
        let lat = started.elapsed().as_nanos() as u64;
        let status = match r {
            Ok(h) => health_status_name(h.status),
            Err((code, msg)) => {
                seen.first_error
                    .get_or_insert_with(|| format!("{code}: {msg}"));
                format!("ERR_{code}")
            }
        };
        if let Some(w) = out.as_mut() {
            let _ = writeln!(w, "{t}\t{status}\t{lat}");
        }
        seen.record(t, status, lat);
    }
    if let Some(mut w) = out {
        let _ = w.flush();
    }
    seen.print();
    Ok(true)
}

#[derive(Default)]
struct Seen {
    last: String,
    counts: BTreeMap<String, u64>,
    latencies: Vec<u64>,
    first_error: Option<String>,
}

impl Seen {
    fn record(&mut self, t: u64, status: String, lat: u64) {
        self.latencies.push(lat);
        if status != self.last {
            println!(
                "TRANSITION t_ns={t} status={status} latency_ms={:.3}",
                ms(lat)
            );
            self.last.clone_from(&status);
        }
        *self.counts.entry(status).or_default() += 1;
    }

    fn print(mut self) {
        self.latencies.sort_unstable();
        let count = |status: &str| self.counts.get(status).copied().unwrap_or(0);
        let failed: u64 = self
            .counts
            .iter()
            .filter(|(k, _)| k.as_str() != "SERVING" && k.as_str() != "NOT_SERVING")
            .map(|(_, v)| *v)
            .sum();
        println!(
            "RESULT mode=health-watch checks={} serving={} not_serving={} failed={} last={} {}",
            self.latencies.len(),
            count("SERVING"),
            count("NOT_SERVING"),
            failed,
            if self.last.is_empty() {
                "none"
            } else {
                &self.last
            },
            p50_p99_max_ms(&self.latencies),
        );
        for (k, v) in &self.counts {
            println!("HEALTH status={k} count={v}");
        }
        if let Some(e) = self.first_error {
            eprintln!("loadgen: first failed health check: {e}");
        }
    }
}
