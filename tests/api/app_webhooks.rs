//! Application-owned webhooks: a destination given as a channel (`DISCORD_CHANNEL_ID`, a routes
//! file's `channel_id`) gets the relay's own webhook, made with the bot token on first start and
//! reused after it; made again when someone deletes it (the message that met the deleted one is
//! delivered once); a bot without Manage Webhooks says so in `/readyz`. Its user-event messages
//! carry the "Act on a user…" menu, valid against Discord's schema; a plain webhook URL's carry
//! none, as before.

use serde_json::Value;

use crate::conformance::{discord_schema, violations};
use crate::fake_discord::{FakeDiscord, Request, APPLICATION_ID};
use crate::helpers::{batch_of, fixture, logs, poll_until, spawn_app_in, Options, TestApp, SECRET};

const CHANNEL: &str = "1100000000000000002";
const BOT_TOKEN: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GfAkE.bot-token-never-shown";
/// The Ed25519 public key of the tests' signing key `[7; 32]` (the bot needs one to run).
const PUBLIC_KEY: &str = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";

/// The bot's variables, with the API pointed at the fake.
pub fn bot_vars(options: Options, discord: &FakeDiscord) -> Options {
    options
        .var("DISCORD_PUBLIC_KEY", PUBLIC_KEY)
        .var("DISCORD_APPLICATION_ID", APPLICATION_ID)
        .var("DISCORD_BOT_TOKEN", BOT_TOKEN)
        .var("DISCORD_API_BASE", &discord.api_base())
}

/// A relay whose default destination is the relay's own webhook in [`CHANNEL`].
fn channel_options(discord: &FakeDiscord) -> Options {
    bot_vars(Options::new().var("WEBHOOK_SECRET", SECRET).var("DISCORD_CHANNEL_ID", CHANNEL), discord)
}

/// The real `user_limited` event of Marzban 0.8.4, about `username`.
pub fn limited(username: &str) -> String {
    let username = Value::from(username);
    batch_of("user_limited", 1, "", move |_, event| {
        event["username"] = username.clone();
        event["user"]["username"] = username.clone();
    })
}

async fn post_ok(app: &TestApp, body: String) {
    assert_eq!(app.post(body).await.status(), 200);
}

/// The executions the fake accepted, as sent (components included when Discord would drop them).
pub fn accepted(discord: &FakeDiscord) -> Vec<(Request, Value)> {
    let requests = discord.requests().into_iter().filter(|r| r.path.contains("/webhooks/") && r.status == 200);
    requests.map(|r| (r.clone(), serde_json::from_str(&r.body).unwrap())).collect()
}

async fn accepted_count(discord: &FakeDiscord, count: usize) -> Vec<(Request, Value)> {
    poll_until(&format!("{count} messages accepted"), || async {
        let accepted = accepted(discord);
        (accepted.len() >= count).then_some(accepted)
    })
    .await
}

/// The usernames a message's menu lists, and its `custom_id`.
pub fn menu_of(message: &Value) -> (String, Vec<String>) {
    let select = &message["components"][0]["components"][0];
    let options = select["options"].as_array().cloned().unwrap_or_default();
    let users = options.iter().map(|o| o["value"].as_str().unwrap().to_owned()).collect();
    (select["custom_id"].as_str().unwrap_or_default().to_owned(), users)
}

