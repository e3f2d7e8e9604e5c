//! Exact bytes for h2load and the minimal server:
//! - `fetch-get`: one real GetContacts answer, its protobuf bytes as the
//!   server sent them, for the minimal server to answer from memory;
//! - `bodies`: h2load's request bodies (5-byte gRPC frame header, then the
//!   protobuf bytes) for Health/Check, GetContacts, CheckOnboardingGate and
//!   ResolveRecipients(PURPOSE_PRODUCTION_ALERT) of one partner;
//! - `check-body`: sends one such body as it is and checks the answer (gRPC
//!   status OK and the content the loaded data implies), because h2load
//!   counts HTTP 200 as success whatever the gRPC status.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::partners::{Picker, Zipf};
use crate::{
    Args, Rng, alert_request, alerts_to_alert_contacts, connect, contact_info_name, gate_open,
    gate_request, get_request, pb,
};

pub const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";
pub const GET_CONTACTS: &str = "/partnerportal.contacts.v1.ContactsService/GetContacts";
pub const CHECK_GATE: &str = "/partnerportal.contacts.v1.ContactsService/CheckOnboardingGate";
pub const RESOLVE: &str = "/partnerportal.contacts.v1.ContactsService/ResolveRecipients";

/// Messages as bytes, untouched both ways.
#[derive(Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

/// One unary call with `message` as the request's protobuf bytes; the
/// answer's protobuf bytes.
async fn raw_call(channel: Channel, path: &str, message: Bytes) -> Result<Bytes, String> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| format!("{path}: connection not ready: {e}"))?;
    let path_q = PathAndQuery::from_maybe_shared(path.to_owned())
        .map_err(|e| format!("bad path {path}: {e}"))?;
    grpc.unary(tonic::Request::new(message), path_q, RawCodec)
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| format!("{path}: gRPC {:?}: {}", s.code(), s.message()))
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(5 + message.len());
    v.push(0); // not compressed
    v.extend_from_slice(&(message.len() as u32).to_be_bytes());
    v.extend_from_slice(message);
    v
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn out_path(args: &Args) -> Result<&PathBuf, String> {
    args.faults
        .out
        .as_ref()
        .ok_or_else(|| format!("--rpc {:?} needs --out", args.rpc))
}

/// `fetch-get`: GetContacts of `--partner`, its answer's bytes to `--out`.
pub async fn fetch_get(args: &Args) -> Result<bool, String> {
    let out = out_path(args)?;
    let channel = connect(&args.addr, Duration::from_secs(5)).await?;
    let name = contact_info_name(&args.partner_prefix, args.partner);
    let answer = raw_call(
        channel,
        GET_CONTACTS,
        get_request(name.clone()).encode_to_vec().into(),
    )
    .await?;
    let info = pb::ContactInfo::decode(answer.clone())
        .map_err(|e| format!("GetContacts answer does not decode: {e}"))?;
    if info.name != name || info.etag.is_empty() {
        return Err(format!(
            "GetContacts of {name} returned {} (etag {:?})",
            info.name, info.etag
        ));
    }
    write(out, &answer)?;
    println!(
        "RESULT rpc=FetchGet partner={} bytes={} reencoded_bytes={}",
        args.partner,
        answer.len(),
        info.encoded_len()
    );
    Ok(true)
}

/// `bodies`: h2load's request bodies for `--partner`, into the directory
/// `--out`: health.bin, get.bin, gate.bin, resolve.bin.
pub fn bodies(args: &Args) -> Result<bool, String> {
    let dir = out_path(args)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = contact_info_name(&args.partner_prefix, args.partner);
    let health = HealthCheckRequest {
        service: String::new(),
    };
    let files: [(&str, Vec<u8>); 4] = [
        ("health.bin", health.encode_to_vec()),
        ("get.bin", get_request(name.clone()).encode_to_vec()),
        ("gate.bin", gate_request(name.clone()).encode_to_vec()),
        ("resolve.bin", alert_request(name).encode_to_vec()),
    ];
    for (file, message) in &files {
        write(&dir.join(file), &frame(message))?;
    }
    println!(
        "RESULT rpc=Bodies partner={} dir={}",
        args.partner,
        dir.display()
    );
    Ok(true)
}

