//! Forum mode with a small `OUTBOX_MAX_BYTES`: the posts the relay remembers (one per user) must
//! not fill the outbox until the panel's events are refused. A full outbox forgets the posts least
//! recently written to, so events keep being taken; a forgotten user's next event starts a new post.

use std::time::Duration;

use crate::fake_discord::{FakeDiscord, Limits, WEBHOOK_ID};
use crate::helpers::{batch_of, poll_until, spawn_app_in, Options, TestApp};

/// Users per request, and requests: 400 posts (and their users' states) take more than the
/// 24 KiB the smallest outbox, 128 KiB, has beside its empty tables (88 KiB) and the eighth it
/// keeps free.
const USERS_PER_ROUND: usize = 10;
const ROUNDS: usize = 40;

/// The username prefix of a round's users (long names, as panels' customers often have).
fn prefix(round: usize) -> String {
    format!("r{round:02}_customer_account_")
}

/// `relay_forum_posts_forgotten_total`.
async fn posts_forgotten(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines().find_map(|line| line.strip_prefix("relay_forum_posts_forgotten_total ")?.parse().ok()).unwrap_or(0.0)
}

/// Waits until the fake's forum holds `posts` posts and `messages` messages in all.
async fn forum_holding(discord: &FakeDiscord, posts: usize, messages: usize) {
    poll_until(&format!("{posts} posts holding {messages} messages"), || async {
        let threads = discord.threads();
        let held = threads.iter().map(|thread| thread.messages.len()).sum::<usize>();
        (threads.len() >= posts && held >= messages).then_some(())
    })
    .await
}

#[tokio::test]
async fn remembered_posts_filling_a_small_outbox_are_forgotten_least_recent_first_and_events_are_still_taken() {
    // Arrange
    let limits = Limits { bucket_requests: 10_000, bucket_window: Duration::from_secs(1), channel: None };
    let discord = FakeDiscord::start_with(limits).await;
    discord.forum_webhook_url(WEBHOOK_ID);
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord)
        .var("DISCORD_FORUM", "true")
        .var("OUTBOX_MAX_BYTES", "128KiB")
        .var("DIGEST_THRESHOLD", "0")
        .var("CHANNEL_RATE_LIMIT", "0");
    let app = spawn_app_in(dir.path(), options).await;
    let readiness = app.get("/readyz").await;
    assert_eq!(
        readiness.status(),
        200,
        "the smallest outbox is not full when empty: {}",
        readiness.text().await.unwrap()
    );

    // Act: 400 users are created, ten at a time, each batch delivered before the next.
    for round in 0..ROUNDS {
        let response = app.post(batch_of("user_created", USERS_PER_ROUND, &prefix(round), |_, _| {})).await;
        assert_eq!(response.status(), 200, "round {round}: the panel's events are taken");
        let posts = (round + 1) * USERS_PER_ROUND;
        forum_holding(&discord, posts, posts).await;
    }
    let oldest = format!("{}0", prefix(0));
    let newest = format!("{}{}", prefix(ROUNDS - 1), USERS_PER_ROUND - 1);
    let both = batch_of("user_limited", 2, "", |i, event| {
        let name = serde_json::Value::from(if i == 0 { oldest.as_str() } else { newest.as_str() });
        event["username"] = name.clone();
        if event["user"].is_object() {
            event["user"]["username"] = name;
        }
    });
    let response = app.post(both).await;

    // Assert
    assert_eq!(response.status(), 200, "a full outbox of remembered posts still takes events");
    let users = ROUNDS * USERS_PER_ROUND;
    forum_holding(&discord, users + 1, users + 2).await;
    let forgotten = posts_forgotten(&app).await;
    assert!(forgotten >= 1.0 && forgotten < users as f64, "some posts, not all, were forgotten: {forgotten}");
    let threads = discord.threads();
    let named = |name: &str| threads.iter().filter(|t| t.name == name).map(|t| t.messages.len()).collect::<Vec<_>>();
    assert_eq!(named(&newest), [2], "the post written to last is remembered: the event goes into it");
    assert_eq!(named(&oldest), [1, 1], "the oldest post was forgotten: its user's event starts a new post");
    app.stop().await;
}