#[tokio::test]
async fn the_relay_makes_its_webhook_on_first_start_and_reuses_it_after_a_restart() {
    // Arrange
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), channel_options(&discord)).await;
    let created = poll_until("the webhook made at start", || async { discord.app_hooks().first().cloned() }).await;

    // Act: an event, a restart, another event.
    post_ok(&app, limited("alice")).await;
    accepted_count(&discord, 1).await;
    app.stop().await;
    let app = spawn_app_in(dir.path(), channel_options(&discord)).await;
    post_ok(&app, limited("bob")).await;
    let sent = accepted_count(&discord, 2).await;

    // Assert: one webhook, looked for then made once; both messages through it, with the menu.
    let calls: Vec<String> = discord.channel_calls().iter().map(|(method, path)| format!("{method} {path}")).collect();
    let path = format!("/channels/{CHANNEL}/webhooks");
    assert_eq!(calls, vec![format!("GET {path}"), format!("POST {path}")], "no second webhook after the restart");
    let schema = discord_schema();
    for ((request, body), user) in sent.iter().zip(["alice", "bob"]) {
        assert!(request.path.ends_with(&format!("/webhooks/{}/{}", created.id, created.token)), "{}", request.path);
        assert!(request.query.contains("with_components=true"), "{}", request.query);
        assert_eq!(menu_of(body), ("act:".to_owned(), vec![user.to_owned()]), "{body}");
        assert_eq!(body["components"][0]["components"][0]["placeholder"], "Act on a user…");
        assert_eq!(violations(&schema, body), Vec::<String>::new(), "{body}");
    }
    assert_eq!(discord.messages_to(created.id).len(), 2, "Discord kept both, menus and all");
    assert!(discord.messages_to(created.id).iter().all(|m| m["components"].is_array()));
    let logged = logs().join("\n");
    assert!(!logged.contains(&created.token) && !logged.contains(BOT_TOKEN), "a token was logged");
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_webhook_is_made_again_and_the_message_that_met_it_is_delivered_once() {
    // Arrange: the relay's webhook delivered one message, then a server admin deleted it.
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), channel_options(&discord)).await;
    post_ok(&app, limited("alice")).await;
    accepted_count(&discord, 1).await;
    let first = discord.app_hooks()[0].clone();
    discord.delete_app_hook(first.id);

    // Act
    post_ok(&app, limited("bob")).await;
    accepted_count(&discord, 2).await;
    app.wait_until_settled().await;

    // Assert: a new webhook took bob's message, once; the deleted one answered 404 to it.
    let hooks = discord.app_hooks();
    assert_eq!(hooks.len(), 2, "{hooks:?}");
    assert_eq!(discord.messages_to(hooks[1].id).len(), 1);
    let bobs: Vec<Value> = discord.messages().into_iter().filter(|m| menu_of(m).1 == ["bob"]).collect();
    assert_eq!(bobs.len(), 1, "bob's message was delivered exactly once");
    assert_eq!(discord.count_status(404), 1);
    // The next start uses the new webhook.
    app.stop().await;
    let app = spawn_app_in(dir.path(), channel_options(&discord)).await;
    post_ok(&app, limited("carol")).await;
    accepted_count(&discord, 3).await;
    assert_eq!(discord.messages_to(hooks[1].id).len(), 2);
    assert_eq!(discord.app_hooks().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_lost_outbox_finds_the_relays_webhook_instead_of_making_another() {
    let discord = FakeDiscord::start().await;
    let first_dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(first_dir.path(), channel_options(&discord)).await;
    post_ok(&app, limited("alice")).await;
    accepted_count(&discord, 1).await;
    app.stop().await;

    // A new data folder: the outbox that held the webhook is gone.
    let second_dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(second_dir.path(), channel_options(&discord)).await;
    post_ok(&app, limited("bob")).await;
    accepted_count(&discord, 2).await;

    let hooks = discord.app_hooks();
    assert_eq!(hooks.len(), 1, "Discord's list gave the relay its webhook back: {hooks:?}");
    assert_eq!(discord.messages_to(hooks[0].id).len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn a_bot_without_manage_webhooks_is_named_in_readyz_and_keeps_the_events() {
    let discord = FakeDiscord::start().await;
    discord.forbid_webhooks(true);
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), channel_options(&discord)).await;

    let reason = poll_until("/readyz naming the permission", || async {
        let response = app.get("/readyz").await;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        (status == 503 && body.contains("Manage Webhooks")).then_some(body)
    })
    .await;
    assert!(reason.contains(CHANNEL), "{reason}");
    assert!(logs().iter().any(|line| line.contains("Manage Webhooks") && line.contains(CHANNEL)));
    post_ok(&app, limited("alice")).await;
    assert_eq!(app.pending_rows().await, 1.0, "the event waits in the outbox");
    assert!(accepted(&discord).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_plain_webhook_url_sends_no_components_as_before() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), bot_vars(Options::delivering_to(&discord), &discord)).await;
    post_ok(&app, fixture("marzban-0.8.4/user_limited.json")).await;
    let sent = accepted_count(&discord, 1).await;
    let (request, body) = &sent[0];
    assert!(body.get("components").is_none(), "{body}");
    assert!(!request.query.contains("with_components"), "{}", request.query);
    assert!(discord.channel_calls().is_empty(), "no webhook is made for a URL");
    app.stop().await;
}

