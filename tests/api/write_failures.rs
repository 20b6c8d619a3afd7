//! The outbox cannot record what Discord accepted (a full disk; a write lock held by another
//! process, as a long `outbox purge` could, for longer than the busy timeout): the message is
//! never sent again for that. Only the write is retried, the destination sends nothing else until
//! it is recorded, and `/readyz` says why it is not ready until writes work again.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::fake_discord::{FakeDiscord, Limits, WEBHOOK_ID};
use crate::helpers::{batch_of, poll_until, spawn_app_in, Options, TestApp};

/// The relay's outbox file in `dir`.
fn outbox_file(dir: &Path) -> std::path::PathBuf {
    dir.join("outbox.sqlite3")
}

/// Another process's connection to the outbox (`sqlite3 outbox.sqlite3`), waiting for the relay's
/// own writes to finish before it writes.
fn another_connection(dir: &Path) -> Connection {
    let conn = Connection::open(outbox_file(dir)).unwrap();
    conn.busy_timeout(Duration::from_secs(30)).unwrap();
    conn
}

/// The relay's `/readyz` answer: its status and body.
async fn readiness(app: &TestApp) -> (u16, String) {
    let response = app.get("/readyz").await;
    (response.status().as_u16(), response.text().await.unwrap())
}

/// `relay_delivery_record_retries_total`, summed over destinations.
async fn record_retries(app: &TestApp) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with("relay_delivery_record_retries_total{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// Takes the outbox's write lock once the panel's events are stored and Discord is answering
/// them, as another process would, and holds it past the relay's busy timeout: until the relay has
/// failed to record Discord's answer (or, as it did before, sent the message again). Gives back
/// what `/readyz` said while the lock was held.
async fn hold_the_write_lock_while_discord_answers(app: &TestApp, discord: &FakeDiscord, dir: &Path) -> (u16, String) {
    let lock = another_connection(dir);
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    discord.wait_for_requests(1, crate::helpers::SETTLE).await;
    poll_until("a failed write of what Discord accepted", || async {
        (record_retries(app).await >= 1.0 || discord.arrived() >= 2).then_some(())
    })
    .await;
    let locked = readiness(app).await;
    lock.execute_batch("ROLLBACK").unwrap();
    locked
}

#[tokio::test]
async fn a_message_discord_accepted_while_the_outbox_was_locked_is_sent_once() {
    // Arrange: Discord takes a moment to answer, so the lock is taken while the message is on
    // its way.
    let discord = FakeDiscord::start().await;
    discord.set_delay(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("DIGEST_THRESHOLD", "0")).await;
    assert_eq!(app.post(batch_of("user_limited", 5, "locked_", |_, _| {})).await.status(), 200);

    // Act
    let (status, reasons) = hold_the_write_lock_while_discord_answers(&app, &discord, dir.path()).await;
    app.wait_until_settled().await;

    // Assert
    let messages = discord.messages();
    assert_eq!(messages.len(), 1, "one message of 5 embeds, sent once: {messages:?}");
    assert_eq!(messages[0]["embeds"].as_array().map(Vec::len), Some(5));
    assert_eq!(status, 503, "not ready while the outbox cannot be written: {reasons}");
    assert!(reasons.contains("database is locked"), "says why: {reasons}");
    assert!(reasons.contains("destination default cannot record what Discord accepted (5 events"), "{reasons}");
    assert!(record_retries(&app).await >= 1.0, "the failed write was counted and retried");
    let (status, reasons) = readiness(&app).await;
    assert_eq!(status, 200, "ready again once the lock is gone: {reasons}");
    app.stop().await;
}

#[tokio::test]
async fn a_forum_post_discord_made_while_the_outbox_was_locked_is_made_once_per_user() {
    // Arrange
    let limits = Limits { bucket_requests: 10_000, bucket_window: Duration::from_secs(1), channel: None };
    let discord = FakeDiscord::start_with(limits).await;
    let url = discord.forum_webhook_url(WEBHOOK_ID);
    discord.set_delay(Duration::from_millis(500));
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord)
        .var("DISCORD_WEBHOOK_URL", &url)
        .var("DISCORD_FORUM", "true")
        .var("DIGEST_THRESHOLD", "0")
        .var("CHANNEL_RATE_LIMIT", "0");
    let app = spawn_app_in(dir.path(), options).await;
    assert_eq!(app.post(batch_of("user_created", 3, "locked_", |_, _| {})).await.status(), 200);

    // Act
    hold_the_write_lock_while_discord_answers(&app, &discord, dir.path()).await;
    app.wait_until_settled().await;

    // Assert
    let mut posts: Vec<(String, usize)> =
        discord.threads().into_iter().map(|thread| (thread.name, thread.messages.len())).collect();
    posts.sort();
    let expected: Vec<(String, usize)> = (0..3).map(|i| (format!("locked_{i}"), 1)).collect();
    assert_eq!(posts, expected, "one post per user, each holding its one message");
    app.stop().await;
}

#[tokio::test]
async fn a_failing_write_of_what_discord_accepted_makes_the_relay_not_ready_until_it_is_recorded() {
    // Arrange: marking rows delivered fails at once, as on a full disk.
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    let conn = another_connection(dir.path());
    conn.execute_batch(
        "CREATE TRIGGER disk_full BEFORE UPDATE OF state ON messages WHEN NEW.state = 'delivered'
         BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END;",
    )
    .unwrap();

    // Act
    assert_eq!(app.post(batch_of("user_expired", 1, "full_", |_, _| {})).await.status(), 200);

    // Assert: not ready, saying why, and the write is retried without sending again.
    let reasons = poll_until("/readyz to say the delivery is not recorded", || async {
        let (status, reasons) = readiness(&app).await;
        (status == 503 && reasons.contains("database or disk is full")).then_some(reasons)
    })
    .await;
    assert!(reasons.contains("destination default"), "names the destination: {reasons}");
    poll_until("three failed writes", || async { (record_retries(&app).await >= 3.0).then_some(()) }).await;
    assert_eq!(discord.messages().len(), 1, "Discord has it once, whatever the outbox does");
    assert_eq!(app.pending_rows().await, 1.0, "not recorded yet");

    // The disk has room again.
    conn.execute_batch("DROP TRIGGER disk_full").unwrap();
    app.wait_until_settled().await;
    poll_until("/readyz to be ready again", || async { (readiness(&app).await.0 == 200).then_some(()) }).await;
    assert_eq!(discord.messages().len(), 1, "recorded, not sent again");
    app.stop().await;
}
