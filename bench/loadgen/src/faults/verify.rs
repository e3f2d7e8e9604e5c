//! `fault-verify`: what the steady load's writes left behind (phase 3),
//! read back from `--calls` after the outage.
//!
//! Three parts, each its own `RESULT part=` line:
//! - `recovery` (and `outage-writes`): from the calls alone, against the
//!   outage's times (`--pg-down-ns`, `--pg-start-ns`, `--pg-ready-ns`): how
//!   long until the first acknowledged write, and how the writes started
//!   during the outage ended;
//! - `history` (and `failed-saved`): every acknowledged write found in the
//!   revision history (ListContactInfoRevisions) with its value and etag,
//!   no request id saved twice, and how many failed writes were saved anyway;
//! - `retries`: `--retries` acknowledged writes, and up to half as many
//!   failed ones saved and not saved, sent again with the same `request_id`;
//!   each must answer what was saved, and be saved once.
//!
//! `bench/faults` checks the same in SQL; this is the check through the API.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;
use tonic::transport::Channel;

use super::{
    CLIENT_DEADLINE, Call, bounded, count_and_latency, fault_update, file_error, first_email,
    ms_between, ms_or_none, with_deadline,
};
use crate::pb::contacts_service_client::ContactsServiceClient;
use crate::{Args, connect, contact_info_name, pb};

pub async fn verify(args: &Args) -> Result<bool, String> {
    let f = &args.faults;
    let path = f.calls.clone().ok_or("fault-verify needs --calls FILE")?;
    let outage = Outage {
        down: f.pg_down_ns.ok_or("fault-verify needs --pg-down-ns")?,
        start: f.pg_start_ns.ok_or("fault-verify needs --pg-start-ns")?,
        ready: f.pg_ready_ns.ok_or("fault-verify needs --pg-ready-ns")?,
    };
    let prefix = &args.partner_prefix;
    let calls = read_calls(&path)?;
    let writes = Writes::of(&calls);
    print_recovery(&writes, &outage);
    print_outage_writes(&writes, &outage);

    let channel = connect(&args.addr, Duration::from_secs(5)).await?;
    let mut client = ContactsServiceClient::new(channel);
    let mut problems: Vec<String> = Vec::new();
    let partners = partners_of(&writes.all);
    let t0 = Instant::now();
    let by_id = histories(&client, prefix, &partners).await?;
    let (acked_bad, failed_saved, failed_unsaved) =
        check_history(&writes, &by_id, &outage, &mut problems);
    print_history(
        &writes,
        &by_id,
        partners.len(),
        &acked_bad,
        &failed_saved,
        t0,
    );

    let samples = Retried {
        acked: spread(&writes.acked, f.retries),
        saved: spread(&failed_saved, f.retries / 2),
        unsaved: spread(&failed_unsaved, f.retries / 2),
    };
    let mut outcomes = samples
        .retry(&mut client, prefix, &by_id, &mut problems)
        .await;
    outcomes.not_once = samples.saved_once(&client, prefix, &mut problems).await?;
    outcomes.print(&samples);
    print_problems(&problems);
    Ok(true)
}

/// When PostgreSQL was down, ns since the epoch. It is down from `down`
/// (stop returned; an immediate stop ends every connection, so no write in
/// flight then can succeed) until `start` at least; pg_isready saw it back
/// at `ready` (polled, so the service may see it a few ms sooner).
struct Outage {
    down: u64,
    start: u64,
    ready: u64,
}

fn read_calls(path: &Path) -> Result<Vec<Call>, String> {
    let err = file_error(path);
    let file = std::fs::File::open(path).map_err(&err)?;
    let mut calls = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(&err)?;
        calls.push(
            Call::parse(&line).ok_or_else(|| format!("{}:{}: bad line", path.display(), i + 1))?,
        );
    }
    Ok(calls)
}

/// The failures the outage may cause. A write that failed with one of these
/// may or may not have been saved; any other failure is a bug of its own.
fn outage_failure(code: &str) -> bool {
    code == "UNAVAILABLE" || code == "DEADLINE_EXCEEDED" || code == CLIENT_DEADLINE
}

/// The steady load's UpdateContacts, by outcome.
struct Writes<'a> {
    all: Vec<&'a Call>,
    acked: Vec<&'a Call>,
    /// Failed with an [`outage_failure`] code.
    failed: Vec<&'a Call>,
}

impl<'a> Writes<'a> {
    fn of(calls: &'a [Call]) -> Self {
        let all: Vec<&Call> = calls.iter().filter(|c| c.rpc == "UpdateContacts").collect();
        let acked = all.iter().copied().filter(|c| c.code == "OK").collect();
        let failed = all
            .iter()
            .copied()
            .filter(|c| outage_failure(&c.code))
            .collect();
        Self { all, acked, failed }
    }
}