#[tokio::test]
async fn a_digest_lists_its_users_and_a_forum_channel_works_the_same_way() {
    // Arrange: the relay's channel is a forum; a burst of 30 expiries arrives at once.
    let discord = FakeDiscord::start().await;
    discord.make_forum_channel(CHANNEL.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let options =
        channel_options(&discord).var("DISCORD_FORUM", "true").var("DIGEST_THRESHOLD", "5").var("DIGEST_WINDOW", "0");
    let app = spawn_app_in(dir.path(), options).await;

    // Act
    post_ok(&app, batch_of("user_expired", 30, "user", |_, _| {})).await;
    app.wait_until_settled().await;

    // Assert: digests in a post of the day, each with a menu of (at most 25 of) its users.
    let schema = discord_schema();
    let sent = accepted(&discord);
    assert!(!sent.is_empty());
    let mut listed = Vec::new();
    for (_, body) in &sent {
        let menus = body["components"].as_array().unwrap();
        for (page, menu) in menus.iter().enumerate() {
            let select = &menu["components"][0];
            let expected = if page == 0 { "act:".to_owned() } else { format!("act::{}", page + 1) };
            assert_eq!(select["custom_id"], expected.as_str(), "{body}");
            let options = select["options"].as_array().unwrap();
            assert!((1..=25).contains(&options.len()), "{body}");
            listed.extend(options.iter().map(|o| o["value"].as_str().unwrap().to_owned()));
        }
        assert_eq!(violations(&schema, body), Vec::<String>::new(), "{body}");
    }
    let count = listed.len();
    listed.sort();
    listed.dedup();
    assert_eq!((listed.len(), count), (30, 30), "every user of the burst is listed once: {listed:?}");
    assert!(!discord.threads().is_empty(), "the digests went into a forum post");
    app.stop().await;
}

#[tokio::test]
async fn a_routes_file_destination_given_as_a_channel_gets_its_own_webhook_and_the_menu() {
    // Arrange: the audit log is a webhook a person made; the alerts go to a channel.
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    let alerts = "1100000000000000077";
    std::fs::write(
        &routes,
        format!(
            "[destinations.audit]\nurl = \"{}\"\n\n[destinations.alerts]\nchannel_id = \"{alerts}\"\n\n\
             [[rules]]\nto = [\"audit\"]\n\n[[rules]]\nactions = [\"user_limited\"]\nto = [\"alerts\"]\n",
            discord.webhook_url()
        ),
    )
    .unwrap();
    let options =
        bot_vars(Options::new().var("WEBHOOK_SECRET", SECRET), &discord).var("ROUTES_FILE", routes.to_str().unwrap());
    let app = spawn_app_in(dir.path(), options).await;

    // Act
    post_ok(&app, limited("alice")).await;
    let sent = accepted_count(&discord, 2).await;

    // Assert: the channel's message came through the relay's webhook with the menu; the audit
    // log's, through the person's webhook, without one.
    let hooks = discord.app_hooks();
    assert_eq!(hooks.iter().map(|hook| hook.channel.to_string()).collect::<Vec<_>>(), vec![alerts.to_owned()]);
    let to_alerts: Vec<&Value> =
        sent.iter().filter(|(request, _)| request.path.contains(&hooks[0].id.to_string())).map(|(_, b)| b).collect();
    assert_eq!(to_alerts.len(), 1);
    assert_eq!(menu_of(to_alerts[0]).1, vec!["alice".to_owned()]);
    let audit = format!("/webhooks/{}/", crate::fake_discord::WEBHOOK_ID);
    let to_audit: Vec<&Value> =
        sent.iter().filter(|(request, _)| request.path.contains(&audit)).map(|(_, b)| b).collect();
    assert_eq!(to_audit.len(), 1, "as sent, not as Discord kept it");
    assert!(to_audit[0].get("components").is_none(), "{}", to_audit[0]);
    app.stop().await;
}

/// A routes file with two destinations in one channel, each in a thread of its own.
fn two_threads_of_one_channel(discord: &FakeDiscord, dir: &std::path::Path) -> Options {
    let routes = dir.join("routes.toml");
    std::fs::write(
        &routes,
        format!(
            "[destinations.alerts]\nchannel_id = \"{CHANNEL}\"\nthread_id = \"1100000000000000011\"\n\n\
             [destinations.audit]\nchannel_id = \"{CHANNEL}\"\nthread_id = \"1100000000000000012\"\n\n\
             [[rules]]\nto = [\"alerts\", \"audit\"]\n"
        ),
    )
    .unwrap();
    bot_vars(Options::new().var("WEBHOOK_SECRET", SECRET), discord).var("ROUTES_FILE", routes.to_str().unwrap())
}

#[tokio::test]
async fn two_destinations_in_one_channel_share_one_webhook_made_once_and_replaced_once() {
    // Arrange: two threads of one channel, both delivered at once from the first start.
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), two_threads_of_one_channel(&discord, dir.path())).await;
    post_ok(&app, limited("alice")).await;
    accepted_count(&discord, 2).await;
    let made_at_start = discord.app_hooks();

    // Act: a server admin deletes the webhook; the next event meets it deleted in both threads.
    discord.delete_app_hook(made_at_start[0].id);
    post_ok(&app, limited("bob")).await;
    accepted_count(&discord, 4).await;
    app.wait_until_settled().await;

    // Assert: one webhook at start, one in place of the deleted one; every message once.
    assert_eq!(made_at_start.len(), 1, "the two tasks made a webhook each: {made_at_start:?}");
    let hooks = discord.app_hooks();
    assert_eq!(hooks.len(), 2, "one new webhook, not one per destination: {hooks:?}");
    let bobs = discord.messages().into_iter().filter(|m| menu_of(m).1 == ["bob"]).count();
    assert_eq!(bobs, 2, "bob's event once in each thread");
    app.stop().await;
}

