//! Owner-admin delivery at scale: however many admins a batch names, the relay takes on at most
//! `OWNER_DESTINATIONS_MAX` webhooks (admins sharing one count once), keeps its metrics small, and
//! still delivers every event to the configured destinations.

use std::time::Duration;

use marzban_discord_relay::outbox::Outbox;
use serde_json::json;

use crate::fake_discord::FakeDiscord;
use crate::helpers::{batch_of, logs, spawn_app_in, Options, TestApp};

const WAIT: Duration = Duration::from_secs(60);

/// The value of the sample `series` (name and labels exactly as exposed), if there is one.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.text().await.unwrap()
}

#[tokio::test]
async fn three_thousand_admins_make_at_most_the_bound_of_owner_webhooks() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options =
        Options::delivering_to(&discord).var("DELIVER_TO_OWNER_ADMIN", "true").var("OWNER_DESTINATIONS_MAX", "10");
    let app = spawn_app_in(dir.path(), options).await;

    // 3,000 admins with long names, two to a webhook. The webhooks are on discord.com, which the
    // tests cannot reach: owner copies stay pending. What matters is how many destinations there are.
    let body = batch_of("user_created", 3000, "u", |i, event| {
        event["user"]["admin"]["username"] = json!(format!("admin-{i}-{}", "ж".repeat(500)));
        let webhook = format!("https://discord.com/api/webhooks/{}/token-{}", 900_000 + i / 2, i / 2);
        event["user"]["admin"]["discord_webhook"] = json!(webhook);
    });
    assert_eq!(app.post(body).await.status(), 200);

    let deadline = std::time::Instant::now() + WAIT;
    let text = loop {
        let text = metrics(&app).await;
        if sample(&text, r#"relay_events_delivered_total{destination="default"}"#) == Some(3000.0) {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "the default destination got every event:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sample(&text, "relay_owner_destinations"), Some(10.0));
    assert_eq!(sample(&text, "relay_owner_copies_skipped_total"), Some(2980.0), "20 admins on 10 webhooks");
    let samples: Vec<&str> = text.lines().filter(|line| !line.starts_with('#')).collect();
    assert!(samples.len() < 100, "{} series", samples.len());
    assert!(text.len() < 16 * 1024, "/metrics is {} bytes", text.len());
    let named = samples.iter().find(|line| line.contains("admin-") || line.contains("owner:"));
    assert!(named.is_none(), "no admin or webhook names in labels: {named:?}");
    assert_eq!(sample(&text, r#"relay_pending_rows{destination="owner"}"#), Some(20.0));
    let warnings = logs().iter().filter(|line| line.contains("OWNER_DESTINATIONS_MAX (10) owner webhooks")).count();
    assert!((1..=5).contains(&warnings), "{warnings} warnings for 2,980 skipped copies");

    // In the outbox: one destination per webhook, each with both of its admins' events.
    let outbox = Outbox::open(dir.path()).unwrap();
    let owners: Vec<_> =
        outbox.stats().await.unwrap().into_iter().filter(|s| s.destination.starts_with("owner:")).collect();
    assert_eq!(owners.len(), 10);
    assert!(owners.iter().all(|s| s.pending == 2), "{owners:?}");
    app.stop().await;
}
