//! Ingest and footprint: the release binary as its own process, delivering to a fake Discord that
//! enforces Discord's limits, fed over loopback by a load generator in this process.
//!
//! Run: `cargo bench --bench ingest` (about a minute). Reports start-up time to ready, idle memory,
//! the binary's size, then requests/s, events/s and acknowledgement latency (p50, p99) for
//! 1-event and 50-event Marzban batches, each acknowledged only after the outbox committed it
//! (SQLite, synchronous=FULL), and the peak memory under that load.
//! `INGEST_SECONDS=30` runs each load longer. To compare builds side by side in one run,
//! `INGEST_BINARY=/path/to/other/marzban-discord-relay` drives that binary instead,
//! `INGEST_LOADS=1x16,50x16` runs only those loads (events per request x connections), and
//! `INGEST_FOOTPRINT=0` skips the start-up and idle-memory part.

mod common;
#[path = "../tests/api/fake_discord.rs"]
mod fake_discord;
#[path = "common/relay.rs"]
mod relay;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_discord::{ChannelLimit, FakeDiscord, Limits};
use relay::Relay;
use serde_json::Value;

const BUILT: &str = env!("CARGO_BIN_EXE_marzban-discord-relay");

/// The binary driven: this build's, or `INGEST_BINARY`.
fn binary() -> String {
    std::env::var("INGEST_BINARY").unwrap_or_else(|_| BUILT.to_owned())
}

/// The loads to run, as (events per request, connections): `INGEST_LOADS`, or all five.
fn loads() -> Vec<(usize, usize)> {
    let all = vec![(1, 1), (1, 4), (1, 16), (50, 4), (50, 16)];
    let Ok(chosen) = std::env::var("INGEST_LOADS") else { return all };
    let parse = |load: &str| {
        let (size, connections) = load.trim().split_once('x')?;
        Some((size.parse().ok()?, connections.parse().ok()?))
    };
    chosen.split(',').map(|load| parse(load).expect("INGEST_LOADS is like 1x16,50x16")).collect()
}

/// Request bodies of `size` real events with usernames unique to each request, made without
/// serialising JSON per request (so the load generator takes little of the machine's CPU): the
/// body is serialised once with a fixed-width placeholder, which is overwritten per request.
struct Bodies {
    template: Vec<u8>,
    offsets: Vec<usize>,
}

const PLACEHOLDER: &str = "0000000000";

impl Bodies {
    fn new(events: &[Value], size: usize) -> Self {
        let batch: Vec<Value> = (0..size)
            .map(|i| {
                let mut event = events[i % events.len()].clone();
                common::rename(&mut event, &format!("bench_{PLACEHOLDER}_{i}"));
                event
            })
            .collect();
        let template = serde_json::to_vec(&batch).unwrap();
        let offsets = common::offsets(&template, &format!("bench_{PLACEHOLDER}_"));
        let offsets = offsets.into_iter().map(|at| at + "bench_".len()).collect();
        Self { template, offsets }
    }

    fn body(&self, request: usize) -> Vec<u8> {
        let mut body = self.template.clone();
        let counter = format!("{request:010}");
        for &at in &self.offsets {
            body[at..at + PLACEHOLDER.len()].copy_from_slice(counter.as_bytes());
        }
        body
    }
}

fn memory_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

/// A relay delivering to `webhook_url`.
fn start(webhook_url: &str) -> Relay {
    Relay::start(&binary(), &[("DISCORD_WEBHOOK_URL", webhook_url), ("RUST_LOG", "warn")])
}

/// `connections` clients each POSTing `size`-event batches back to back for `duration`; the
/// usernames stay unique across loads.
async fn load(relay: &Relay, events: &[Value], size: usize, connections: usize, duration: Duration) -> relay::Load {
    let bodies = Bodies::new(events, size);
    let body: relay::Body = Arc::new(move |request| bodies.body(request + size * 1_000_000));
    relay::load(relay, body, connections, duration, usize::MAX).await
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let seconds: u64 = std::env::var("INGEST_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let limits = Limits {
            bucket_requests: 5,
            bucket_window: Duration::from_secs(2),
            channel: Some(ChannelLimit {
                messages: 30,
                window: Duration::from_secs(60),
                retry_after: Duration::from_secs(42),
            }),
        };
        let discord = FakeDiscord::start_with(limits).await;
        let client = reqwest::Client::new();

        let footprint = std::env::var("INGEST_FOOTPRINT").map_or(true, |v| v != "0");
        let relay = if footprint {
            self::footprint(&discord, &client).await
        } else {
            let relay = start(&discord.webhook_url());
            relay.ready(&client).await;
            println!("binary: {}", binary());
            relay
        };
        let events = common::real_events(&["marzban-0.8.4"]);
        let duration = Duration::from_secs(seconds);
        println!();
        println!(
            "{:<26} {:>6} {:>10} {:>11} {:>9} {:>9}",
            "load", "conns", "requests/s", "events/s", "p50 ms", "p99 ms"
        );
        for (size, connections) in loads() {
            let result = load(&relay, &events, size, connections, duration).await;
            let rate = result.per_second();
            println!(
                "{:<26} {:>6} {:>10.0} {:>11.0} {:>9.2} {:>9.2}",
                format!("{size}-event batches"),
                connections,
                rate,
                rate * size as f64,
                result.percentile_ms(0.50),
                result.percentile_ms(0.99)
            );
        }
        let peak = memory_mib(relay.pid(), "VmHWM:");
        println!();
        println!("peak RSS under the loads:   {peak:.1} MiB");
    });
}

/// Start-up to ready (the best of five starts), idle memory and binary size, printed; returns a
/// relay started for the loads.
async fn footprint(discord: &FakeDiscord, client: &reqwest::Client) -> Relay {
    let mut starts = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let relay = start(&discord.webhook_url());
        relay.ready(client).await;
        starts.push(started.elapsed());
    }
    starts.sort();
    let relay = start(&discord.webhook_url());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = memory_mib(relay.pid(), "VmRSS:");
    let binary = binary();
    let size = std::fs::metadata(&binary).unwrap().len() as f64 / (1024.0 * 1024.0);
    println!("binary: {binary}");
    println!("release binary size:        {size:.1} MiB");
    println!("start to ready (/readyz):   {:.1} ms best, {:.1} ms median of 5", ms(starts[0]), ms(starts[2]));
    println!("idle RSS:                   {idle:.1} MiB");
    relay
}