fn print_recovery(writes: &Writes, o: &Outage) {
    let acked_in_outage = writes
        .acked
        .iter()
        .filter(|c| c.end_ns > o.down && c.end_ns < o.start)
        .count();
    let last_ok_before = writes
        .acked
        .iter()
        .filter(|c| c.end_ns <= o.down)
        .map(|c| c.end_ns)
        .max();
    let first_ok_after = writes
        .acked
        .iter()
        .filter(|c| c.end_ns >= o.start)
        .min_by_key(|c| c.end_ns);
    // Writes that failed after the database was back.
    let failed_after_ready: Vec<&&Call> = writes
        .all
        .iter()
        .filter(|c| c.code != "OK" && c.start_ns >= o.ready)
        .collect();
    println!(
        "RESULT mode=fault-verify part=recovery acked_in_outage={} last_ok_before_stop_ms={} recover_ms={} first_ok_write_started_ms={} failed_writes_started_after_ready={} last_failure_after_ready_ms={}",
        acked_in_outage,
        ms_or_none(last_ok_before.map(|t| ms_between(o.down, t))),
        ms_or_none(first_ok_after.map(|c| ms_between(o.ready, c.end_ns))),
        ms_or_none(first_ok_after.map(|c| ms_between(o.ready, c.start_ns))),
        failed_after_ready.len(),
        ms_or_none(
            failed_after_ready
                .iter()
                .map(|c| c.end_ns)
                .max()
                .map(|t| ms_between(o.ready, t))
        ),
    );
}

/// How the writes started while PostgreSQL was not accepting connections
/// ended, by code.
fn print_outage_writes(writes: &Writes, o: &Outage) {
    let mut by_code: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for c in writes
        .all
        .iter()
        .filter(|c| c.start_ns >= o.down && c.start_ns < o.ready)
    {
        by_code
            .entry(c.code.as_str())
            .or_default()
            .push(c.latency_ns());
    }
    for (code, lat) in &by_code {
        println!(
            "RESULT mode=fault-verify part=outage-writes code={code} {}",
            count_and_latency(lat)
        );
    }
}

/// The partners of `calls`, each once, in order.
fn partners_of(calls: &[&Call]) -> Vec<u64> {
    let mut partners: Vec<u64> = calls
        .iter()
        .map(|c| c.partner)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    partners.sort_unstable();
    partners
}

/// One revision of the history, as much as the test needs.
#[derive(Clone, Debug)]
struct Rev {
    revision: String,
    etag: String,
    email: String,
}

/// Revisions by request id (lower case).
type ById = HashMap<String, Vec<Rev>>;

