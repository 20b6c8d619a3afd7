//! Forum mode: a destination whose webhook belongs to a forum channel gives each user a post of
//! their own, made by their first event and holding all the later ones, across restarts; a post
//! Discord deleted or locked is made again; a burst goes into one post of the day's digests.

use serde_json::Value;

use crate::fake_discord::{FakeDiscord, Thread, WEBHOOK_ID};
use crate::helpers::{batch_of, poll_until, spawn_app_in, Options, TestApp};

const EXPIRED_TAG: &str = "123456789012345678";
const CREATED_TAG: &str = "223456789012345678";
const DIGEST_TAG: &str = "323456789012345678";

/// A relay whose default destination is the fake's forum webhook, with tags by action.
fn forum_options(discord: &FakeDiscord) -> Options {
    discord.forum_webhook_url(WEBHOOK_ID);
    Options::delivering_to(discord).var("DISCORD_FORUM", "true").var(
        "DISCORD_FORUM_TAGS",
        &format!("user_created:{CREATED_TAG},user_expired:{EXPIRED_TAG},digest:{DIGEST_TAG}"),
    )
}

/// One event of the Marzban fixture `action` about `username`, as a request body.
fn event(action: &str, username: &str) -> String {
    let username = Value::from(username);
    batch_of(action, 1, "", move |_, event| {
        event["username"] = username.clone();
        if event["user"].is_object() {
            event["user"]["username"] = username.clone();
        }
    })
}

/// How many messages `thread` holds.
fn messages_in(thread: &Thread) -> usize {
    thread.messages.len()
}

/// Waits until the fake's posts hold `messages` messages in all, then returns the posts.
async fn threads_holding(discord: &FakeDiscord, messages: usize) -> Vec<Thread> {
    poll_until(&format!("{messages} messages in posts"), || async {
        let threads = discord.threads();
        (threads.iter().map(messages_in).sum::<usize>() >= messages).then_some(threads)
    })
    .await
}

async fn post_ok(app: &TestApp, body: String) {
    assert_eq!(app.post(body).await.status(), 200);
}

#[tokio::test]
async fn a_users_first_event_makes_their_post_and_later_events_go_into_it_across_a_restart() {
    // Arrange
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), forum_options(&discord)).await;

    // Act: alice is created; once that is in Discord, she expires; then the relay restarts.
    post_ok(&app, event("user_created", "alice")).await;
    let first = threads_holding(&discord, 1).await;
    post_ok(&app, event("user_expired", "alice")).await;
    threads_holding(&discord, 2).await;
    app.stop().await;
    let app = spawn_app_in(dir.path(), forum_options(&discord)).await;
    post_ok(&app, event("user_limited", "alice")).await;
    post_ok(&app, event("user_created", "bob")).await;

    // Assert
    let threads = threads_holding(&discord, 4).await;
    assert_eq!(threads.len(), 2, "one post for alice, one for bob: {threads:#?}");
    let (alice, bob) = (&threads[0], &threads[1]);
    assert_eq!(alice.id, first[0].id);
    assert_eq!((alice.name.as_str(), bob.name.as_str()), ("alice", "bob"));
    assert_eq!(alice.applied_tags, [CREATED_TAG], "the tags of the action that made the post");
    assert_eq!(messages_in(alice), 3, "created, expired and, after the restart, limited");
    let requests = discord.requests();
    let into_alice = format!("thread_id={}", alice.id);
    let appended: Vec<&str> =
        requests.iter().filter(|r| r.query.contains(&into_alice)).map(|r| r.body.as_str()).collect();
    assert_eq!(appended.len(), 2);
    assert!(appended.iter().all(|body| !body.contains("thread_name")), "a later event names no new post");
    assert!(requests.iter().all(|r| r.status == 200 && r.query.contains("wait=true")), "{requests:#?}");
    app.stop().await;
}

/// Makes alice's post, has the fake `spoil` it, sends two more events, and returns the posts.
async fn after_the_post_is(spoil: impl Fn(&FakeDiscord, u64)) -> Vec<Thread> {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), forum_options(&discord)).await;
    post_ok(&app, event("user_created", "alice")).await;
    let first = threads_holding(&discord, 1).await;
    spoil(&discord, first[0].id);
    post_ok(&app, event("user_expired", "alice")).await;
    threads_holding(&discord, 2).await;
    post_ok(&app, event("user_limited", "alice")).await;
    let threads = threads_holding(&discord, 3).await;
    app.stop().await;
    threads
}