#[tokio::test]
async fn busy_or_failing_discord_while_making_the_webhook_delays_the_event_and_makes_one_webhook() {
    // Arrange: the list fails once (503), the making is rate limited once (429, 0.3 s), then made
    // by Discord but answered 500 (the answer lost), then the list shows the webhook made.
    let discord = FakeDiscord::start().await;
    let scripted = |method, status, made| crate::fake_discord::Scripted { method, status, made };
    discord.script_channel_calls([
        scripted("GET", 503, false),
        scripted("POST", 429, false),
        scripted("POST", 500, true),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), channel_options(&discord)).await;

    // Act
    post_ok(&app, limited("alice")).await;
    let sent = accepted_count(&discord, 1).await;
    app.wait_until_settled().await;

    // Assert: one webhook (the one whose answer was lost, found in the list), the event once.
    let hooks = discord.app_hooks();
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!((sent.len(), discord.messages_to(hooks[0].id).len()), (1, 1));
    let posts = discord.channel_calls().iter().filter(|(method, _)| method == "POST").count();
    assert_eq!(posts, 2, "made again only after the 429, never after the lost answer");
    app.stop().await;
}

#[tokio::test]
async fn a_rate_limited_replacement_waits_discords_delay_instead_of_counting_a_failed_delivery() {
    // Arrange: the relay's webhook delivered one message, then was deleted; Discord then answers
    // the making of the next one 429 once.
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), channel_options(&discord)).await;
    post_ok(&app, limited("alice")).await;
    accepted_count(&discord, 1).await;
    discord.delete_app_hook(discord.app_hooks()[0].id);
    discord.script_channel_calls([crate::fake_discord::Scripted { method: "POST", status: 429, made: false }]);

    // Act
    post_ok(&app, limited("bob")).await;
    accepted_count(&discord, 2).await;
    app.wait_until_settled().await;

    // Assert: a 429 waited out, no failed attempt counted; bob's message once, through one new webhook.
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"relay_rate_limited_total{destination="default",scope="user"} 1"#), "{metrics}");
    assert!(!metrics.contains(r#"relay_retries_total{destination="default"} 1"#), "{metrics}");
    assert_eq!(discord.app_hooks().len(), 2);
    assert_eq!(discord.messages().into_iter().filter(|m| menu_of(m).1 == ["bob"]).count(), 1);
    app.stop().await;
}
