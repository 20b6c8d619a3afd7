//! Forum mode set up wrong, or a forum that refuses what the relay sends: every message would be
//! refused alike, so the destination pauses with a hint and keeps its rows, instead of turning
//! each user's events into dead letters.

use sha2::Digest;

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

#[tokio::test]
async fn a_recreated_user_gets_a_fresh_post_even_when_the_forum_never_heard_of_the_deletion() {
    // Arrange: a support forum that gets only users' creations and expiries (the deletion goes
    // elsewhere, or is muted, or was lost in the panel's queue).
    let discord = FakeDiscord::start().await;
    let url = discord.forum_webhook_url(WEBHOOK_ID);
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        format!(
            "mute = [\"user_deleted\"]\n[destinations.support]\nurl = \"{url}\"\nforum = true\n\
             [[rules]]\nto = [\"support\"]\n"
        ),
    )
    .unwrap();
    let options =
        Options::new().var("WEBHOOK_SECRET", crate::helpers::SECRET).var("ROUTES_FILE", routes.to_str().unwrap());
    let app = spawn_app_in(dir.path(), options).await;

    // Act: alice is created and expires; later she is deleted and a new alice is created.
    for action in ["user_created", "user_expired"] {
        assert_eq!(app.post(batch_of(action, 1, "alice", |_, _| {})).await.status(), 200);
    }
    app.wait_until_settled().await;
    let later: Vec<serde_json::Value> = ["user_deleted", "user_created", "user_limited"]
        .iter()
        .flat_map(|action| {
            serde_json::from_str::<Vec<serde_json::Value>>(&batch_of(action, 1, "alice", |_, _| {})).unwrap()
        })
        .collect();
    assert_eq!(app.post(serde_json::to_string(&later).unwrap()).await.status(), 200);
    app.wait_until_settled().await;

    // Assert
    let threads = discord.threads();
    let held: Vec<(String, usize)> = threads.iter().map(|t| (t.name.clone(), t.messages.len())).collect();
    let embeds: Vec<usize> =
        threads.iter().map(|t| t.messages.iter().map(|m| m["embeds"].as_array().map_or(0, Vec::len)).sum()).collect();
    assert_eq!(held.len(), 2, "the new alice has a post of her own: {held:?}");
    assert_eq!(embeds, [2, 2], "created + expired, then the new alice's created + limited: {held:?}");
    app.stop().await;
}

#[tokio::test]
async fn answers_that_never_say_the_new_posts_id_pause_the_forum_instead_of_making_a_post_per_event() {
    // Arrange: something in front of Discord (a proxy) answers 2xx without the created message, so
    // the relay never learns a post's id; one such answer is a glitch, three in a row are not.
    let discord = FakeDiscord::start().await;
    let url = discord.forum_webhook_url(WEBHOOK_ID);
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord).var("DISCORD_WEBHOOK_URL", &url).var("DISCORD_FORUM", "true");
    let app = spawn_app_in(dir.path(), options).await;
    discord.script([crate::fake_discord::Reply::status(204, "")]);

    // Act: a glitch, then three users' first events all answered without a body.
    assert_eq!(app.post(batch_of("user_created", 1, "glitch_", |_, _| {})).await.status(), 200);
    app.wait_until_settled().await;
    assert_eq!(app.post(batch_of("user_created", 1, "fine_", |_, _| {})).await.status(), 200);
    app.wait_until_settled().await;
    discord.script((0..3).map(|_| crate::fake_discord::Reply::status(200, "{}")));
    assert_eq!(app.post(three_users()).await.status(), 200);

    // Assert
    let ready = paused_saying(&app, "did not say the new post's id").await;
    assert!(ready.contains("proxy"), "{ready}");
    assert_eq!(app.pending_rows().await, 0.0, "the three were delivered");
    assert_eq!(app.post(batch_of("user_created", 1, "later_", |_, _| {})).await.status(), 200);
    poll_until("the later event pending", || async { (app.pending_rows().await == 1.0).then_some(()) }).await;
    assert_eq!(discord.requests().len(), 5, "a glitch does not pause: {:#?}", discord.requests());
    app.stop().await;
}

