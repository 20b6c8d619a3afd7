//! Drain: how fast a backlog of real events reaches a fake Discord that enforces Discord's limits
//! (5 requests per 2 s per webhook, 30 messages per minute per channel, answering 429 with a
//! 42 s `retry_after` past that), compared with the fastest drain those limits allow.
//!
//! Run: `cargo bench --bench drain` (1,000 events, with and without digests; about 4 minutes).
//! `DRAIN_EVENTS=10000` drains more; `DRAIN_SCALE=10` makes every window of the fake (and the
//! relay's own channel pacing) 10 times shorter, to run big backlogs in reasonable time: the
//! ratios stay the same. `DRAIN_MODES=off` or `on` runs one mode only.

mod common;
#[path = "../tests/api/fake_discord.rs"]
mod fake_discord;

use std::collections::HashMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use fake_discord::{ChannelLimit, FakeDiscord, Limits};
use marzban_discord_relay::config::Config;
use marzban_discord_relay::startup::Application;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

const SECRET: &str = "bench-secret";

fn real_events(count: usize) -> Vec<Value> {
    let real = common::real_events(&["marzban-0.8.4", "pasarguard-5.2.1", "marzneshin-0.7.4"]);
    (0..count)
        .map(|i| {
            let mut event = real[i % real.len()].clone();
            common::rename(&mut event, &format!("user{i:05}"));
            event
        })
        .collect()
}

/// The least time `messages` messages can take under `limits`: full channel windows, then the
/// last window's messages at the bucket's pace.
fn fastest_drain(messages: usize, limits: &Limits) -> Duration {
    let channel = limits.channel.as_ref().expect("the bench enforces a channel limit");
    let per_window = channel.messages as usize;
    let windows = messages.div_ceil(per_window);
    let last = messages - (windows - 1) * per_window;
    let bucket_windows = last.div_ceil(limits.bucket_requests as usize) - 1;
    channel.window * (windows as u32 - 1) + limits.bucket_window * bucket_windows as u32
}

struct Result {
    drain: Duration,
    requests: usize,
    rate_limited: usize,
    messages: usize,
    embeds: usize,
}

async fn drain(events: &[Value], digest_threshold: usize, limits: Limits, scale: u32) -> Result {
    let discord = FakeDiscord::start_with(limits.clone()).await;
    let data = tempfile::tempdir().unwrap();
    let vars: HashMap<String, String> = [
        ("WEBHOOK_SECRET", SECRET.to_owned()),
        ("DISCORD_WEBHOOK_URL", discord.webhook_url()),
        ("DATA_DIR", data.path().display().to_string()),
        ("TEMPLATES_DIR", data.path().join("none").display().to_string()),
        ("DIGEST_THRESHOLD", digest_threshold.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let mut config = Config::from_vars(&vars).unwrap();
    config.delivery.channel_window /= scale;
    let app = Application::build_with_listener(config, TcpListener::bind("127.0.0.1:0").unwrap()).await.unwrap();
    let url = format!("http://127.0.0.1:{}/", app.port());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let body = serde_json::to_vec(events).unwrap();
    let start = Instant::now();
    let response = reqwest::Client::new().post(url).header("x-webhook-secret", SECRET).body(body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut delivered = 0;
    while delivered < events.len() {
        tokio::time::sleep(Duration::from_millis(50)).await;
        delivered = discord.embeds().iter().map(events_in).sum();
    }
    let drain = discord.requests().last().map_or(Duration::ZERO, |last| last.at.duration_since(start));
    assert_eq!(delivered, events.len(), "every event arrived exactly once");
    shutdown.cancel();
    running.await.unwrap().unwrap();
    Result {
        drain,
        requests: discord.requests().len(),
        rate_limited: discord.count_status(429),
        messages: discord.messages().len(),
        embeds: discord.embeds().len(),
    }
}

/// How many events an embed stands for: a digest embed (its title starts with 📋) lists its users
/// in the description, separated by commas.
fn events_in(embed: &Value) -> usize {
    let title = embed["title"].as_str().unwrap_or_default();
    if title.starts_with("📋 ") {
        embed["description"].as_str().map_or(0, |names| names.split(", ").count())
    } else {
        1
    }
}

fn main() {
    let count: usize = std::env::var("DRAIN_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let scale: u32 = std::env::var("DRAIN_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    let limits = Limits {
        bucket_requests: 5,
        bucket_window: Duration::from_secs(2) / scale,
        channel: Some(ChannelLimit {
            messages: 30,
            window: Duration::from_secs(60) / scale,
            retry_after: Duration::from_secs(42) / scale,
        }),
    };
    let events = real_events(count);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    println!(
        "drain of {count} real events; fake Discord: {} requests per {:?}, {} messages per {:?} (time scale 1/{scale})",
        limits.bucket_requests,
        limits.bucket_window,
        limits.channel.as_ref().unwrap().messages,
        limits.channel.as_ref().unwrap().window
    );
    println!(
        "{:<22} {:>9} {:>9} {:>6} {:>9} {:>16} {:>12} {:>8}",
        "mode", "messages", "requests", "429s", "events/msg", "drain", "fastest", "ratio"
    );
    let modes = std::env::var("DRAIN_MODES").unwrap_or_else(|_| "off,on".into());
    let modes = [("off", "digests off", 0), ("on", "digests on (30)", 30)]
        .into_iter()
        .filter(|(key, _, _)| modes.split(',').any(|m| m.trim() == *key))
        .map(|(_, mode, threshold)| (mode, threshold));
    for (mode, threshold) in modes {
        let result = runtime.block_on(drain(&events, threshold, limits.clone(), scale));
        let fastest = fastest_drain(result.messages, &limits);
        // The fastest drain of these events at 10 embeds per message, without digests.
        let fastest_packed = fastest_drain(count.div_ceil(10), &limits);
        println!(
            "{:<22} {:>9} {:>9} {:>6} {:>9.1} {:>15.1}s {:>11.1}s {:>8.3}",
            mode,
            result.messages,
            result.requests,
            result.rate_limited,
            count as f64 / result.messages as f64,
            result.drain.as_secs_f64(),
            fastest.as_secs_f64(),
            result.drain.as_secs_f64() / fastest.as_secs_f64().max(0.001)
        );
        if threshold > 0 {
            println!(
                "    ({} embeds; the fastest drain without digests, at 10 events per message: {:.1}s)",
                result.embeds,
                fastest_packed.as_secs_f64()
            );
        }
    }
}