/// `check-body`: sends `--body` (a framed request, as h2load sends it) to
/// `--path` once and checks the answer.
pub async fn check_body(args: &Args) -> Result<bool, String> {
    let body_path = args.body.as_ref().ok_or("--rpc check-body needs --body")?;
    let path = args
        .path
        .as_deref()
        .ok_or("--rpc check-body needs --path")?;
    let body = std::fs::read(body_path)
        .map_err(|e| format!("cannot read {}: {e}", body_path.display()))?;
    if body.len() < 5
        || body[0] != 0
        || u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize != body.len() - 5
    {
        return Err(format!(
            "{}: not one uncompressed gRPC frame",
            body_path.display()
        ));
    }
    let message = Bytes::copy_from_slice(&body[5..]);
    let channel = connect(&args.addr, Duration::from_secs(5)).await?;
    let started = Instant::now();
    let answer = match raw_call(channel, path, message.clone()).await {
        Ok(a) => a,
        Err(e) => {
            println!("RESULT rpc=CheckBody path={path} ok=false");
            eprintln!("loadgen: {e}");
            return Ok(false);
        }
    };
    let elapsed = started.elapsed();
    let verdict: Result<(), String> = match path {
        HEALTH_CHECK => HealthCheckResponse::decode(answer.clone())
            .map_err(|e| e.to_string())
            .and_then(|r| {
                (r.status == ServingStatus::Serving as i32)
                    .then_some(())
                    .ok_or_else(|| format!("status {}", r.status))
            }),
        GET_CONTACTS => {
            let req = pb::GetContactsRequest::decode(message).map_err(|e| e.to_string())?;
            pb::ContactInfo::decode(answer.clone())
                .map_err(|e| e.to_string())
                .and_then(|r| {
                    (r.name == req.name
                        && !r.etag.is_empty()
                        && !r.technical_emergency_contacts.is_empty())
                    .then_some(())
                    .ok_or_else(|| format!("another or an incomplete resource: {}", r.name))
                })
        }
        CHECK_GATE => pb::CheckOnboardingGateResponse::decode(answer.clone())
            .map_err(|e| e.to_string())
            .and_then(|r| {
                gate_open(&r)
                    .then_some(())
                    .ok_or_else(|| "gate closed".to_owned())
            }),
        RESOLVE => pb::ResolveRecipientsResponse::decode(answer.clone())
            .map_err(|e| e.to_string())
            .and_then(|r| {
                alerts_to_alert_contacts(&r)
                    .then_some(())
                    .ok_or_else(|| "not resolved to the alert contacts".to_owned())
            }),
        other => Err(format!("no check known for {other}")),
    };
    println!(
        "RESULT rpc=CheckBody path={path} ok={} request_bytes={} answer_bytes={} ms={:.3}",
        verdict.is_ok(),
        body.len() - 5,
        answer.len(),
        elapsed.as_secs_f64() * 1e3
    );
    if let Err(e) = &verdict {
        eprintln!("loadgen: {path}: gRPC OK but a wrong answer: {e}");
    }
    Ok(verdict.is_ok())
}

/// `sample`: draws `--iterations` partners from `--distribution` without
/// calling anything: how fast the picker is, and how skewed.
pub fn sample(args: &Args) -> Result<bool, String> {
    let picker = Picker::new(args.distribution, args.partners, args.zipf_s, args.partner)?;
    let mut rng = Rng(args.seed);
    let mut counts = std::collections::HashMap::<u64, u64>::new();
    let started = Instant::now();
    let mut acc = 0u64;
    for _ in 0..args.iterations {
        acc = acc.wrapping_add(picker.pick(&mut rng));
    }
    let elapsed = started.elapsed().as_secs_f64();
    for _ in 0..args.iterations.min(1_000_000) {
        *counts.entry(picker.pick(&mut rng)).or_default() += 1;
    }
    let mut by_count: Vec<(u64, u64)> = counts.into_iter().map(|(k, v)| (v, k)).collect();
    by_count.sort_unstable_by(|a, b| b.cmp(a));
    let drawn: u64 = by_count.iter().map(|x| x.0).sum();
    let top = |share: f64| {
        let k = ((args.partners as f64 * share).ceil() as usize).max(1);
        by_count.iter().take(k).map(|x| x.0).sum::<u64>() as f64 / drawn.max(1) as f64
    };
    // A partner's first draw misses any cache that was not filled in
    // advance: within a window, the floor of what a cache can do.
    let mut seen =
        vec![false; usize::try_from(args.partners).map_err(|_| "too many partners")? + 1];
    let mut rng = Rng(args.seed ^ 0x5a3c);
    let quarter = args.iterations - args.iterations / 4;
    let mut first_late = 0u64;
    for i in 0..args.iterations {
        // `--distribution one` may name a partner beyond --partners.
        let Some(slot) = seen.get_mut(picker.pick(&mut rng) as usize) else {
            continue;
        };
        if !*slot {
            *slot = true;
            if i >= quarter {
                first_late += 1;
            }
        }
    }
    let first_share = first_late as f64 / (args.iterations - quarter).max(1) as f64;
    // What the distribution itself says, beside what was drawn.
    let (expected_top5, top_k) = match args.distribution {
        crate::partners::Distribution::Zipf => {
            let z = Zipf::new(args.partners, args.zipf_s)?;
            (
                format!(
                    " expected_top5pct_share={:.3}",
                    z.head_share((args.partners as f64 * 0.05).ceil() as u64)
                ),
                args.cache_entries.map_or_else(String::new, |k| {
                    format!(" top_k={k} top_k_miss={:.3}", 1.0 - z.head_share(k))
                }),
            )
        }
        _ => (String::new(), String::new()),
    };
    println!(
        "RESULT rpc=Sample distribution={:?} partners={} draws={} ns_per_draw={:.1} distinct={} most_popular={} top1pct_share={:.3} top5pct_share={:.3}{} first_draws_last_quarter={:.3}{} checksum={}",
        args.distribution,
        args.partners,
        args.iterations,
        elapsed * 1e9 / args.iterations.max(1) as f64,
        by_count.len(),
        by_count.first().map(|x| x.1).unwrap_or(0),
        top(0.01),
        top(0.05),
        expected_top5,
        first_share,
        top_k,
        acc % 1000,
    );
    Ok(true)
}
