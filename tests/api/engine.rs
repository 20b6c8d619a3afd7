//! The delivery engine against a fake Discord that pushes back: packing at every limit, Discord's
//! hidden channel limit, refusals, a deleted webhook, digests, duplicates, and a crash. How long each
//! kind of 429, failure and empty bucket makes it wait is tested step by step in `pacing.rs`.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::cli::relay;
use crate::fake_discord::{ChannelLimit, FakeDiscord, Limits, Reply};
use crate::helpers::{batch_of, eventually, fixture, logs, spawn_app_in, Options, Process};

const WAIT: Duration = Duration::from_secs(30);

/// Delivering to `discord`, with digests off unless a test wants them.
fn options(discord: &FakeDiscord) -> Options {
    Options::delivering_to(discord).var("DIGEST_THRESHOLD", "0")
}

fn embeds_per_message(discord: &FakeDiscord) -> Vec<usize> {
    discord.messages().iter().map(|m| m["embeds"].as_array().unwrap().len()).collect()
}

fn titles(discord: &FakeDiscord) -> Vec<String> {
    discord.embeds().iter().map(|e| e["title"].as_str().unwrap_or_default().to_owned()).collect()
}

/// A note of `chars` Cyrillic letters: two bytes each, one character each for Discord.
fn long_note(chars: usize) -> impl Fn(usize, &mut Value) {
    move |_, event| event["user"]["note"] = Value::from("ж".repeat(chars))
}

#[tokio::test]
async fn packs_ten_embeds_per_message() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), options(&discord)).await;

    assert_eq!(app.post(batch_of("user_created", 25, "u", |_, _| {})).await.status(), 200);
    discord.wait_for_embeds(25, WAIT).await;
    assert_eq!(embeds_per_message(&discord), [10, 10, 5]);
    let expected: Vec<String> = (0..25).map(|i| format!("🆕 User created: u{i}")).collect();
    assert_eq!(titles(&discord), expected, "in the order received");
    app.stop().await;
}

#[tokio::test]
async fn packs_no_more_than_6000_characters_of_multibyte_text() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), options(&discord)).await;

    // Each embed: the note (2400 characters, 4800 bytes) plus title and fields, about 2500
    // characters: two fit in 6000, three do not.
    assert_eq!(app.post(batch_of("user_created", 5, "u", long_note(2400))).await.status(), 200);
    discord.wait_for_embeds(5, WAIT).await;
    assert_eq!(embeds_per_message(&discord), [2, 2, 1]);
    assert_eq!(discord.count_status(400), 0, "the fake checks the 6000 total on its own");
    app.stop().await;
}

#[tokio::test]
async fn absorbs_the_hidden_channel_limit_without_losing_or_duplicating() {
    let limits = Limits {
        bucket_requests: 50,
        bucket_window: Duration::from_secs(1),
        channel: Some(ChannelLimit {
            messages: 3,
            window: Duration::from_secs(1),
            retry_after: Duration::from_millis(300),
        }),
    };
    let discord = FakeDiscord::start_with(limits).await;
    let dir = tempfile::tempdir().unwrap();
    // The relay's own channel pacing is set too loose here, so it runs into the hidden limit.
    let app = spawn_app_in(dir.path(), options(&discord).tweak(|c| c.delivery.channel_messages = 100)).await;

    assert_eq!(app.post(batch_of("user_created", 8, "u", long_note(3500))).await.status(), 200);
    app.wait_until_settled().await;
    assert!(discord.count_status(429) > 0, "the hidden limit was hit");
    let expected: Vec<String> = (0..8).map(|i| format!("🆕 User created: u{i}")).collect();
    assert_eq!(titles(&discord), expected, "each once, in order");
    app.stop().await;
}

