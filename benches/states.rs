//! What remembering users' states costs ingest: the release binary side by side with
//! `USER_STATE_RETENTION=0` (no states) and with the default (90 days), each first filled with
//! 100,000 users, then fed the real Marzban events of those same users with a new usage each time
//! (so every event reads a kept state; with `STATES_EDITS=1` every event also writes one), over
//! loopback, into a dry relay (no Discord: only ingest is measured).
//!
//! Both relays run at once; each load alternates between them, round after round (the first mode
//! alternating too), so that both see the same machine, and the medians are compared.
//!
//! Run: `cargo bench --bench states` (about four minutes). Prints each round's events/s and p50/p99
//! acknowledgement latency, then the medians and the cost (the median of each round's ratio).
//! `INGEST_SECONDS` sets a round's length per load (default 6), `STATES_ROUNDS` the rounds (5),
//! `STATES_EDITS=1` gives every request a new data limit too, so every state is written;
//! `STATES_BINARY=<path>` measures another build of the relay (copied aside before rebuilding).

mod common;
#[path = "common/relay.rs"]
mod relay;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use relay::Relay;
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_marzban-discord-relay");

/// The users the relay knows once filled, and the ones every load's events are about.
const USERS: usize = 100_000;

/// Every user gets the same kind of event in every load: user `n` the `n % KINDS`-th of the
/// captures (modulo their number), so that between two loads only its usage changes (a 1-event
/// load sending every user the first capture would change the status kept of most users filled
/// by 50-event requests, which is an edit: written and shown, not what this bench measures).
const KINDS: usize = 50;

/// Bodies of `size` real events for users `bench_<n>` (n below [`USERS`]), the usernames
/// written into a fixed-width placeholder per request: one template per [`KINDS`] / `size` of a
/// cycle of users, so each user always gets the same kind of event.
struct Bodies {
    templates: Vec<Template>,
    size: usize,
}

/// One request's body with placeholders.
struct Template {
    body: Vec<u8>,
    offsets: Vec<usize>,
    /// Where each event's `used_traffic` is: a new value per request, so every event changes the
    /// state kept of its user (as a user's usage does between two events).
    usage: Vec<usize>,
}

const PLACEHOLDER: &str = "000000";

/// Bodies made so far in this run, by every load: each body's usage is higher than the last's.
static BODIES_MADE: AtomicU64 = AtomicU64::new(0);
const USAGE_PLACEHOLDER: i64 = 4_242_424_242;

/// With `STATES_EDITS=1`, each request also sets a new data limit (as an admin's edit does), so
/// that every event changes what a card shows and its state is written; by default only the usage
/// grows, which the outbox stores at most daily (the cache of recent states has it at once).
fn edits() -> bool {
    std::env::var("STATES_EDITS").is_ok_and(|v| v == "1")
}

impl Bodies {
    fn new(events: &[Value], size: usize) -> Self {
        assert!(KINDS % size == 0 && USERS % KINDS == 0, "a request's users are one run of kinds");
        let templates = (0..KINDS / size).map(|variant| Template::new(events, variant * size, size)).collect();
        Self { templates, size }
    }

    /// Request `request`'s body: its events are about users `request * size + i`, modulo [`USERS`].
    fn body(&self, request: usize) -> Vec<u8> {
        let template = &self.templates[request % self.templates.len()];
        let mut body = template.body.clone();
        // Each event's username is written twice (top level and in `user`): two offsets an event.
        let per_event = template.offsets.len() / self.size;
        for (n, &at) in template.offsets.iter().enumerate() {
            let user = (request * self.size + n / per_event.max(1)) % USERS;
            body[at..at + PLACEHOLDER.len()].copy_from_slice(format!("{user:06}").as_bytes());
        }
        // Higher with every body of the run, across loads: a load's requests count from 0 again,
        // so a usage taken from `request` went down at each new load, which reads as a usage
        // reset (a change written and shown) for every user the previous load reached further.
        let usage = format!("{}", 1_000_000_000 + BODIES_MADE.fetch_add(1, Ordering::Relaxed) % 1_000_000_000);
        for &at in &template.usage {
            body[at..at + usage.len()].copy_from_slice(usage.as_bytes());
        }
        body
    }
}

impl Template {
    /// `size` events: the captures of kinds `first` to `first + size - 1`.
    fn new(events: &[Value], first: usize, size: usize) -> Self {
        let batch: Vec<Value> = (first..first + size)
            .map(|kind| {
                let mut event = events[kind % events.len()].clone();
                common::rename(&mut event, &format!("bench_{PLACEHOLDER}"));
                if event["user"].is_object() {
                    event["user"]["used_traffic"] = USAGE_PLACEHOLDER.into();
                    if edits() {
                        event["user"]["data_limit"] = USAGE_PLACEHOLDER.into();
                    }
                }
                event
            })
            .collect();
        let body = serde_json::to_vec(&batch).unwrap();
        let offsets = common::offsets(&body, &format!("bench_{PLACEHOLDER}"));
        let offsets = offsets.into_iter().map(|at| at + "bench_".len()).collect();
        let usage = common::offsets(&body, &USAGE_PLACEHOLDER.to_string());
        Self { body, offsets, usage }
    }
}