/// Every revision of a partner's production contact info that carries a
/// request id, with its request id (lower case).
async fn history(
    mut client: ContactsServiceClient<Channel>,
    prefix: String,
    partner: u64,
) -> Result<Vec<(String, Rev)>, String> {
    let name = contact_info_name(&prefix, partner);
    let mut token = String::new();
    let mut found = Vec::new();
    loop {
        let page = history_page(&mut client, &name, &token).await?;
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

/// One page of the history. UNAVAILABLE is retried (5 times, 200 ms
/// apart): this runs right after the outage, and a passing UNAVAILABLE is
/// not what this check is about.
async fn history_page(
    client: &mut ContactsServiceClient<Channel>,
    name: &str,
    token: &str,
) -> Result<pb::ListContactInfoRevisionsResponse, String> {
    let deadline = Duration::from_secs(10);
    let mut attempt = 0;
    loop {
        let req = pb::ListContactInfoRevisionsRequest {
            name: name.to_owned(),
            page_size: 1000,
            page_token: token.to_owned(),
        };
        match bounded(
            deadline,
            client.list_contact_info_revisions(with_deadline(req, deadline)),
        )
        .await
        {
            Ok(p) => return Ok(p),
            Err((code, msg)) if code == "UNAVAILABLE" && attempt < 5 => {
                attempt += 1;
                eprintln!("loadgen: history of {name}: {code} ({msg}); retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err((code, msg)) => return Err(format!("history of {name}: {code}: {msg}")),
        }
    }
}

/// Histories of `partners`, 16 at a time.
async fn histories(
    client: &ContactsServiceClient<Channel>,
    prefix: &str,
    partners: &[u64],
) -> Result<ById, String> {
    let mut by_id = ById::new();
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

/// Acknowledged writes not in the history, or with another value or etag.
#[derive(Default)]
struct AckedBad {
    missing: u64,
    wrong_value: u64,
    wrong_etag: u64,
}

/// Every acknowledged write is in the history with its value and the etag
/// it returned; no request id is saved twice. Returns what was wrong, and
/// the failed writes that were saved and those that were not.
fn check_history<'a>(
    writes: &Writes<'a>,
    by_id: &ById,
    o: &Outage,
    problems: &mut Vec<String>,
) -> (AckedBad, Vec<&'a Call>, Vec<&'a Call>) {
    let acked_bad = check_acked(&writes.acked, by_id, problems);
    for (id, revs) in by_id.iter().filter(|(_, v)| v.len() > 1).take(5) {
        problems.push(format!(
            "request {id} saved {} times: {:?}",
            revs.len(),
            revs.iter().map(|r| &r.revision).collect::<Vec<_>>()
        ));
    }
    // Failed writes: allowed either way; how many were saved.
    let failed_saved: Vec<&Call> = writes
        .failed
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
            ms_between(o.down, c.start_ns),
            ms_between(o.down, c.end_ns),
            ms_between(o.down, o.ready),
        );
    }
    let failed_unsaved: Vec<&Call> = writes
        .failed
        .iter()
        .copied()
        .filter(|c| !by_id.contains_key(&c.request_id))
        .collect();
    (acked_bad, failed_saved, failed_unsaved)
}

fn check_acked(acked: &[&Call], by_id: &ById, problems: &mut Vec<String>) -> AckedBad {
    let mut bad = AckedBad::default();
    for c in acked {
        let Some(revs) = by_id.get(&c.request_id).filter(|v| !v.is_empty()) else {
            bad.missing += 1;
            problems.push(format!(
                "acked write {} (partner {}, {}) not in the history",
                c.request_id, c.partner, c.value
            ));
            continue;
        };
        if !revs.iter().any(|r| r.email == c.value) {
            bad.wrong_value += 1;
            problems.push(format!(
                "acked write {}: revision {} holds {} not {}",
                c.request_id, revs[0].revision, revs[0].email, c.value
            ));
        }
        if !revs.iter().any(|r| r.etag == c.etag) {
            bad.wrong_etag += 1;
            problems.push(format!(
                "acked write {}: revision {} has etag {} but the call returned {}",
                c.request_id, revs[0].revision, revs[0].etag, c.etag
            ));
        }
    }
    bad
}

fn print_history(
    writes: &Writes,
    by_id: &ById,
    partners: usize,
    acked_bad: &AckedBad,
    failed_saved: &[&Call],
    t0: Instant,
) {
    // Found in the history, though not necessarily with the call's value.
    let saved = |c: &&Call| by_id.contains_key(&c.request_id);
    let failed_other = writes
        .all
        .iter()
        .filter(|c| c.code != "OK" && !outage_failure(&c.code))
        .filter(|c| saved(c))
        .count();
    let mut failed_saved_by_code: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for c in &writes.failed {
        let e = failed_saved_by_code.entry(c.code.as_str()).or_default();
        e.0 += 1;
        if saved(c) {
            e.1 += 1;
        }
    }
    println!(
        "RESULT mode=fault-verify part=history partners={} revisions_with_request_id={} acked={} missing={} wrong_value={} wrong_etag={} duplicated_request_ids={} failed={} failed_saved={} failed_other_code_saved={} seconds={:.1}",
        partners,
        by_id.values().map(Vec::len).sum::<usize>(),
        writes.acked.len(),
        acked_bad.missing,
        acked_bad.wrong_value,
        acked_bad.wrong_etag,
        by_id.values().filter(|v| v.len() > 1).count(),
        writes.failed.len(),
        failed_saved.len(),
        failed_other,
        t0.elapsed().as_secs_f64(),
    );
    for (code, (n, saved)) in &failed_saved_by_code {
        println!("RESULT mode=fault-verify part=failed-saved code={code} failed={n} saved={saved}");
    }
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
    .map_err(|(code, msg)| format!("{code}: {msg}"))
}

/// The writes sent again with the same request id.
struct Retried<'a> {
    acked: Vec<&'a Call>,
    /// Failed, but saved.
    saved: Vec<&'a Call>,
    /// Failed, and not saved.
    unsaved: Vec<&'a Call>,
}

/// How the retries answered: `.0` as they should, `.1` otherwise.
#[derive(Default)]
struct RetryOutcomes {
    acked: (u64, u64),
    saved: (u64, u64),
    unsaved: (u64, u64),
    /// Request ids not in exactly one revision after the retries.
    not_once: u64,
}

impl Retried<'_> {
    /// An acknowledged or saved write answers what was saved; an unsaved
    /// one saves now, once.
    async fn retry(
        &self,
        client: &mut ContactsServiceClient<Channel>,
        prefix: &str,
        by_id: &ById,
        problems: &mut Vec<String>,
    ) -> RetryOutcomes {
        RetryOutcomes {
            acked: retry_acked(client, prefix, &self.acked, problems).await,
            saved: retry_saved(client, prefix, &self.saved, by_id, problems).await,
            unsaved: retry_unsaved(client, prefix, &self.unsaved, problems).await,
            not_once: 0,
        }
    }

    /// How many of the retried request ids are not in exactly one revision.
    async fn saved_once(
        &self,
        client: &ContactsServiceClient<Channel>,
        prefix: &str,
        problems: &mut Vec<String>,
    ) -> Result<u64, String> {
        let retried: Vec<&Call> = self
            .acked
            .iter()
            .chain(&self.saved)
            .chain(&self.unsaved)
            .copied()
            .collect();
        let after = histories(client, prefix, &partners_of(&retried)).await?;
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
        Ok(not_once)
    }
}

