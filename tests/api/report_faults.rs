//! Reports where the unlucky and the hostile meet them: a relay down across report times, a
//! panel that sends events named `report` (one of them for a user named `daily report`), forum
//! posts in another language, and usernames that show as nothing or span lines.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::Value;

use crate::fake_discord::{FakeDiscord, WEBHOOK_ID};
use crate::helpers::{batch_of, logs, poll_until, spawn_app_in};
use crate::reports::{field, options, period_end, FakeTime};

/// A daily schedule due at the quarter-hour after next (events received now fall in its
/// period), the schedule, and a fake clock reading now.
fn daily_due() -> (i64, String, FakeTime) {
    let now = Timestamp::now().as_second();
    let due = (now + 60).div_euclid(900) * 900 + 900;
    let at = Timestamp::from_second(due).unwrap().to_string();
    (due, format!("daily@{}", &at[11..16]), Arc::new(AtomicI64::new(now)))
}

async fn first_look() {
    poll_until("the producer's first look", || async {
        logs().iter().any(|line| line.contains("daily reports start with the period after")).then_some(())
    })
    .await;
}

/// The messages Discord accepted that are reports (the built-in report titles start with 📊).
fn reports(discord: &FakeDiscord) -> Vec<Value> {
    let messages = discord.messages().into_iter();
    messages.filter(|body| body["embeds"][0]["title"].as_str().is_some_and(|t| t.starts_with("📊"))).collect()
}

async fn wait_for_report(discord: &FakeDiscord) -> Value {
    poll_until("a report", || async { reports(discord).into_iter().next() }).await
}

/// `event` (a Marzban body) about the user `username`.
fn rename(event: &mut Value, username: &str) {
    event["username"] = Value::from(username);
    if event["user"].is_object() {
        event["user"]["username"] = Value::from(username);
    }
}

/// Where a report's period starts: the first time in its description, unix seconds.
fn period_start(report: &Value) -> i64 {
    let description = report["embeds"][0]["description"].as_str().unwrap();
    let start = description.split("<t:").nth(1).and_then(|rest| rest.split(':').next()).unwrap();
    start.parse().unwrap()
}

#[tokio::test]
async fn a_report_after_downtime_across_two_report_times_counts_everything_since_the_last_one() {
    // Arrange: the relay first sees the schedule (the period ending a day before `due` is
    // recorded), three users expire, and the relay goes down.
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (due, schedule, time) = daily_due();
    let app = spawn_app_in(dir.path(), options(&discord, &schedule, &time)).await;
    first_look().await;
    assert_eq!(app.post(batch_of("user_expired", 3, "expired_", |_, _| {})).await.status(), 200);
    app.wait_until_settled().await;
    app.stop().await;

    // Act: it comes back a day after `due`: the report times `due` and `due` + 1 day passed.
    time.store(due + 86_400 + 3600, Ordering::SeqCst);
    let app = spawn_app_in(dir.path(), options(&discord, &schedule, &time)).await;
    let report = wait_for_report(&discord).await;

    // Assert: one report, from where the last one ended, with the three expirations.
    assert_eq!((period_start(&report), period_end(&report)), (due - 86_400, due + 86_400), "{report:#}");
    assert!(field(&report, "Status").contains("Expired: 3"), "{report:#}");
    let expired = field(&report, "⌛ Expired");
    assert!(["expired\\_0", "expired\\_1", "expired\\_2"].iter().all(|name| expired.contains(name)), "{expired}");
    app.stop().await;
    assert_eq!(reports(&discord).len(), 1);
}

#[tokio::test]
async fn a_panels_events_named_report_are_events_and_never_take_the_reports_post() {
    // Arrange: a forum destination in Russian that gets the daily report.
    let discord = FakeDiscord::start().await;
    let url = discord.forum_webhook_url(WEBHOOK_ID);
    let dir = tempfile::tempdir().unwrap();
    let (due, schedule, time) = daily_due();
    let forum = |time: &FakeTime| {
        options(&discord, &schedule, time)
            .var("DISCORD_WEBHOOK_URL", &url)
            .var("DISCORD_FORUM", "true")
            .var("TEMPLATE_LANG", "ru")
    };
    let app = spawn_app_in(dir.path(), forum(&time)).await;
    first_look().await;
    let named_report = |_: usize, event: &mut Value| event["action"] = Value::from("report");

    // Act: the panel sends an event named `report` for a user named `daily report`, then a
    // burst of 40 more; then the report falls due.
    let namesake = batch_of("user_created", 1, "", |i, event| {
        named_report(i, event);
        rename(event, "daily report");
    });
    assert_eq!(app.post(namesake).await.status(), 200);
    app.wait_until_settled().await;
    assert_eq!(app.post(batch_of("user_created", 40, "burst_", named_report)).await.status(), 200);
    app.wait_until_settled().await;
    time.store(due + 1, Ordering::SeqCst);
    let report = wait_for_report(&discord).await;

    // Assert: the namesake's post, one digest post for the burst, and the report's own post,
    // titled in Russian, holding the report alone.
    let threads = discord.threads();
    let names: Vec<&str> = threads.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(threads.len(), 3, "{names:?}");
    assert_eq!(names[0], "daily report");
    assert!(names[1].starts_with("📋 Сводка"), "the burst is a digest: {names:?}");
    assert_eq!(names[2], "📊 Отчёт за день", "{names:?}");
    assert_eq!(threads[2].messages, [report], "the report's post holds the report alone");
    assert_eq!(threads[0].messages.len(), 1, "the namesake's post holds their event alone");
    app.stop().await;
}

#[tokio::test]
async fn a_reports_list_shows_a_blank_or_multi_line_username_as_one_entry() {
    // Arrange
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (due, schedule, time) = daily_due();
    let app = spawn_app_in(dir.path(), options(&discord, &schedule, &time)).await;
    first_look().await;
    let names = ["", "\u{200B}\u{2060}", "ali\nreza", "bob"];

    // Act: four users expire, two of them with names that show as nothing, one on two lines.
    let body = batch_of("user_expired", names.len(), "", |i, event| {
        rename(event, names[i]);
    });
    assert_eq!(app.post(body).await.status(), 200);
    app.wait_until_settled().await;
    time.store(due + 1, Ordering::SeqCst);
    let report = wait_for_report(&discord).await;

    // Assert
    let expired = field(&report, "⌛ Expired");
    let entries: Vec<&str> = expired.split(", ").collect();
    assert_eq!(entries.len(), 4, "{expired:?}");
    assert!(!expired.contains('\n'), "{expired:?}");
    assert_eq!(entries.iter().filter(|entry| **entry == "(no username)").count(), 2, "{expired:?}");
    assert!(entries.contains(&"ali reza") && entries.contains(&"bob"), "{expired:?}");
    app.stop().await;
}
