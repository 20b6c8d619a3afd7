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

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fake_discord::{ChannelLimit, FakeDiscord, Limits};
use serde_json::Value;

const SECRET: &str = "bench-secret";
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
        let needle = format!("bench_{PLACEHOLDER}_");
        let offsets = template
            .windows(needle.len())
            .enumerate()
            .filter(|(_, window)| *window == needle.as_bytes())
            .map(|(at, _)| at + "bench_".len())
            .collect();
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

struct Relay {
    child: Child,
    port: u16,
    _data: tempfile::TempDir,
}

impl Relay {
    fn start(webhook_url: &str) -> Self {
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(binary())
            .current_dir(data.path())
            .env_clear()
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("WEBHOOK_SECRET", SECRET)
            .env("DISCORD_WEBHOOK_URL", webhook_url)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, port, _data: data }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Load {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Load {
    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        self.latencies[index]
    }
}

/// `connections` clients each POSTing `size`-event batches back to back for `duration`.
async fn load(relay: &Relay, events: &[Value], size: usize, connections: usize, duration: Duration) -> Load {
    let bodies = Arc::new(Bodies::new(events, size));
    let counter = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let (url, bodies, counter, latencies) =
                (relay.url("/"), bodies.clone(), counter.clone(), latencies.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while start.elapsed() < duration {
                    let request = counter.fetch_add(1, Ordering::Relaxed) + size * 1_000_000;
                    let body = bodies.body(request);
                    let sent = Instant::now();
                    let response =
                        client.post(&url).header("x-webhook-secret", SECRET).body(body).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    response.bytes().await.unwrap();
                    mine.push(sent.elapsed());
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = start.elapsed();
    let mut latencies = Arc::try_unwrap(latencies).unwrap().into_inner().unwrap();
    latencies.sort();
    Load { requests: latencies.len(), elapsed, latencies }
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
            let relay = Relay::start(&discord.webhook_url());
            ready(&relay, &client).await;
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
            let rate = result.requests as f64 / result.elapsed.as_secs_f64();
            println!(
                "{:<26} {:>6} {:>10.0} {:>11.0} {:>9.2} {:>9.2}",
                format!("{size}-event batches"),
                connections,
                rate,
                rate * size as f64,
                ms(result.percentile(0.50)),
                ms(result.percentile(0.99))
            );
        }
        let peak = memory_mib(relay.child.id(), "VmHWM:");
        println!();
        println!("peak RSS under the loads:   {peak:.1} MiB");
    });
}

/// Waits until `relay` answers `/readyz` with 200.
async fn ready(relay: &Relay, client: &reqwest::Client) {
    loop {
        if let Ok(response) = client.get(relay.url("/readyz")).send().await {
            if response.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Start-up to ready (the best of five starts), idle memory and binary size, printed; returns a
/// relay started for the loads.
async fn footprint(discord: &FakeDiscord, client: &reqwest::Client) -> Relay {
    let mut starts = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let relay = Relay::start(&discord.webhook_url());
        ready(&relay, client).await;
        starts.push(started.elapsed());
    }
    starts.sort();
    let relay = Relay::start(&discord.webhook_url());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = memory_mib(relay.child.id(), "VmRSS:");
    let binary = binary();
    let size = std::fs::metadata(&binary).unwrap().len() as f64 / (1024.0 * 1024.0);
    println!("binary: {binary}");
    println!("release binary size:        {size:.1} MiB");
    println!("start to ready (/readyz):   {:.1} ms best, {:.1} ms median of 5", ms(starts[0]), ms(starts[2]));
    println!("idle RSS:                   {idle:.1} MiB");
    relay
}