/// The relay binary measured: `STATES_BINARY` if set (another build, copied aside), else this one.
fn binary() -> String {
    std::env::var("STATES_BINARY").unwrap_or_else(|_| BINARY.to_owned())
}

/// A dry relay keeping users' states for `retention` (`0`: none).
fn start(retention: &str) -> Relay {
    Relay::start(&binary(), &[("USER_STATE_RETENTION", retention), ("RUST_LOG", "error")])
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

/// The loads measured: (events per request, connections).
const LOADS: [(usize, usize); 3] = [(1, 4), (50, 4), (50, 16)];

/// One load's figures in one round.
struct Round {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// The relay process's CPU time (user and system) per event, in µs: what the load cost the
    /// relay itself, which other processes on the machine disturb much less than the rate.
    cpu_us: f64,
}

/// The CPU time `pid` has used so far (user and system), from `/proc` (Linux; 0 elsewhere).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (in brackets, which may hold spaces): utime and stime are
    // the 12th and 13th, in clock ticks of 1/100 s.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let seconds: u64 = std::env::var("INGEST_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(6);
    let rounds: usize = std::env::var("STATES_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5).max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Every Marzban capture but the deletion, which would forget the user it is about.
    let events: Vec<Value> =
        common::real_events(&["marzban-0.8.4"]).into_iter().filter(|event| event["action"] != "user_deleted").collect();
    runtime.block_on(async {
        println!("binary: {}", binary());
        // Both relays run from the start, and each load alternates between them round after round,
        // so that both see the same machine (other processes' load comes and goes).
        let modes = [("without (0)", start("0")), ("with (90d)", start("90d"))];
        for (mode, relay) in &modes {
            relay.ready(&reqwest::Client::new()).await;
            load(relay, &events, 50, 16, Duration::from_secs(3600), USERS / 50).await;
            println!("{mode:<12} pid {}, outbox after filling {USERS} users: {:.1} MiB", relay.pid(), outbox_mib(relay));
        }
        // results[load][mode]: each round's figures.
        let mut results: Vec<[Vec<Round>; 2]> = LOADS.iter().map(|_| [Vec::new(), Vec::new()]).collect();
        for round in 0..rounds {
            for (at, &(size, connections)) in LOADS.iter().enumerate() {
                // Which mode goes first alternates too.
                for m in [round % 2, 1 - round % 2] {
                    let (mode, relay) = &modes[m];
                    let cpu_before = cpu_time(relay.pid());
                    let run = load(relay, &events, size, connections, Duration::from_secs(seconds), usize::MAX).await;
                    let cpu = cpu_time(relay.pid()).saturating_sub(cpu_before);
                    let figures = Round {
                        per_second: run.per_second() * size as f64,
                        p50_ms: run.percentile_ms(0.5),
                        p99_ms: run.percentile_ms(0.99),
                        cpu_us: cpu.as_secs_f64() * 1e6 / (run.requests * size).max(1) as f64,
                    };
                    println!(
                        "round {} {mode:<12} {size:>2}-event batches x{connections:<2} {:>8.0} events/s p50 {:.2} ms p99 {:.2} ms, relay CPU {:.0} µs/event",
                        round + 1,
                        figures.per_second,
                        figures.p50_ms,
                        figures.p99_ms,
                        figures.cpu_us
                    );
                    results[at][m].push(figures);
                }
            }
        }
        println!(
            "\nmedians of {rounds} rounds of {seconds} s\n{:<18} {:>6} {:>14} {:>14} {:>6} {:>16} {:>16} {:>22}",
            "load", "conns", "without ev/s", "with ev/s", "cost", "p50 without/with", "p99 without/with",
            "CPU µs/event without/with"
        );
        for (at, &(size, connections)) in LOADS.iter().enumerate() {
            let [without, with] = &results[at];
            let rate = |runs: &[Round]| median(runs.iter().map(|r| r.per_second).collect());
            let p50 = |runs: &[Round]| median(runs.iter().map(|r| r.p50_ms).collect());
            let p99 = |runs: &[Round]| median(runs.iter().map(|r| r.p99_ms).collect());
            // The cost: the median of each round's own ratio, so a round's noise hits both modes.
            let ratios = without.iter().zip(with).map(|(a, b)| 1.0 - b.per_second / a.per_second).collect();
            let cpu = |runs: &[Round]| median(runs.iter().map(|r| r.cpu_us).collect());
            println!(
                "{:<18} {connections:>6} {:>14.0} {:>14.0} {:>5.1}% {:>7.2} / {:<7.2} {:>7.2} / {:<7.2} {:>6.0} / {:<6.0} (+{:.1}%)",
                format!("{size}-event batches"),
                rate(without),
                rate(with),
                median(ratios) * 100.0,
                p50(without),
                p50(with),
                p99(without),
                p99(with),
                cpu(without),
                cpu(with),
                (cpu(with) / cpu(without) - 1.0) * 100.0
            );
        }
    });
}
