//! What validating contact information costs: see bench/VALIDATION.md.
//! Run it with `bench/validation`, which builds it in release.
//!
//!   validation_bench cold                 first number of each country, nothing warmed
//!   validation_bench warm [--threads N,M] [--countries K]
//!                                         warm-up, first numbers after it, steady state, threads
//!   validation_bench cg-first|cg-first-warmed|cg-steady|cg-steady-no-phones|cg-load|cg-warm-up [--iters K]
//!                                         for callgrind: only the measure_* function is collected
//!
//! A "contact info" here is an `UpdateContactsRequest` whose one masked field
//! holds 20 contacts, each with a phone number of a different country,
//! validated by `partner_contacts::api::convert::parse_update`.
use std::hint::black_box;
use std::time::{Duration, Instant};

use partner_contacts::api::convert::parse_update;
use partner_contacts::pb;

/// One number of each of 20 countries, written as people write them.
const NUMBERS: [(&str, &str); 20] = [
    ("US", "+1 650-253-0000"),
    ("GB", "+44 20 7031 3000"),
    ("DE", "+49 30 303986300"),
    ("FR", "+33 1 42 68 53 00"),
    ("CH", "+41 44 668 18 00"),
    ("IT", "+39 02 3659 4500"),
    ("ES", "+34 91 748 64 00"),
    ("NL", "+31 20 522 8900"),
    ("SE", "+46 8 519 926 00"),
    ("PL", "+48 22 207 00 00"),
    ("JP", "+81 3-6384-9000"),
    ("CN", "+86 10 6250 3000"),
    ("IN", "+91 80 6721 8000"),
    ("AU", "+61 2 9374 4000"),
    ("BR", "+55 11 2395-8400"),
    ("MX", "+52 55 5342 8400"),
    ("ZA", "+27 21 446 8000"),
    ("KR", "+82 2-531-9000"),
    ("SG", "+65 6521 8000"),
    ("AE", "+971 4 450 9500"),
];

fn request(numbers: &[(&str, &str)], with_phones: bool) -> pb::UpdateContactsRequest {
    let contacts = numbers
        .iter()
        .enumerate()
        .map(|(i, (country, number))| pb::Contact {
            email: format!("oncall-{}-{i}@example.com", country.to_ascii_lowercase()),
            phone_number: if with_phones {
                (*number).to_owned()
            } else {
                String::new()
            },
            ..Default::default()
        })
        .collect();
    pb::UpdateContactsRequest {
        contact_info: Some(pb::ContactInfo {
            name: "partners/acme/environments/production/contactInfo".to_owned(),
            technical_emergency_contacts: contacts,
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["technical_emergency_contacts".to_owned()],
        }),
        ..Default::default()
    }
}

fn validate(req: &pb::UpdateContactsRequest) {
    parse_update(black_box(req)).expect("the benchmark's contact info is valid");
}

/// Loads the libraries (phone metadata, email tables) without compiling any
/// country's patterns: a contact without a phone, then a number whose
/// country code does not exist. Returns how long the second took.
fn load_libraries() -> Duration {
    validate(&request(&NUMBERS[..1], false));
    let mut req = request(&NUMBERS[..1], true);
    req.contact_info
        .as_mut()
        .unwrap()
        .technical_emergency_contacts[0]
        .phone_number = "+999 1234567".to_owned();
    let started = Instant::now();
    assert!(parse_update(&req).is_err(), "+999 is no country code");
    started.elapsed()
}

/// The first validation of one number of each country, one request each.
fn first_of_each_country() -> Vec<Duration> {
    NUMBERS
        .iter()
        .map(|n| {
            let req = request(std::slice::from_ref(n), true);
            let started = Instant::now();
            validate(&req);
            started.elapsed()
        })
        .collect()
}

