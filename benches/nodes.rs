//! Node watch: what polling a panel of 200 nodes costs, over many hours of simulated time.
//!
//! A fake Marzban API (in this process) lists 200 nodes; every 10th round one of them goes down
//! for 10 rounds (so the tracker changes state and the watcher stores events and its state). The
//! watcher's rounds run back to back with the clock moved by the poll interval each round (30 s),
//! so an hour of polls is 120 rounds. The rows stored are marked delivered and deleted after each
//! round, as delivery and pruning would. Reports the CPU time per round (the whole process, the fake
//! panel included: an upper bound; and the watcher's own thread) as a share of one core at one
//! round per 30 s, and the resident memory every simulated hour.
//!
//! Run: `cargo bench --bench nodes`. `NODE_BENCH_HOURS=10` (default) sets the simulated time,
//! `NODE_BENCH_NODES=200` the panel's size.

#[path = "../tests/api/fake_panel.rs"]
mod fake_panel;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_panel::{FakePanel, Shape};
use marzban_discord_relay::config::Config;
use marzban_discord_relay::metrics::Health;
use marzban_discord_relay::nodes::{NodeMetrics, NodeWatchSettings, Watcher};
use marzban_discord_relay::outbox::Outbox;
use marzban_discord_relay::panel::{parse_url, Credentials, PanelApiSettings, PanelClient, Redacted};
use marzban_discord_relay::render::{Lang, Templates};
use marzban_discord_relay::startup;
use time::OffsetDateTime;

const ROUNDS_PER_HOUR: usize = 120;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// User and system CPU time of `stat` (a `/proc/.../stat` line), in seconds.
fn cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Takes the place of delivery and pruning, as in a running relay: the rows stored are marked
/// delivered and deleted, so the outbox (and SQLite's page cache) does not grow with them.
async fn deliver_everything(outbox: &Outbox) {
    let ids: Vec<i64> = outbox.due("default", 10_000).await.unwrap().iter().map(|row| row.meta.id).collect();
    if !ids.is_empty() {
        outbox.mark_delivered(ids).await.unwrap();
        outbox.purge_delivered(i64::MAX).await.unwrap();
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let hours = env_number("NODE_BENCH_HOURS", 10);
    let count = env_number("NODE_BENCH_NODES", 200) as i64;
    let panel = FakePanel::start(Shape::Marzban).await;
    for id in 1..=count {
        panel.set_node(id, &format!("node-{id:03}"), "connected", None);
    }
    let data = tempfile::tempdir().unwrap();
    let vars: HashMap<String, String> = [("DATA_DIR".to_owned(), data.path().display().to_string())].into();
    let config = Config::from_vars(&vars).unwrap();
    let settings = PanelApiSettings {
        url: parse_url(&panel.url()).unwrap(),
        credentials: Credentials::Login { username: "admin".into(), password: Redacted::new("s3cret-pw") },
        family: None,
        insecure_tls: false,
        timeout: Duration::from_secs(10),
        label: Some("bench".into()),
    };
    let (templates, _, _) = Templates::load(data.path().join("none"), Lang::En);
    let watcher = Watcher {
        client: Arc::new(PanelClient::new(&settings).unwrap()),
        outbox: Outbox::open(data.path()).unwrap(),
        templates: Arc::new(templates),
        router: Arc::new(startup::router(&config)),
        dispatch: None,
        metrics: NodeMetrics::default(),
        health: Arc::new(Health::default()),
        settings: NodeWatchSettings::default(),
        call_timeout: settings.timeout,
        panel: settings.label.clone(),
    };
    let mut state = watcher.load().await.unwrap();
    let start = OffsetDateTime::now_utc();
    let interval = NodeWatchSettings::default().poll_interval;
    // Warm up: connections, the login, the first state.
    watcher.round(&mut state, start).await.unwrap();
    let (process0, thread0, wall0) =
        (cpu_seconds("/proc/self/stat"), cpu_seconds("/proc/thread-self/stat"), Instant::now());
    let mut rss = vec![rss_kib()];
    let mut events = 0;
    let rounds = hours * ROUNDS_PER_HOUR;
    for round in 1..=rounds {
        if round % 10 == 0 {
            let id = (round / 10) as i64 % count + 1;
            panel.set_node(id, &format!("node-{id:03}"), "error", Some("[Errno 111] Connection refused"));
            let back = ((round / 10) as i64 + count - 1) % count + 1;
            panel.set_node(back, &format!("node-{back:03}"), "connected", None);
        }
        let now = start + interval * round as u32;
        events += watcher.round(&mut state, now).await.unwrap().len();
        deliver_everything(&watcher.outbox).await;
        if round % ROUNDS_PER_HOUR == 0 {
            rss.push(rss_kib());
        }
    }
    let process = cpu_seconds("/proc/self/stat") - process0;
    let thread = cpu_seconds("/proc/thread-self/stat") - thread0;
    let per_round = |cpu: f64| cpu / rounds as f64;
    let share = |cpu: f64| per_round(cpu) / interval.as_secs_f64() * 100.0;
    println!("node watch: {count} nodes, {rounds} rounds ({hours} simulated hours at one per {interval:?}), {events} events, {:.1} s wall", wall0.elapsed().as_secs_f64());
    println!(
        "  process CPU (fake panel included): {:.2} ms per round = {:.3} % of one core",
        per_round(process) * 1000.0,
        share(process)
    );
    println!(
        "  watcher thread CPU:                {:.2} ms per round = {:.3} % of one core",
        per_round(thread) * 1000.0,
        share(thread)
    );
    println!("  RSS per simulated hour (KiB): {rss:?}");
    let settled = rss[1.min(rss.len() - 1)];
    println!("  growth after the first hour: {} KiB", rss.last().unwrap().saturating_sub(settled));
}
