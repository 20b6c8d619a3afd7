//! Forum mode set up wrong, or a forum that refuses what the relay sends: every message would be
//! refused alike, so the destination pauses with a hint and keeps its rows, instead of turning
//! each user's events into dead letters.

use crate::fake_discord::{FakeDiscord, WEBHOOK_ID};
use crate::helpers::{batch_of, poll_until, spawn_app_in, Options, TestApp};

/// Three users' first events, one request.
fn three_users() -> String {
    batch_of("user_created", 3, "first_", |_, _| {})
}

/// Waits until `/readyz` says the destination is paused for a reason containing `needle`.
async fn paused_saying(app: &TestApp, needle: &str) -> String {
    poll_until(&format!("a pause in /readyz saying {needle:?}"), || async {
        let text = app.get("/readyz").await.text().await.unwrap();
        text.contains(needle).then_some(text)
    })
    .await
}

/// The sum of `relay_dead_letters_total` over every destination.
async fn dead_letters(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with("relay_dead_letters_total{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn forum_mode_on_a_text_channels_webhook_pauses_instead_of_dead_lettering_every_event() {
    // Arrange: DISCORD_FORUM=true, but the webhook is a text channel's (Discord: 400, code 220003).
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("DISCORD_FORUM", "true")).await;

    // Act
    assert_eq!(app.post(three_users()).await.status(), 200);

    // Assert
    let ready = paused_saying(&app, "220003").await;
    assert!(ready.contains("not a forum"), "{ready}");
    assert_eq!(app.pending_rows().await, 3.0, "the rows are kept");
    assert_eq!(dead_letters(&app).await, 0.0);
    assert!(discord.messages().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_forum_that_requires_tags_pauses_instead_of_dead_lettering_every_new_users_events() {
    // Arrange: the forum's settings require a tag on every post; no tags are configured.
    let discord = FakeDiscord::start().await;
    let url = discord.forum_webhook_url(WEBHOOK_ID);
    discord.require_tags(WEBHOOK_ID);
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord).var("DISCORD_WEBHOOK_URL", &url).var("DISCORD_FORUM", "true");
    let app = spawn_app_in(dir.path(), options).await;

    // Act
    assert_eq!(app.post(three_users()).await.status(), 200);

    // Assert
    let ready = paused_saying(&app, "40067").await;
    assert!(ready.contains("DISCORD_FORUM_TAGS"), "says how to fix it: {ready}");
    assert_eq!(app.pending_rows().await, 3.0, "the rows are kept");
    assert_eq!(dead_letters(&app).await, 0.0);
    app.stop().await;

    // Once every action has a tag, the kept events make their posts.
    let tags: Vec<String> = ["user_created", "digest"].iter().map(|key| format!("{key}:123456789012345678")).collect();
    let options = Options::delivering_to(&discord)
        .var("DISCORD_WEBHOOK_URL", &url)
        .var("DISCORD_FORUM", "true")
        .var("DISCORD_FORUM_TAGS", &tags.join(","));
    let app = spawn_app_in(dir.path(), options).await;
    app.wait_until_settled().await;
    let names: Vec<String> = discord.threads().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["first_0", "first_1", "first_2"]);
    app.stop().await;
}
