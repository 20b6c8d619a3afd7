//! The conformance guard: every request body the relay sends is valid against Discord's published
//! schema for Execute Webhook (`tests/fixtures/discord-webhook-request.schema.json`, extracted
//! unchanged from Discord's OpenAPI spec), in every built-in language, for every real payload, for
//! digests, and with a routes file that sets mentions, a thread, a display name and an avatar, and a
//! forum destination (post titles, tags, messages into known posts).
//!
//! The bodies are the ones the fake Discord receives, so they come from the real pipeline
//! (render, route, store, pack, send), not from a copy of it; and, for the samples `check` and
//! `send-test` use (stressed past every limit, and digests), the library's own message builder.

use std::time::Duration;

use jsonschema::{Draft, Validator};
use marzban_discord_relay::deliver::{build_message, next_message};
use marzban_discord_relay::render::{limits, report, samples, Lang, Part, Renderer};
use marzban_discord_relay::routing::{Destination, Mentions, Target};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::fake_discord::{FakeDiscord, Limits, Request};
use crate::helpers::{batch_of, every_capture, fixture, spawn_app_in, Options, TestApp};

const WAIT: Duration = Duration::from_secs(30);
const DISPLAY_WEBHOOK: u64 = 200;
const THREAD_WEBHOOK: u64 = 300;
const THREAD_ID: &str = "222222222222222222";
const FORUM_WEBHOOK: u64 = 400;
const FORUM_TAG: &str = "777777777777777777";

/// Discord's schema, as its `about` says to use it: JSON Schema 2020-12, formats (`uri`,
/// `date-time`) checked too.
pub fn discord_schema() -> Validator {
    let file: Value = serde_json::from_str(&fixture("discord-webhook-request.schema.json")).unwrap();
    let schema = json!({
        "$ref": "#/components/schemas/IncomingWebhookRequestPartial",
        "components": file["components"],
    });
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .expect("Discord's schema compiles")
}

/// Where `body` breaks the schema, one line per problem.
pub fn violations(schema: &Validator, body: &Value) -> Vec<String> {
    schema
        .iter_errors(body)
        .map(|error| format!("{}: …{}", error.instance_path(), tail(&error.to_string(), 300)))
        .collect()
}

/// The last `n` characters of `text` (a schema error quotes the whole value before saying what is
/// wrong with it).
fn tail(text: &str, n: usize) -> &str {
    let start = text.char_indices().rev().nth(n.saturating_sub(1)).map_or(0, |(at, _)| at);
    &text[start..]
}

#[test]
fn the_schema_refuses_what_discord_refuses() {
    let schema = discord_schema();
    let embed = json!({"title": "t", "timestamp": "2026-11-27T18:00:00Z", "fields": [{"name": "n", "value": "v"}]});
    let valid = json!({
        "content": "<@&1>",
        "embeds": vec![embed.clone(); 10],
        "allowed_mentions": {"parse": [], "roles": ["1"]},
        "username": "Relay",
        "avatar_url": "https://example.com/a.png",
    });
    assert_eq!(violations(&schema, &valid), Vec::<String>::new());

    let broken = [
        ("11 embeds", json!({"embeds": vec![embed.clone(); 11]})),
        ("a 257-character title", json!({"embeds": [{"title": "x".repeat(257)}]})),
        ("a 4097-character description", json!({"embeds": [{"description": "ü".repeat(4097)}]})),
        ("26 fields", json!({"embeds": [{"fields": vec![json!({"name": "n", "value": "v"}); 26]}]})),
        ("a field without a value", json!({"embeds": [{"fields": [{"name": "n"}]}]})),
        ("a colour above 0xFFFFFF", json!({"embeds": [{"color": 0x100_0000}]})),
        ("a timestamp that is not one", json!({"embeds": [{"timestamp": "yesterday"}]})),
        ("an avatar URL that is not one", json!({"embeds": [embed.clone()], "avatar_url": "not a url"})),
        ("an empty display name", json!({"embeds": [embed.clone()], "username": ""})),
        ("2001 characters of content", json!({"content": "x".repeat(2001)})),
        ("a role that is not a snowflake", json!({"content": "x", "allowed_mentions": {"roles": ["@everyone"]}})),
        ("an unknown mention type", json!({"content": "x", "allowed_mentions": {"parse": ["channels"]}})),
        ("a 101-character post title", json!({"content": "x", "thread_name": "ü".repeat(101)})),
        ("6 tags on a post", json!({"content": "x", "thread_name": "t", "applied_tags": vec!["1"; 6]})),
        ("a tag that is not a snowflake", json!({"content": "x", "thread_name": "t", "applied_tags": ["expired"]})),
    ];
    for (what, body) in broken {
        assert!(!violations(&schema, &body).is_empty(), "the schema accepts {what}");
    }
}