/// Retries each of `calls` once: the answer must carry `expected(c)`'s etag
/// and the call's own value. Returns how many did, and how many did not.
async fn retry_expecting(
    client: &mut ContactsServiceClient<Channel>,
    prefix: &str,
    calls: &[&Call],
    what: &str,
    expected: impl Fn(&Call) -> String,
    mismatch: impl Fn(&Call, &pb::ContactInfo, &str) -> String,
    problems: &mut Vec<String>,
) -> (u64, u64) {
    let (mut same, mut different) = (0u64, 0u64);
    for c in calls {
        let etag = expected(c);
        match retry(client, prefix, c).await {
            Ok(ci) if ci.etag == etag && first_email(&ci) == c.value => same += 1,
            Ok(ci) => {
                different += 1;
                problems.push(mismatch(c, &ci, &etag));
            }
            Err(e) => {
                different += 1;
                problems.push(format!("retry of {what} {}: {e}", c.request_id));
            }
        }
    }
    (same, different)
}

/// Each must answer the etag and value its first call returned.
async fn retry_acked(
    client: &mut ContactsServiceClient<Channel>,
    prefix: &str,
    calls: &[&Call],
    problems: &mut Vec<String>,
) -> (u64, u64) {
    let mismatch = |c: &Call, ci: &pb::ContactInfo, _: &str| {
        format!(
            "retry of acked {}: etag {} value {}, first call returned etag {} value {}",
            c.request_id,
            ci.etag,
            first_email(ci),
            c.etag,
            c.value
        )
    };
    let expected = |c: &Call| c.etag.clone();
    retry_expecting(client, prefix, calls, "acked", expected, mismatch, problems).await
}

/// Each must answer the etag of the revision its failed call saved.
async fn retry_saved(
    client: &mut ContactsServiceClient<Channel>,
    prefix: &str,
    calls: &[&Call],
    by_id: &ById,
    problems: &mut Vec<String>,
) -> (u64, u64) {
    let expected = |c: &Call| {
        by_id
            .get(&c.request_id)
            .and_then(|v| v.first())
            .map(|r| r.etag.clone())
            .unwrap_or_default()
    };
    let mismatch = |c: &Call, ci: &pb::ContactInfo, saved_etag: &str| {
        format!(
            "retry of failed-but-saved {}: etag {}, saved revision has {}",
            c.request_id, ci.etag, saved_etag
        )
    };
    let what = "failed-but-saved";
    retry_expecting(client, prefix, calls, what, expected, mismatch, problems).await
}

/// The first retry saves; a second must answer the same.
async fn retry_unsaved(
    client: &mut ContactsServiceClient<Channel>,
    prefix: &str,
    calls: &[&Call],
    problems: &mut Vec<String>,
) -> (u64, u64) {
    let (mut saved_once, mut bad) = (0u64, 0u64);
    for c in calls {
        let first = retry(client, prefix, c).await;
        let second = retry(client, prefix, c).await;
        match (first, second) {
            (Ok(a), Ok(b)) if a.etag == b.etag && first_email(&a) == c.value => saved_once += 1,
            (a, b) => {
                bad += 1;
                problems.push(format!(
                    "retries of failed-unsaved {}: {:?} then {:?}",
                    c.request_id,
                    a.map(|x| x.etag),
                    b.map(|x| x.etag)
                ));
            }
        }
    }
    (saved_once, bad)
}

impl RetryOutcomes {
    fn print(&self, retried: &Retried) {
        println!(
            "RESULT mode=fault-verify part=retries acked_retried={} acked_same={} acked_different={} saved_retried={} saved_same={} saved_different={} unsaved_retried={} unsaved_saved_once={} unsaved_bad={} not_exactly_one_revision={}",
            retried.acked.len(),
            self.acked.0,
            self.acked.1,
            retried.saved.len(),
            self.saved.0,
            self.saved.1,
            retried.unsaved.len(),
            self.unsaved.0,
            self.unsaved.1,
            self.not_once,
        );
    }
}

fn print_problems(problems: &[String]) {
    for p in problems.iter().take(50) {
        eprintln!("loadgen: PROBLEM {p}");
    }
    if problems.len() > 50 {
        eprintln!("loadgen: ... and {} more problems", problems.len() - 50);
    }
}