fn report_firsts(label: &str, firsts: &[Duration]) {
    let mut sorted = firsts.to_vec();
    sorted.sort();
    let total: Duration = firsts.iter().sum();
    println!(
        "{label}: total {} for 20 countries, median {}, max {}",
        show(total),
        show(sorted[sorted.len() / 2]),
        show(sorted[sorted.len() - 1])
    );
    let each: Vec<String> = NUMBERS
        .iter()
        .zip(firsts)
        .map(|((country, _), d)| format!("{country} {}", show(*d)))
        .collect();
    println!("  per country: {}", each.join(", "));
}

fn show(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns >= 10_000_000 {
        format!("{:.1} ms", ns as f64 / 1e6)
    } else if ns >= 10_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}

/// Nanoseconds per validation of `req`: the median of 7 batches, each of at
/// least `min_batch` and at least 5 validations.
fn ns_per_call(req: &pb::UpdateContactsRequest, min_batch: Duration) -> f64 {
    let mut per_call = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let mut calls = 0u64;
        while calls < 5 || started.elapsed() < min_batch {
            validate(req);
            calls += 1;
        }
        per_call.push(started.elapsed().as_nanos() as f64 / calls as f64);
    }
    per_call.sort_by(f64::total_cmp);
    per_call[3]
}

/// What the scheduler says about the calling thread (Linux): nanoseconds on
/// a CPU, nanoseconds runnable but waiting for one, and voluntary context
/// switches (the thread blocked, e.g. on a lock). Zeros elsewhere.
fn sched() -> [u64; 3] {
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    let schedstat = read("/proc/thread-self/schedstat");
    let mut times = schedstat.split_whitespace().map(|n| n.parse().unwrap_or(0));
    let status = read("/proc/thread-self/status");
    let voluntary = status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    [
        times.next().unwrap_or(0),
        times.next().unwrap_or(0),
        voluntary,
    ]
}

/// What the threads of one run did, averaged over them.
struct ThreadRun {
    /// Validations per second of wall-clock time.
    rate: f64,
    /// Validations per second on a CPU: what the thread would do alone on a core.
    cpu_rate: f64,
    /// Share of the wall-clock time spent blocked (neither running nor runnable).
    blocked: f64,
    /// Share of the wall-clock time spent runnable, waiting for a core.
    waiting: f64,
    /// Voluntary context switches per 1000 validations.
    switches: f64,
}