#[tokio::test]
async fn a_deleted_post_is_made_again_and_the_new_one_is_remembered() {
    let threads = after_the_post_is(FakeDiscord::delete_thread).await;
    assert_eq!(threads.len(), 2, "{threads:#?}");
    assert_eq!(threads[1].name, "alice");
    assert_eq!(threads[1].applied_tags, [EXPIRED_TAG], "made again by the expiry, with its tags");
    assert_eq!(messages_in(&threads[1]), 2, "the expiry and the next event, in the new post");
}

#[tokio::test]
async fn a_locked_post_is_made_again_and_the_new_one_is_remembered() {
    let threads = after_the_post_is(FakeDiscord::lock_thread).await;
    assert_eq!(threads.len(), 2, "{threads:#?}");
    assert_eq!((messages_in(&threads[0]), messages_in(&threads[1])), (1, 2));
}

#[tokio::test]
async fn the_same_username_on_two_panels_gets_two_posts_named_after_their_panels() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), forum_options(&discord).var("PANELS", "eu:secret-of-eu,us:secret-of-us")).await;

    let sent = [
        ("eu", "secret-of-eu", "user_created"),
        ("us", "secret-of-us", "user_created"),
        ("eu", "secret-of-eu", "user_updated"),
    ];
    for (panel, secret, action) in sent {
        let response = app.post_to(&format!("/webhook/{panel}"), event(action, "alice"), Some(secret)).await;
        assert_eq!(response.status(), 200);
        threads_holding(&discord, 1).await;
    }

    let threads = threads_holding(&discord, 3).await;
    let names: Vec<&str> = threads.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["alice · eu", "alice · us"]);
    assert_eq!(threads.iter().map(messages_in).collect::<Vec<_>>(), [2, 1]);
    app.stop().await;
}

#[tokio::test]
async fn a_username_reused_after_user_deleted_gets_a_fresh_post() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), forum_options(&discord)).await;

    // All in one request: the deletion ends the first alice's post even when they arrive together.
    let events: Vec<Value> = ["user_created", "user_deleted", "user_created"]
        .iter()
        .flat_map(|action| serde_json::from_str::<Vec<Value>>(&event(action, "alice")).unwrap())
        .collect();
    post_ok(&app, serde_json::to_string(&events).unwrap()).await;

    let threads = threads_holding(&discord, 2).await;
    assert_eq!(threads.len(), 2, "{threads:#?}");
    let embeds =
        |thread: &Thread| -> usize { thread.messages.iter().map(|m| m["embeds"].as_array().map_or(0, Vec::len)).sum() };
    assert_eq!((embeds(&threads[0]), embeds(&threads[1])), (2, 1), "created + deleted, then the new alice");
    app.stop().await;
}

#[tokio::test]
async fn a_burst_of_1000_goes_into_the_days_digest_post_in_at_most_20_requests() {
    // Arrange
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), forum_options(&discord).var("DIGEST_WINDOW", "1s")).await;

    // Act: a midnight expiry of 1,000 users, 50 per request as PasarGuard sends them.
    let day_before = time::OffsetDateTime::now_utc().date();
    for request in 0..20 {
        post_ok(&app, batch_of("user_expired", 50, &format!("expired_{request}_"), |_, _| {})).await;
    }

    // Assert
    app.wait_until_settled().await;
    let threads = discord.threads();
    // The UTC day the burst began: the day before or after the requests (the test may span midnight).
    let day_after = time::OffsetDateTime::now_utc().date();
    assert_eq!(
        threads.len(),
        1,
        "one digest post, no post per user: {:?}",
        threads.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    let days = [format!("📋 Digest {day_before}"), format!("📋 Digest {day_after}")];
    assert!(days.contains(&threads[0].name), "{}", threads[0].name);
    assert_eq!(threads[0].applied_tags, [DIGEST_TAG]);
    let listed: usize = threads[0]
        .messages
        .iter()
        .flat_map(|m| m["embeds"].as_array().cloned().unwrap_or_default())
        .map(|e| e["description"].as_str().unwrap_or_default().split(", ").count())
        .sum();
    assert_eq!(listed, 1000, "every user listed");
    let requests = discord.requests().len();
    eprintln!("a 1,000-event burst in forum mode took {requests} requests");
    assert!(requests <= 20, "{requests} requests");
    app.stop().await;
}

