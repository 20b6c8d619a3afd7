//! Owner-admin delivery at scale: however many admins a batch names, the relay takes on at most
//! `OWNER_DESTINATIONS_MAX` webhooks (admins sharing one count once), keeps its metrics small, and
//! still delivers every event to the configured destinations.

use std::time::Duration;

use marzban_discord_relay::outbox::Outbox;
use serde_json::json;

use crate::fake_discord::FakeDiscord;
use crate::helpers::{batch_of, refusing_port, Process, SECRET};

const WAIT: Duration = Duration::from_secs(60);

/// The value of the sample `series` (name and labels exactly as exposed), if there is one.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn three_thousand_admins_make_at_most_the_bound_of_owner_webhooks() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Owner webhooks must be on Discord's own hosts, which no test may reach: the relay runs as its
    // own process with its https requests sent to a proxy on loopback that hangs up at once, so
    // owner copies stay pending and nothing leaves the machine. What matters is how many
    // destinations there are.
    let proxy = format!("http://127.0.0.1:{}", refusing_port().await);
    let webhook_url = discord.webhook_url();
    let mut relay = Process::start(
        dir.path(),
        &[
            ("WEBHOOK_SECRET", SECRET),
            ("DISCORD_WEBHOOK_URL", &webhook_url),
            ("DELIVER_TO_OWNER_ADMIN", "true"),
            ("OWNER_DESTINATIONS_MAX", "10"),
            ("HTTPS_PROXY", &proxy),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let url = relay.url();
    let metrics = || async { client.get(format!("{url}metrics")).send().await.ok()?.text().await.ok() };

    // 3,000 admins with long names, two to a webhook.
    let body = batch_of("user_created", 3000, "u", |i, event| {
        event["user"]["admin"]["username"] = json!(format!("admin-{i}-{}", "ж".repeat(500)));
        let webhook = format!("https://discord.com/api/webhooks/{}/token-{}", 900_000 + i / 2, i / 2);
        event["user"]["admin"]["discord_webhook"] = json!(webhook);
    });
    let response = client.post(relay.url()).header("x-webhook-secret", SECRET).body(body).send().await.unwrap();
    assert_eq!(response.status(), 200);

    let deadline = std::time::Instant::now() + WAIT;
    let text = loop {
        let text = metrics().await.unwrap_or_default();
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
    let warnings =
        relay.log().lines().filter(|line| line.contains("OWNER_DESTINATIONS_MAX (10) owner webhooks")).count();
    assert!((1..=5).contains(&warnings), "{warnings} warnings for 2,980 skipped copies");
    relay.signal("TERM").await;
    assert!(relay.wait().await.success());

    // In the outbox: one destination per webhook, each with both of its admins' events.
    let outbox = Outbox::open(&dir.path().join("data")).unwrap();
    let owners: Vec<_> =
        outbox.stats().await.unwrap().into_iter().filter(|s| s.destination.starts_with("owner:")).collect();
    assert_eq!(owners.len(), 10);
    assert!(owners.iter().all(|s| s.pending == 2), "{owners:?}");
}