#[tokio::test]
async fn a_refused_packed_message_dead_letters_only_the_bad_embed() {
    let discord = FakeDiscord::start().await;
    discord.reject_embeds(|embed| embed["title"].as_str().unwrap_or_default().contains("bad"));
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), options(&discord)).await;

    let body = batch_of("user_created", 5, "u", |i, event| {
        if i == 2 {
            event["username"] = json!("bad-user");
        }
    });
    assert_eq!(app.post(body).await.status(), 200);
    app.wait_until_settled().await;
    assert_eq!(
        titles(&discord),
        ["🆕 User created: u0", "🆕 User created: u1", "🆕 User created: u3", "🆕 User created: u4"]
    );
    let statuses: Vec<u16> = discord.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 200, 200, 400, 200, 200], "the pack of 5 refused, then one by one");
    app.stop().await;

    let data_dir = dir.path().to_str().unwrap();
    let output = relay(&["outbox", "dead"], &[("DATA_DIR", data_dir)]);
    let dead = String::from_utf8_lossy(&output.stdout);
    assert!(dead.contains("user_created \"bad-user\""), "{dead}");
    assert!(dead.contains("HTTP 400") && dead.contains("refused by the test"), "{dead}");
    assert!(dead.contains("1 dead letter(s) shown"), "{dead}");

    let output = relay(&["outbox", "stats"], &[("DATA_DIR", data_dir)]);
    let stats = String::from_utf8_lossy(&output.stdout);
    let line = stats.lines().find(|l| l.starts_with("default")).unwrap();
    assert_eq!(line.split_whitespace().take(4).collect::<Vec<_>>(), ["default", "0", "4", "1"], "{stats}");

    let id = dead.split_whitespace().next().unwrap().trim_start_matches('#').to_owned();
    let output = relay(&["outbox", "retry", &id], &[("DATA_DIR", data_dir)]);
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "1 dead letter(s) made pending again");
    let output = relay(&["outbox", "purge", "--delivered-older-than", "0"], &[("DATA_DIR", data_dir)]);
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "deleted 4 delivered row(s) older than 0s");
    let output = relay(&["outbox", "stats"], &[("DATA_DIR", data_dir)]);
    let stats = String::from_utf8_lossy(&output.stdout);
    let line = stats.lines().find(|l| l.starts_with("default")).unwrap();
    assert_eq!(line.split_whitespace().take(4).collect::<Vec<_>>(), ["default", "1", "0", "0"], "{stats}");
}

#[tokio::test]
async fn a_deleted_webhook_pauses_the_destination_and_keeps_its_rows() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::not_found()]);
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), options(&discord)).await;

    let reminders =
        || logs().iter().filter(|l| l.starts_with("ERROR") && l.contains("still paused, rows are waiting")).count();
    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    discord.wait_for_requests(1, WAIT).await;
    assert_eq!(app.post(fixture("marzban-0.8.4/user_deleted.json")).await.status(), 200, "still accepted");
    // A reminder from here on comes from a turn of the task after the second event was stored.
    let before = reminders();
    eventually(WAIT, "a reminder that the destination is paused", || reminders() > before).await;
    assert_eq!(discord.requests().len(), 1, "nothing more was sent to the 404 webhook");
    let paused: Vec<String> = logs().into_iter().filter(|l| l.contains("the webhook was deleted")).collect();
    assert!(!paused.is_empty());
    app.stop().await;

    let output = relay(&["outbox", "stats"], &[("DATA_DIR", dir.path().to_str().unwrap())]);
    let stats = String::from_utf8_lossy(&output.stdout);
    let line = stats.lines().find(|l| l.starts_with("default")).unwrap();
    assert_eq!(line.split_whitespace().take(4).collect::<Vec<_>>(), ["default", "2", "0", "0"], "{stats}");
}

