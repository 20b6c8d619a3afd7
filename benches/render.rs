//! Render throughput: a mixed batch of real events (every fixture, repeated to 10,000 events),
//! parsed, normalised and rendered as ingest does, in each built-in language.
//!
//! Run: `cargo bench --bench render`

mod common;

use std::time::{Duration, Instant};

use marzban_discord_relay::event::parse_batch;
use marzban_discord_relay::render::{Lang, Renderer};
use serde_json::Value;
use time::OffsetDateTime;

const EVENTS: usize = 10_000;
const RUNS: usize = 7;

fn mixed_batch() -> Vec<u8> {
    let real = common::real_events(&["marzban-0.8.4", "pasarguard-5.2.1", "marzneshin-0.7.4"]);
    let batch: Vec<Value> = (0..EVENTS)
        .map(|i| {
            let mut event = real[i % real.len()].clone();
            common::rename(&mut event, &format!("user{i:05}"));
            event
        })
        .collect();
    serde_json::to_vec(&batch).unwrap()
}

/// The median of `RUNS` timings of `f`, after one warm-up run.
fn median(mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[RUNS / 2]
}

fn main() {
    let body = mixed_batch();
    println!("mixed batch: {EVENTS} events from the real fixtures, {} bytes", body.len());
    let now = OffsetDateTime::now_utc();
    let parse = median(|| {
        let batch = parse_batch(&body, now, None).unwrap();
        assert_eq!(batch.events.len(), EVENTS);
    });
    println!("parse + normalise:          {:>9.0} events/s", EVENTS as f64 / parse.as_secs_f64());
    let events = parse_batch(&body, now, None).unwrap().events;
    for &lang in Lang::ALL {
        let renderer = Renderer::builtin(lang);
        let render = median(|| {
            for event in &events {
                std::hint::black_box(serde_json::to_string(&renderer.render(event)).unwrap());
            }
        });
        println!(
            "render + serialise ({}):    {:>9.0} events/s  ({:.1} µs per event)",
            lang,
            EVENTS as f64 / render.as_secs_f64(),
            render.as_secs_f64() * 1e6 / EVENTS as f64
        );
    }
}