/// Each of `threads` threads validates `calls` times at once.
fn run_threads(req: &pb::UpdateContactsRequest, threads: usize, calls: u64) -> ThreadRun {
    let start = std::sync::Barrier::new(threads);
    let runs: Vec<ThreadRun> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let req = req.clone();
                    start.wait();
                    let before = sched();
                    let started = Instant::now();
                    for _ in 0..calls {
                        validate(&req);
                    }
                    let wall = started.elapsed().as_nanos() as f64;
                    let after = sched();
                    let [cpu, wait, switches] =
                        [0, 1, 2].map(|i| after[i].saturating_sub(before[i]) as f64);
                    ThreadRun {
                        rate: calls as f64 * 1e9 / wall,
                        cpu_rate: if cpu > 0.0 {
                            calls as f64 * 1e9 / cpu
                        } else {
                            f64::NAN
                        },
                        blocked: ((wall - cpu - wait) / wall).max(0.0),
                        waiting: wait / wall,
                        switches: switches * 1000.0 / calls as f64,
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mean = |f: fn(&ThreadRun) -> f64| runs.iter().map(f).sum::<f64>() / runs.len() as f64;
    ThreadRun {
        rate: mean(|r| r.rate),
        cpu_rate: mean(|r| r.cpu_rate),
        blocked: mean(|r| r.blocked),
        waiting: mean(|r| r.waiting),
        switches: mean(|r| r.switches),
    }
}

/// Resident memory of this process in MiB (Linux; 0 elsewhere).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// What the server runs before it serves.
fn warm_up() -> Duration {
    partner_contacts::domain::warm_up_validation()
}

#[inline(never)]
fn measure_first(req: &pb::UpdateContactsRequest) {
    validate(req);
}

#[inline(never)]
fn measure_steady(req: &pb::UpdateContactsRequest, iters: u64) {
    for _ in 0..iters {
        validate(req);
    }
}

#[inline(never)]
fn measure_warm_up() -> Duration {
    warm_up()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "warm".to_owned());
    let mut threads = vec![1, 2];
    let mut iters = 20u64;
    let mut countries = NUMBERS.len();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => {
                threads = args
                    .next()
                    .expect("--threads N,M")
                    .split(',')
                    .map(|n| n.parse().expect("--threads takes numbers"))
                    .collect();
            }
            "--iters" => iters = args.next().and_then(|n| n.parse().ok()).expect("--iters K"),
            "--countries" => {
                countries = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| (1..=NUMBERS.len()).contains(n))
                    .expect("--countries 1..=20");
            }
            other => panic!("unknown argument {other:?}"),
        }
    }
    let full = request(&NUMBERS, true);
    match mode.as_str() {
        "cold" => {
            println!(
                "library load (first phone number, unknown country code): {}",
                show(load_libraries())
            );
            report_firsts(
                "first number of a country, nothing warmed",
                &first_of_each_country(),
            );
        }
        "warm" => {
            load_libraries();
            let rss_before = rss_mib();
            let took = warm_up();
            println!(
                "warm-up: {} (resident memory {rss_before:.0} -> {:.0} MiB)",
                show(took),
                rss_mib()
            );
            report_firsts(
                "first number of a country, after warm-up",
                &first_of_each_country(),
            );
            let started = Instant::now();
            validate(&full);
            println!(
                "first 20-country contact info after warm-up: {}",
                show(started.elapsed())
            );
            let with = ns_per_call(&full, Duration::from_millis(200));
            let without = ns_per_call(&request(&NUMBERS, false), Duration::from_millis(200));
            println!(
                "warm: {with:.0} ns per contact info (20 contacts, 20 countries), {:.0} ns per phone number \
                 (the same contacts without phones: {without:.0} ns)",
                (with - without) / 20.0
            );
            // The same contacts, with phone numbers of the first `countries`
            // countries only (e.g. to stay within a library's cache).
            let cycled: Vec<_> = NUMBERS[..countries]
                .iter()
                .copied()
                .cycle()
                .take(NUMBERS.len())
                .collect();
            let threaded = request(&cycled, true);
            let with = if countries == NUMBERS.len() {
                with
            } else {
                ns_per_call(&threaded, Duration::from_millis(200))
            };
            // Calls per thread: about a second's worth for one thread.
            let calls = ((1e9 / with) as u64).clamp(5, 1_000_000);
            let one = run_threads(&threaded, 1, calls);
            let cores = std::thread::available_parallelism().map_or(0, |p| p.get());
            for &n in &threads {
                let run = run_threads(&threaded, n, calls);
                println!(
                    "threads {n} ({cores} cores, {countries} countries): {:.0} contact infos/s per thread, {:.2} x one thread's; \
                     on-CPU rate {:.2} x one thread's; blocked {:.0} %, waiting for a core {:.0} % of the time; \
                     {:.1} voluntary context switches per 1000",
                    run.rate,
                    run.rate / one.rate,
                    run.cpu_rate / one.cpu_rate,
                    run.blocked * 100.0,
                    run.waiting * 100.0,
                    run.switches
                );
            }
        }
        "cg-first" => {
            load_libraries();
            measure_first(&full);
        }
        "cg-steady" => {
            load_libraries();
            // What the steady state needs is compiled by these, warm-up or not.
            for _ in 0..3 {
                validate(&full);
            }
            measure_steady(&full, iters);
        }
        "cg-steady-no-phones" => {
            let no_phones = request(&NUMBERS, false);
            load_libraries();
            for _ in 0..3 {
                validate(&no_phones);
            }
            measure_steady(&no_phones, iters);
        }
        "cg-load" => {
            load_libraries();
        }
        "cg-warm-up" => {
            load_libraries();
            measure_warm_up();
        }
        "cg-first-warmed" => {
            load_libraries();
            warm_up();
            measure_first(&full);
        }
        other => panic!("unknown mode {other:?}"),
    }
}