#[test]
fn every_sample_that_check_and_send_test_render_matches_discords_schema() {
    let schema = discord_schema();
    let now = OffsetDateTime::now_utc();
    let display = Destination {
        thread_id: Some(1),
        username: Some("Relay · eu-1".into()),
        avatar_url: Some("https://cdn.example.com/avatars/relay.png".into()),
        ..Destination::new("display", Target::DryRun)
    };
    let mentions = Mentions { roles: [444].into(), users: [555].into() };
    let mut actions = samples::actions();
    actions.push("default".into());
    for &lang in Lang::ALL {
        let renderer = Renderer::builtin(lang);
        let mut parts: Vec<Part> = Vec::new();
        for action in &actions {
            let event = samples::event_for(action, now).unwrap();
            parts.push(renderer.render(&event));
            parts.push(renderer.render(&samples::stressed(&event)));
            parts.extend(samples::digests(action, now).iter().map(|digest| renderer.render_digest(digest)));
        }
        for kind in ["daily", "weekly"] {
            let reports = report::samples(kind, now.unix_timestamp());
            parts.extend(reports.iter().flatten().map(|context| renderer.render_report(context)));
        }
        // One by one, as send-test posts them.
        for part in &parts {
            let body = serde_json::to_value(build_message([part], &Mentions::default(), &display)).unwrap();
            assert_eq!(violations(&schema, &body), Vec::<String>::new(), "{lang}: {body:#}");
        }
        // Packed with mentions, as delivery sends them.
        let queue: Vec<(&Part, &Mentions)> = parts.iter().map(|part| (part, &mentions)).collect();
        let mut rest = queue.as_slice();
        while !rest.is_empty() {
            let (count, mentions) = next_message(rest, limits::EMBEDS_PER_MESSAGE);
            let message = build_message(rest[..count].iter().map(|(part, _)| *part), &mentions, &display);
            let body = serde_json::to_value(message).unwrap();
            assert_eq!(violations(&schema, &body), Vec::<String>::new(), "{lang}: {body:#}");
            rest = &rest[count..];
        }
    }
}

#[tokio::test]
async fn every_body_the_relay_sends_matches_discords_schema() {
    let schema = discord_schema();
    for lang in ["en", "ru", "fa", "zh"] {
        let requests = send_everything(lang).await;
        assert!(requests.len() >= 10, "{lang}: only {} requests", requests.len());
        for request in &requests {
            let body: Value = serde_json::from_str(&request.body)
                .unwrap_or_else(|err| panic!("{lang} {}: not JSON ({err}): {}", request.path, request.body));
            let problems = violations(&schema, &body);
            assert!(problems.is_empty(), "{lang} {}: {problems:#?}\n{body:#}", request.path);
        }
        assert_covers_every_feature(lang, &requests);
    }
}