#[tokio::test]
async fn a_digest_post_refused_for_its_tags_is_made_without_them_not_as_a_post_per_user() {
    // Arrange: the `digest` tag id is not one of the forum's (a copy-paste slip), and Discord
    // refuses the post that names it.
    let discord = FakeDiscord::start().await;
    let url = discord.forum_webhook_url(WEBHOOK_ID);
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord)
        .var("DISCORD_WEBHOOK_URL", &url)
        .var("DISCORD_FORUM", "true")
        .var("DISCORD_FORUM_TAGS", "digest:999999999999999999")
        .var("DIGEST_WINDOW", "1s");
    let app = spawn_app_in(dir.path(), options).await;
    let refused = r#"{"code": 50035, "message": "Invalid Form Body", "errors": {"applied_tags": {"_errors": [{"code": "BASE_TYPE_CHOICES", "message": "Value must be one of the forum's tags."}]}}}"#;
    discord.script([crate::fake_discord::Reply::status(400, refused)]);

    // Act: a burst of 100 expiries.
    assert_eq!(app.post(batch_of("user_expired", 100, "expired_", |_, _| {})).await.status(), 200);
    app.wait_until_settled().await;

    // Assert
    let threads = discord.threads();
    let names: Vec<&str> = threads.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(threads.len(), 1, "one digest post, not a post per user: {names:?}");
    assert!(threads[0].name.starts_with("📋 Digest"), "{names:?}");
    assert!(threads[0].applied_tags.is_empty());
    assert_eq!(dead_letters(&app).await, 0.0);
    assert_eq!(discord.requests().len(), 2, "the refused request and the post without tags");
    app.stop().await;
}

#[tokio::test]
async fn a_new_post_refused_with_and_without_its_tags_is_a_dead_letter_after_two_requests() {
    let discord = FakeDiscord::start().await;
    let url = discord.forum_webhook_url(WEBHOOK_ID);
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord)
        .var("DISCORD_WEBHOOK_URL", &url)
        .var("DISCORD_FORUM", "true")
        .var("DISCORD_FORUM_TAGS", "user_created:123456789012345678");
    let app = spawn_app_in(dir.path(), options).await;
    let refused = r#"{"code": 50035, "message": "Invalid Form Body"}"#;
    discord.script((0..2).map(|_| crate::fake_discord::Reply::status(400, refused)));

    assert_eq!(app.post(batch_of("user_created", 1, "refused_", |_, _| {})).await.status(), 200);
    app.wait_until_settled().await;

    assert_eq!(dead_letters(&app).await, 1.0);
    let requests = discord.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert!(requests[0].body.contains("applied_tags") && !requests[1].body.contains("applied_tags"));
    app.stop().await;
}

#[tokio::test]
async fn a_post_title_automod_blocks_is_made_with_a_neutral_title_and_keeps_the_users_events() {
    // Arrange: the forum's AutoMod blocks titles with "casino"; tags are set, so a refusal that
    // is not recognised would be blamed on them.
    let discord = FakeDiscord::start().await;
    let url = discord.forum_webhook_url(WEBHOOK_ID);
    discord.block_title_word("casino");
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord)
        .var("DISCORD_WEBHOOK_URL", &url)
        .var("DISCORD_FORUM", "true")
        .var("DISCORD_FORUM_TAGS", "user_created:123456789012345678");
    let app = spawn_app_in(dir.path(), options).await;
    let events: Vec<serde_json::Value> = ["user_created", "user_limited", "user_expired", "user_disabled"]
        .iter()
        .flat_map(|action| {
            serde_json::from_str::<Vec<serde_json::Value>>(&batch_of(action, 1, "casino_king", |_, _| {})).unwrap()
        })
        .collect();

    // Act: the user's first four events, then, once they are in, a later one.
    assert_eq!(app.post(serde_json::to_string(&events).unwrap()).await.status(), 200);
    app.wait_until_settled().await;
    assert_eq!(app.post(batch_of("user_enabled", 1, "casino_king", |_, _| {})).await.status(), 200);
    app.wait_until_settled().await;

    // Assert
    let threads = discord.threads();
    let held: Vec<(String, usize)> = threads.iter().map(|t| (t.name.clone(), t.messages.len())).collect();
    let hash = marzban_discord_relay::secret::lower_hex(&sha2::Sha256::digest(b"casino_king0"));
    assert_eq!(held, [(format!("#{}", &hash[..8]), 2)], "one post, neutrally titled, holding every event");
    let embeds: usize = threads[0].messages.iter().map(|m| m["embeds"].as_array().map_or(0, Vec::len)).sum();
    assert_eq!(embeds, 5);
    assert_eq!(threads[0].applied_tags, ["123456789012345678"], "the tags were never the problem");
    assert_eq!(dead_letters(&app).await, 0.0);
    assert_eq!(discord.requests().len(), 3, "the blocked post, the neutral one, the later event");
    let logs = crate::helpers::logs();
    assert!(logs.iter().any(|line| line.contains("AutoMod blocked the title")), "{logs:#?}");
    assert!(!logs.iter().any(|line| line.contains("Check the tag ids")), "{logs:#?}");
    app.stop().await;
}
