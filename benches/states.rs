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
#[path = "common/relay.rs"]
mod relay;

use std::sync::Arc;
use std::time::Duration;

use relay::Relay;
use serde_json::Value;

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

/// A dry relay keeping users' states for `retention` (`0`: none).
fn start(retention: &str) -> Relay {
    Relay::start(BINARY, &[("USER_STATE_RETENTION", retention), ("RUST_LOG", "error")])
}

/// The outbox's size on disk, with its write-ahead log.
fn outbox_mib(relay: &Relay) -> f64 {
    let size = |name: &str| std::fs::metadata(relay.dir().join("data").join(name)).map_or(0, |m| m.len());
    (size("outbox.sqlite3") + size("outbox.sqlite3-wal")) as f64 / (1024.0 * 1024.0)
}

/// `connections` clients POSTing `size`-event batches of [`Bodies`] for `duration` or until
/// `requests` were sent.
async fn load(
    relay: &Relay,
    events: &[Value],
    size: usize,
    connections: usize,
    duration: Duration,
    requests: usize,
) -> relay::Load {
    let bodies = Bodies::new(events, size);
    relay::load(relay, Arc::new(move |request| bodies.body(request)), connections, duration, requests).await
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
            let relay = start(retention);
            relay.ready(&reqwest::Client::new()).await;
            load(&relay, &events, 50, 16, Duration::from_secs(3600), USERS / 50).await;
            let filled = outbox_mib(&relay);
            for (size, connections) in [(1, 4), (50, 4), (50, 16)] {
                let result = load(&relay, &events, size, connections, Duration::from_secs(seconds), usize::MAX).await;
                let rate = result.per_second();
                println!(
                    "{:<16} {:<22} {:>6} {:>10.0} {:>10.0} {:>8.2} {:>8.2}",
                    mode,
                    format!("{size}-event batches"),
                    connections,
                    rate,
                    rate * size as f64,
                    result.percentile_ms(0.5),
                    result.percentile_ms(0.99)
                );
            }
            println!("{mode:<16} outbox after filling {USERS} users: {filled:.1} MiB");
        }
    });
}