/// Runs a relay in `lang` with four destinations (plain, display name and avatar, thread, forum) and
/// mentions, feeds it every fixture, an unknown action, a note past every limit and two bursts
/// above `DIGEST_THRESHOLD`, and returns every request the fake Discord received.
async fn send_everything(lang: &str) -> Vec<Request> {
    let limits = Limits { bucket_requests: 10_000, bucket_window: Duration::from_secs(1), channel: None };
    let discord = FakeDiscord::start_with(limits).await;
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(&routes, routes_file(&discord)).unwrap();
    let options = Options::delivering_to(&discord)
        .var("TEMPLATE_LANG", lang)
        .var("PANEL_NAME", "eu-1")
        .var("ROUTES_FILE", routes.to_str().unwrap())
        .var("DIGEST_THRESHOLD", "5")
        .var("CHANNEL_RATE_LIMIT", "0");
    let app = spawn_app_in(dir.path(), options).await;

    // Every fixture in one batch, as Marzban sends its queue, so that messages are packed full.
    let fixtures: Vec<String> = every_capture().into_iter().map(|(_, body)| body).collect();
    let events: Vec<Value> = fixtures.iter().flat_map(|body| as_array(serde_json::from_str(body).unwrap())).collect();
    let mut bodies = vec![serde_json::to_string(&events).unwrap()];
    bodies.push(batch_of("user_created", 1, "unknown_action_", |_, event| event["action"] = json!("user_archived")));
    // Past every limit a panel's text can reach: a long name in the title, a long note.
    bodies.push(batch_of("user_created", 1, "long_", |_, event| {
        event["username"] = json!("ü_".repeat(200));
        event["user"]["note"] = json!("**یادداشت** 📝 ".repeat(600));
    }));
    bodies.push(batch_of("user_expired", 400, "burst_user_with_a_long_name_", |_, _| {}));
    bodies.push(batch_of("user_created", 12, "burst_unknown_", |_, event| event["action"] = json!("user_archived")));
    for body in bodies {
        assert_eq!(app.post(body).await.status(), 200, "{lang}");
    }
    wait_until_nothing_is_pending(&app, lang).await;
    // Alone, so that it is no digest's member: a forum post's title past 100 characters.
    let long = batch_of("user_limited", 1, "", |_, event| event["username"] = json!("ö_".repeat(200)));
    assert_eq!(app.post(long).await.status(), 200, "{lang}");
    wait_until_nothing_is_pending(&app, lang).await;
    let requests = discord.requests();
    app.stop().await;
    requests
}

/// The events of a webhook body (an array, or one event).
fn as_array(body: Value) -> Vec<Value> {
    match body {
        Value::Array(events) => events,
        event => vec![event],
    }
}

/// Every rule sends to its destinations with mentions; `default` gets everything plainly.
fn routes_file(discord: &FakeDiscord) -> String {
    format!(
        r#"
[destinations.display]
url = "{display}"
username = "Relay · eu-1 ✅"
avatar_url = "https://cdn.example.com/avatars/relay.png"

[destinations.thread]
url = "{thread}"
thread_id = "{THREAD_ID}"

[destinations.forum]
url = "{forum}"
forum = true
tags = {{ user_limited = ["{FORUM_TAG}", "777777777777777771", "777777777777777772", "777777777777777773", "777777777777777774", "{FORUM_TAG}"], user_expired = "{FORUM_TAG}", digest = "{FORUM_TAG}" }}

[[rules]]
to = ["default"]

[[rules]]
to = ["display", "thread"]
mention_roles = ["444444444444444444"]
mention_users = ["555555555555555555"]

[[rules]]
actions = ["user_expired", "user_limited"]
to = ["thread"]
mention_roles = ["666666666666666666"]

[[rules]]
to = ["forum"]
mention_roles = ["444444444444444444"]
"#,
        display = discord.webhook_url_for(DISPLAY_WEBHOOK),
        thread = discord.webhook_url_for(THREAD_WEBHOOK),
        forum = discord.forum_webhook_url(FORUM_WEBHOOK),
    )
}