#[tokio::test]
async fn a_burst_goes_out_as_a_digest_listing_every_user() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("PANEL_NAME", "eu-1")).await;

    // A quiet event first, then a midnight's worth of expiries.
    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    discord.wait_for_embeds(1, WAIT).await;
    assert_eq!(app.post(batch_of("user_expired", 312, "expired_user_", |_, _| {})).await.status(), 200);

    eventually(WAIT, "all 312 users in digests", || {
        let listed: Vec<String> = discord
            .embeds()
            .iter()
            .skip(1)
            .flat_map(|e| {
                e["description"].as_str().unwrap_or_default().split(", ").map(str::to_owned).collect::<Vec<_>>()
            })
            .collect();
        listed.len() == 312 && (0..312).all(|i| listed.contains(&format!("expired\\_user\\_{i}")))
    })
    .await;
    let messages = discord.messages();
    // 285 names fill the two embeds of one message; the other 27 make a second digest rather than
    // three messages of single embeds.
    assert_eq!(messages.len(), 3, "1 single event, then 312 events in {} messages", messages.len() - 1);
    let digest = &discord.embeds()[1];
    let title = digest["title"].as_str().unwrap();
    assert!(title.starts_with("📋 ") && title.contains(" users expired"), "{title}");
    assert_eq!(digest["color"], 0xE74C3C);
    assert_eq!(digest["footer"]["text"], "eu-1");
    let digest_titles: Vec<String> = titles(&discord).into_iter().skip(1).collect();
    assert_eq!(
        digest_titles,
        ["📋 312 users expired (1/3)", "📋 312 users expired (2/3)", "📋 312 users expired (3/3)"],
        "every part gives the burst's total and its place in the whole burst"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_resent_batch_is_stored_once() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Folding off: both events of the pair are stored, and both recognised when re-sent.
    let app = spawn_app_in(dir.path(), options(&discord).var("FOLD_UPDATES", "false")).await;
    let first = fixture("marzban-0.8.4/user_enabled.json");
    let mut resent: Vec<Value> = serde_json::from_str(&first).unwrap();
    for event in &mut resent {
        event["tries"] = json!(1);
        event["send_at"] = json!(1795801335.5);
    }

    let receipt: Value = app.post(first).await.json().await.unwrap();
    assert_eq!(receipt["duplicates"], 0);
    let receipt: Value = app.post(serde_json::to_string(&resent).unwrap()).await.json().await.unwrap();
    assert_eq!((receipt["accepted"].as_u64(), receipt["duplicates"].as_u64()), (Some(2), Some(2)));
    app.wait_until_settled().await;
    assert_eq!(discord.embeds().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_crash_mid_delivery_loses_no_acknowledged_event() {
    let discord = FakeDiscord::start().await;
    discord.set_delay(Duration::from_millis(150));
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("WEBHOOK_SECRET", crate::helpers::SECRET),
        ("DISCORD_WEBHOOK_URL", &discord.webhook_url()),
        ("DIGEST_THRESHOLD", "0"),
        ("DATA_DIR", "data"),
        ("RUST_LOG", "warn"),
    ];
    let mut relay_process = Process::start(dir.path(), &vars).await;
    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    for i in 0..40 {
        let body = batch_of("user_created", 1, &format!("crash{i}_"), |_, _| {});
        let response =
            client.post(relay_process.url()).header("x-webhook-secret", crate::helpers::SECRET).body(body).send().await;
        if response.is_ok_and(|r| r.status() == 200) {
            acknowledged.push(format!("crash{i}_0"));
        }
    }
    discord.wait_for_requests(2, WAIT).await;
    relay_process.signal("KILL").await;
    relay_process.wait().await;
    let delivered_before = discord.embeds().len();
    assert!(delivered_before < 40, "the crash happened mid-delivery ({delivered_before} delivered)");

    let mut restarted = Process::start(dir.path(), &vars).await;
    eventually(Duration::from_secs(30), "every acknowledged event in Discord", || {
        let titles: Vec<String> = titles(&discord);
        acknowledged.iter().all(|name| titles.iter().any(|t| t.ends_with(&format!(": {name}").replace('_', "\\_"))))
    })
    .await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for title in titles(&discord) {
        *seen.entry(title).or_default() += 1;
    }
    let duplicated = seen.values().filter(|n| **n > 1).count();
    assert!(duplicated <= 10, "at most the message in flight is sent twice: {duplicated} titles twice");
    assert_eq!(acknowledged.len(), 40);
    restarted.signal("TERM").await;
    assert!(restarted.wait().await.success());
}