#[tokio::test]
async fn a_forum_webhook_without_forum_mode_pauses_with_a_hint_instead_of_dropping_messages() {
    let discord = FakeDiscord::start().await;
    discord.forum_webhook_url(WEBHOOK_ID);
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;

    post_ok(&app, event("user_created", "alice")).await;

    let ready = poll_until("a paused destination in /readyz", || async {
        let text = app.get("/readyz").await.text().await.unwrap();
        text.contains("forum").then_some(text)
    })
    .await;
    assert!(ready.contains("DISCORD_FORUM=true"), "{ready}");
    assert_eq!(app.pending_rows().await, 1.0, "the row is kept, not a dead letter");
    app.stop().await;
}

#[tokio::test]
async fn send_test_makes_a_post_of_its_own_and_render_shows_the_title_a_post_would_get() {
    let discord = FakeDiscord::start().await;
    let url = discord.forum_webhook_url(WEBHOOK_ID);
    let vars = vec![
        ("DISCORD_WEBHOOK_URL", url),
        ("WEBHOOK_SECRET", "s".to_owned()),
        ("DISCORD_FORUM", "true".to_owned()),
        ("DISCORD_FORUM_TAGS", format!("user_limited:{EXPIRED_TAG}")),
    ];
    let run = move |args: &'static [&'static str]| {
        let vars = vars.clone();
        tokio::task::spawn_blocking(move || {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            crate::cli::relay(args, &vars)
        })
    };

    let sent = run(&["send-test"]).await.unwrap();
    let stdout = String::from_utf8_lossy(&sent.stdout).into_owned();
    assert_eq!(sent.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("in a new forum post \"alice\""), "{stdout}");
    assert_eq!(discord.threads().iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["alice"]);

    let rendered = run(&["render", "--action", "user_limited"]).await.unwrap();
    let stderr = String::from_utf8_lossy(&rendered.stderr);
    assert_eq!(rendered.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("creates the forum post \"dave\""), "{stderr}");
    let body = crate::cli::rendered_one(&rendered.stdout);
    assert_eq!(
        (body["thread_name"].as_str(), &body["applied_tags"]),
        (Some("dave"), &serde_json::json!([EXPIRED_TAG]))
    );
}

#[tokio::test]
async fn a_stop_while_a_post_is_being_made_waits_for_it_and_remembers_it() {
    // Arrange: Discord takes a second and a half to make each post; the relay's stop gives the
    // request in flight more than that, as its default gives more than a request may take.
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let grace = |config: &mut marzban_discord_relay::config::Config| {
        config.delivery.shutdown_grace = std::time::Duration::from_secs(10);
    };
    let app = spawn_app_in(dir.path(), forum_options(&discord).tweak(grace)).await;
    discord.set_delay(std::time::Duration::from_millis(1500));

    // Act: the relay is stopped while alice's post is being made, then started again.
    post_ok(&app, event("user_created", "alice")).await;
    poll_until("the post's request arrived", || async { (discord.arrived() == 1).then_some(()) }).await;
    app.stop().await;
    discord.set_delay(std::time::Duration::ZERO);
    let app = spawn_app_in(dir.path(), forum_options(&discord)).await;
    post_ok(&app, event("user_expired", "alice")).await;

    // Assert: the stop waited for the answer and kept the post's id, so alice has one post.
    threads_holding(&discord, 2).await;
    let threads = poll_until("every request that arrived is answered", || async {
        (discord.requests().len() == discord.arrived()).then(|| discord.threads())
    })
    .await;
    assert_eq!(threads.len(), 1, "one post for alice: {threads:#?}");
    assert_eq!(messages_in(&threads[0]), 2);
    app.stop().await;
}