/// Waits until the relay reports no pending row for any destination.
async fn wait_until_nothing_is_pending(app: &TestApp, lang: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let metrics = app.get("/metrics").await.text().await.unwrap();
        let pending: Vec<f64> = metrics
            .lines()
            .filter(|line| line.starts_with("relay_pending_rows{"))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse().ok())
            .collect();
        if pending.len() == 4 && pending.iter().all(|rows| *rows == 0.0) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{lang}: rows still pending after {WAIT:?}: {pending:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The run exercised what it claims to: display name and avatar, thread, mentions, packing,
/// digests, clamping; and Discord took every request.
fn assert_covers_every_feature(lang: &str, requests: &[Request]) {
    let to = |id: u64| -> Vec<(&Request, Value)> {
        let path = format!("/api/webhooks/{id}/");
        requests
            .iter()
            .filter(|r| r.path.starts_with(&path))
            .map(|r| (r, serde_json::from_str(&r.body).unwrap()))
            .collect()
    };
    let refused: Vec<String> =
        requests.iter().filter(|r| r.status >= 300).map(|r| format!("{} {}", r.status, r.path)).collect();
    assert!(refused.is_empty(), "{lang}: Discord refused {refused:?}");

    let plain = to(crate::fake_discord::WEBHOOK_ID);
    assert!(!plain.is_empty() && plain.iter().all(|(_, body)| body.get("username").is_none()), "{lang}: default");
    let display = to(DISPLAY_WEBHOOK);
    assert!(!display.is_empty(), "{lang}: nothing sent to the display-name destination");
    for (_, body) in &display {
        assert_eq!(body["username"], "Relay · eu-1 ✅", "{lang}");
        assert_eq!(body["avatar_url"], "https://cdn.example.com/avatars/relay.png", "{lang}");
        assert!(body["content"].as_str().unwrap().contains("<@&444444444444444444>"), "{lang}: {body}");
        assert_eq!(body["allowed_mentions"]["users"], json!(["555555555555555555"]), "{lang}");
    }
    let thread = to(THREAD_WEBHOOK);
    assert!(thread.iter().all(|(r, _)| r.query.contains(&format!("thread_id={THREAD_ID}"))), "{lang}: thread");
    let both_roles = thread.iter().any(|(_, body)| {
        let roles = body["allowed_mentions"]["roles"].as_array().cloned().unwrap_or_default();
        roles.contains(&json!("444444444444444444")) && roles.contains(&json!("666666666666666666"))
    });
    assert!(both_roles, "{lang}: no message with the mentions of two rules");

    assert_covers_forum_mode(lang, &to(FORUM_WEBHOOK));

    let bodies: Vec<Value> = requests.iter().map(|r| serde_json::from_str(&r.body).unwrap()).collect();
    let embeds: Vec<&Value> = bodies.iter().flat_map(|body| body["embeds"].as_array().into_iter().flatten()).collect();
    let digests = embeds
        .iter()
        .filter(|e| e["title"].as_str().is_some_and(|t| t.trim_start_matches('\u{2067}').starts_with("📋")))
        .count();
    assert!(digests >= 3, "{lang}: {digests} digest embeds");
    let clamped =
        |key: &str, limit: usize| embeds.iter().any(|e| e[key].as_str().is_some_and(|t| t.chars().count() == limit));
    assert!(clamped("description", 4096), "{lang}: no description clamped");
    // The long name arrives cut to 64 characters at ingest, so its title stays far under 256.
    let titles = || embeds.iter().filter_map(|e| e["title"].as_str());
    assert!(titles().any(|t| t.contains("ü…")), "{lang}: no title with the long name, cut");
    assert!(titles().all(|t| t.chars().count() <= 256), "{lang}: a title over 256");
    let most = bodies.iter().filter_map(|body| body["embeds"].as_array().map(Vec::len)).max().unwrap_or(0);
    assert!(most > 2, "{lang}: at most {most} embeds in a message; the fixtures' batch packs more");
}

/// Forum mode's bodies: every one names its post, new posts carry a title of at most 100
/// characters (the long name's cut, as ingest cuts every name to 64) and up to 5 tags, and digests
/// went into a post of their own.
fn assert_covers_forum_mode(lang: &str, forum: &[(&Request, Value)]) {
    assert!(!forum.is_empty(), "{lang}: nothing sent to the forum");
    for (request, body) in forum {
        let names_post = body["thread_name"].is_string() != request.query.contains("thread_id=");
        assert!(names_post, "{lang}: exactly one of thread_name and thread_id: {} {body}", request.query);
    }
    let titles: Vec<&str> = forum.iter().filter_map(|(_, body)| body["thread_name"].as_str()).collect();
    let cut = titles.iter().any(|t| t.contains('…'));
    assert!(cut && titles.iter().all(|t| t.chars().count() <= 100), "{lang}: no cut name, or over 100: {titles:?}");
    let most_tags = forum.iter().filter_map(|(_, body)| body["applied_tags"].as_array().map(Vec::len)).max();
    assert_eq!(most_tags, Some(5), "{lang}");
    assert!(forum.iter().any(|(r, _)| r.query.contains("thread_id=")), "{lang}: no message into a known post");
}
