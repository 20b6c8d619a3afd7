//! Waits in `/readyz`: a destination held back by Discord for longer than `READYZ_WAIT_NOTICE`
//! is listed under `notices` with the reason and the end, while the relay stays ready; an ordinary
//! short 429 leaves `/readyz` as it was; a wait of five minutes or more makes it not ready.

use std::time::{Duration, SystemTime};

use marzban_discord_relay::metrics::{Health, Waiting};
use serde_json::{json, Value};

use crate::fake_discord::{FakeDiscord, Reply};
use crate::helpers::{fixture, poll_until, spawn_app_in, Options, TestApp};

const WAIT: Duration = Duration::from_secs(30);

async fn readiness(app: &TestApp) -> (u16, Value) {
    let response = app.get("/readyz").await;
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Polls `/readyz` until it lists a notice; returns the status, the body and the notice.
async fn first_notice(app: &TestApp) -> (u16, Value, String) {
    poll_until("a notice in /readyz", || async {
        let (status, body) = readiness(app).await;
        let notice = body["notices"][0].as_str()?.to_owned();
        Some((status, body, notice))
    })
    .await
}

/// The end a notice names (`… waits until 2026-12-07T14:30:00Z (another …`).
fn end_of(notice: &str) -> SystemTime {
    let end = notice.split("until ").nth(1).and_then(|rest| rest.split(' ').next()).expect("the notice names its end");
    let at: jiff::Timestamp = end.parse().unwrap_or_else(|err| panic!("{end:?} in {notice:?}: {err}"));
    let seconds = u64::try_from(at.as_second()).expect("an end after 1970");
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

#[tokio::test]
async fn a_four_minute_429_is_a_notice_with_its_reason_and_end_and_the_relay_stays_ready() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::too_many(Duration::from_secs(240))]);
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    let asked_at = SystemTime::now();

    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    let (status, body, notice) = first_notice(&app).await;

    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true, "{body}");
    assert!(body.get("reasons").is_none(), "{body}");
    assert!(notice.starts_with("destination default waits until "), "{notice}");
    assert!(notice.contains("Discord answered 429 (user scope): waiting 240s"), "{notice}");
    let end = end_of(&notice);
    let lasts = end.duration_since(asked_at).unwrap_or_default();
    assert!(lasts > Duration::from_secs(230) && lasts <= Duration::from_secs(241 + WAIT.as_secs()), "{notice}");
    app.stop().await;
}

#[tokio::test]
async fn a_notice_goes_once_its_wait_is_over_and_the_message_is_delivered() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::too_many(Duration::from_secs(3))]);
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("READYZ_WAIT_NOTICE", "2s")).await;

    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    let (status, _, notice) = first_notice(&app).await;
    assert_eq!(status, 200);
    assert!(notice.contains("waiting 3s"), "{notice}");

    discord.wait_for_embeds(1, WAIT).await;
    poll_until("the notice to go", || async { (readiness(&app).await == (200, json!({"ready": true}))).then_some(()) })
        .await;
    app.stop().await;
}

#[tokio::test]
async fn an_ordinary_short_429_leaves_readyz_as_it_was() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::too_many(Duration::from_secs(2))]);
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;

    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    let deadline = std::time::Instant::now() + WAIT;
    let mut looked_while_waiting = 0;
    while discord.embeds().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the message was not delivered after the 429");
        if discord.count_status(429) == 1 {
            assert_eq!(readiness(&app).await, (200, json!({"ready": true})), "during a 2 s wait");
            looked_while_waiting += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(looked_while_waiting > 0, "/readyz was asked during the wait");
    app.stop().await;
}

#[tokio::test]
async fn a_retry_after_a_failure_longer_than_the_notice_is_listed_too() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::server_error()]);
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord).var("READYZ_WAIT_NOTICE", "1s").var("RETRY_SCHEDULE", "5s");
    let app = spawn_app_in(dir.path(), options).await;

    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    let (status, _, notice) = first_notice(&app).await;
    assert_eq!(status, 200, "a retry never makes the relay not ready");
    assert!(notice.contains("retrying after a failed delivery (attempt 1): HTTP 500"), "{notice}");
    app.stop().await;
}

#[tokio::test]
async fn a_wait_of_five_minutes_or_more_makes_the_relay_not_ready_and_names_its_end() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::too_many(Duration::from_secs(600))]);
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;

    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    let (status, body) = poll_until("readiness to change", || async {
        Some(readiness(&app).await).filter(|(status, _)| *status != 200)
    })
    .await;
    assert_eq!(status, 503, "{body}");
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("destination default is parked until "), "{reason}");
    assert!(reason.contains("Discord answered 429 (user scope): waiting 600s"), "{reason}");
    assert!(end_of(reason) > SystemTime::now() + Duration::from_secs(500), "{reason}");
    assert!(body.get("notices").is_none(), "a wait is either a reason or a notice: {body}");
    app.stop().await;
}

#[test]
fn a_shorter_wait_does_not_hide_a_longer_one_still_running() {
    let health = Health::default();
    let now = SystemTime::now();
    let wait = |seconds, blocks| Waiting {
        until: now + Duration::from_secs(seconds),
        reason: format!("waiting {seconds}s"),
        blocks,
    };
    let everyone = |_: &str| true;

    health.wait("default", wait(900, true));
    health.wait("default", wait(90, false));
    assert_eq!(health.reasons(now, everyone).len(), 1, "still parked");
    assert!(health.notices(now, everyone).is_empty());

    health.wait("default", wait(120, false));
    let after_the_park = now + Duration::from_secs(901);
    assert!(health.reasons(after_the_park, everyone).is_empty(), "the park is over");
    assert!(health.notices(after_the_park, everyone).is_empty(), "so is the shorter wait");

    health.wait("other", wait(120, false));
    let notices = health.notices(now, everyone);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].starts_with("destination other waits until ") && notices[0].contains("(another 120 s)"));
    assert!(health.notices(now, |name| name != "other").is_empty(), "only the destinations shown");
}
