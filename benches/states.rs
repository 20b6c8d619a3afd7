//! What remembering users' states costs ingest: the release binary side by side with
//! `USER_STATE_RETENTION=0` (no states) and with the default (90 days), each first filled with
//! 100,000 users, then fed the real Marzban events of those same users with a new usage each time
//! (so every event reads a kept state and writes a changed one), over loopback, into a dry relay
//! (no Discord: only ingest is measured).
//!
//! Run: `cargo bench --bench states` (about two minutes). Prints requests/s, events/s and p50/p99
//! acknowledgement latency per load and mode, and the outbox's size once filled.
//! `INGEST_SECONDS=30` runs each load longer.

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

const SECRET: &str = "bench-secret";
const BINARY: &str = env!("CARGO_BIN_EXE_marzban-discord-relay");

/// The users the relay knows once filled, and the ones every load's events are about.
const USERS: usize = 100_000;

/// Bodies of `size` real events for users `bench_<n>` (n below [`USERS`]), the usernames
/// written into a fixed-width placeholder per request.
struct Bodies {
    template: Vec<u8>,
    offsets: Vec<usize>,
    /// Where each event's `used_traffic` is: a new value per request, so every event changes the
    /// state kept of its user (as a user's usage does between two events).
    usage: Vec<usize>,
    size: usize,
}

const PLACEHOLDER: &str = "000000";
const USAGE_PLACEHOLDER: i64 = 4_242_424_242;

impl Bodies {
    fn new(events: &[Value], size: usize) -> Self {
        let batch: Vec<Value> = (0..size)
            .map(|i| {
                let mut event = events[i % events.len()].clone();
                common::rename(&mut event, &format!("bench_{PLACEHOLDER}"));
                if event["user"].is_object() {
                    event["user"]["used_traffic"] = USAGE_PLACEHOLDER.into();
                }
                event
            })
            .collect();
        let template = serde_json::to_vec(&batch).unwrap();
        let needle = format!("bench_{PLACEHOLDER}");
        let offsets = template
            .windows(needle.len())
            .enumerate()
            .filter(|(_, window)| *window == needle.as_bytes())
            .map(|(at, _)| at + "bench_".len())
            .collect();
        let usage_needle = USAGE_PLACEHOLDER.to_string();
        let usage = template
            .windows(usage_needle.len())
            .enumerate()
            .filter(|(_, window)| *window == usage_needle.as_bytes())
            .map(|(at, _)| at)
            .collect();
        Self { template, offsets, usage, size }
    }

    /// Request `request`'s body: its events are about users `request * size + i`, modulo [`USERS`].
    fn body(&self, request: usize) -> Vec<u8> {
        let mut body = self.template.clone();
        // Each event's username is written twice (top level and in `user`): two offsets an event.
        let per_event = self.offsets.len() / self.size;
        for (n, &at) in self.offsets.iter().enumerate() {
            let user = (request * self.size + n / per_event.max(1)) % USERS;
            body[at..at + PLACEHOLDER.len()].copy_from_slice(format!("{user:06}").as_bytes());
        }
        let usage = format!("{}", 1_000_000_000 + request % 1_000_000_000);
        for &at in &self.usage {
            body[at..at + usage.len()].copy_from_slice(usage.as_bytes());
        }
        body
    }
}

struct Relay {
    child: Child,
    port: u16,
    data: tempfile::TempDir,
}

impl Relay {
    fn start(retention: &str) -> Self {
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(BINARY)
            .current_dir(data.path())
            .env_clear()
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("WEBHOOK_SECRET", SECRET)
            .env("USER_STATE_RETENTION", retention)
            .env("RUST_LOG", "error")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, port, data }
    }

    fn outbox_mib(&self) -> f64 {
        let size = |name: &str| std::fs::metadata(self.data.path().join("data").join(name)).map_or(0, |m| m.len());
        (size("outbox.sqlite3") + size("outbox.sqlite3-wal")) as f64 / (1024.0 * 1024.0)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `connections` clients POSTing `size`-event batches back to back, for `duration` or until
/// `requests` were sent. Returns requests/s and the sorted latencies.
async fn load(
    relay: &Relay,
    bodies: Arc<Bodies>,
    connections: usize,
    duration: Duration,
    requests: usize,
) -> (f64, Vec<Duration>) {
    let counter = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let url = format!("http://127.0.0.1:{}/", relay.port);
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let (url, bodies, counter, latencies) = (url.clone(), bodies.clone(), counter.clone(), latencies.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while start.elapsed() < duration {
                    let request = counter.fetch_add(1, Ordering::Relaxed);
                    if request >= requests {
                        break;
                    }
                    let sent = Instant::now();
                    let response =
                        client.post(&url).header("x-webhook-secret", SECRET).body(bodies.body(request)).send().await;
                    let response = response.unwrap();
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
    (latencies.len() as f64 / elapsed.as_secs_f64(), latencies)
}

fn percentile(latencies: &[Duration], p: f64) -> f64 {
    let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
    latencies[index].as_secs_f64() * 1000.0
}

async fn wait_ready(relay: &Relay) {
    let client = reqwest::Client::new();
    loop {
        let ready = client.get(format!("http://127.0.0.1:{}/readyz", relay.port)).send().await;
        if ready.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn main() {
    let seconds: u64 = std::env::var("INGEST_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Every Marzban capture but the deletion, which would forget the user it is about.
    let events: Vec<Value> =
        common::real_events(&["marzban-0.8.4"]).into_iter().filter(|event| event["action"] != "user_deleted").collect();
    runtime.block_on(async {
        println!("binary: {BINARY}");
        println!(
            "{:<16} {:<22} {:>6} {:>10} {:>10} {:>8} {:>8}",
            "states", "load", "conns", "requests/s", "events/s", "p50 ms", "p99 ms"
        );
        for (mode, retention) in [("without (0)", "0"), ("with (90d)", "90d")] {
            let relay = Relay::start(retention);
            wait_ready(&relay).await;
            let fill = Arc::new(Bodies::new(&events, 50));
            load(&relay, fill, 16, Duration::from_secs(3600), USERS / 50).await;
            let filled = relay.outbox_mib();
            for (size, connections) in [(1, 4), (50, 4), (50, 16)] {
                let bodies = Arc::new(Bodies::new(&events, size));
                let (rate, latencies) =
                    load(&relay, bodies, connections, Duration::from_secs(seconds), usize::MAX).await;
                println!(
                    "{:<16} {:<22} {:>6} {:>10.0} {:>10.0} {:>8.2} {:>8.2}",
                    mode,
                    format!("{size}-event batches"),
                    connections,
                    rate,
                    rate * size as f64,
                    percentile(&latencies, 0.5),
                    percentile(&latencies, 0.99)
                );
            }
            println!("{mode:<16} outbox after filling {USERS} users: {filled:.1} MiB");
        }
    });
}
