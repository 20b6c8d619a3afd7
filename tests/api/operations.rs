//! Routing and operations: the right channel for each event, several panels, secrets from files,
//! readiness, metrics, proxies.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::cli::relay;
use crate::fake_discord::{FakeDiscord, Reply, WEBHOOK_TOKEN};
use crate::helpers::{batch_of, fixture, logs, poll_until, spawn_app_in, Options, Process, SECRET};

const WAIT: Duration = Duration::from_secs(30);
const AUDIT: u64 = 100000000000000001;
const ALERTS: u64 = 100000000000000002;
const THREAD: u64 = 300000000000000003;
const ROLE: u64 = 400000000000000004;
const USER: u64 = 500000000000000005;

fn titles(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| m["embeds"].as_array().cloned().unwrap_or_default())
        .map(|e| e["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn write_routes(dir: &std::path::Path, discord: &FakeDiscord) -> String {
    let routes = format!(
        r#"
mute = ["user_updated"]

[destinations.audit]
url = "{audit}"

[destinations.alerts]
url = "{alerts}"
thread_id = "{THREAD}"
username = "Panel alerts"

[[rules]]
to = ["audit"]

[[rules]]
actions = ["user_limited", "user_expired"]
to = ["alerts"]
mention_roles = ["{ROLE}"]

[[rules]]
actions = ["reached_usage_percent"]
min_used_percent = 90
to = ["alerts"]
mention_users = ["{USER}"]
"#,
        audit = discord.webhook_url_for(AUDIT),
        alerts = discord.webhook_url_for(ALERTS),
    );
    let path = dir.join("routes.toml");
    std::fs::write(&path, routes).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn routes_by_action_and_condition_with_exactly_the_configured_mentions() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let routes = write_routes(dir.path(), &discord);
    let options = Options::new().var("WEBHOOK_SECRET", SECRET).var("ROUTES_FILE", &routes).var("DIGEST_THRESHOLD", "0");
    let app = spawn_app_in(dir.path(), options).await;

    let mut usage: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/reached_usage_percent.json")).unwrap();
    usage[0]["used_percent"] = json!(95.5);
    usage[0]["username"] = json!("heavy");
    let mut note: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_limited.json")).unwrap();
    note[0]["user"]["note"] = json!("@everyone <@&1> <@2>");
    for body in [
        fixture("marzban-0.8.4/user_created.json"),
        fixture("marzban-0.8.4/user_updated.json"),
        serde_json::to_string(&note).unwrap(),
        fixture("marzban-0.8.4/reached_usage_percent.json"),
        serde_json::to_string(&usage).unwrap(),
    ] {
        assert_eq!(app.post(body).await.status(), 200);
    }
    app.wait_until_settled().await;

    let audit = titles(&discord.messages_to(AUDIT));
    assert_eq!(audit.len(), 4, "user_updated is muted everywhere: {audit:?}");
    assert!(!audit.iter().any(|t| t.contains("updated")));
    let alerts = discord.messages_to(ALERTS);
    assert_eq!(titles(&alerts), ["⛔ Data limit reached: h5b5cf44\\_traffic", "📈 Usage warning: heavy"]);
    let (limited, heavy) = (&alerts[0], &alerts[1]);
    assert_eq!(limited["content"], format!("<@&{ROLE}> — ⛔ Data limit reached: h5b5cf44\\_traffic"));
    assert_eq!(limited["allowed_mentions"], json!({"parse": [], "roles": [ROLE.to_string()], "users": []}));
    assert_eq!(heavy["content"], format!("<@{USER}> — 📈 Usage warning: heavy"));
    assert_eq!(heavy["allowed_mentions"], json!({"parse": [], "roles": [], "users": [USER.to_string()]}));
    assert_eq!(limited["username"], "Panel alerts");
    for message in discord.messages_to(AUDIT) {
        assert_eq!(message["allowed_mentions"], json!({"parse": [], "roles": [], "users": []}));
        assert!(message.get("content").is_none());
    }
    let to_alerts: Vec<_> = discord.requests().into_iter().filter(|r| r.path.contains(&ALERTS.to_string())).collect();
    assert!(to_alerts.iter().all(|r| r.query.contains(&format!("thread_id={THREAD}"))), "posted into the thread");
    let to_audit: Vec<_> = discord.requests().into_iter().filter(|r| r.path.contains(&AUDIT.to_string())).collect();
    assert!(to_audit.iter().all(|r| !r.query.contains("thread_id")));
    app.stop().await;
}

#[tokio::test]
async fn refuses_an_owner_webhook_that_is_not_on_discord_and_sends_nothing_there() {
    let discord = FakeDiscord::start().await;
    let elsewhere = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord).var("DELIVER_TO_OWNER_ADMIN", "true");
    let app = spawn_app_in(dir.path(), options).await;

    let mut events: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_created.json")).unwrap();
    events[0]["user"]["admin"]["username"] = json!("reseller9");
    events[0]["user"]["admin"]["discord_webhook"] = json!(elsewhere.webhook_url());
    assert_eq!(app.post(serde_json::to_string(&events).unwrap()).await.status(), 200);
    app.wait_until_settled().await;
    assert_eq!(discord.embeds().len(), 1);
    assert!(elsewhere.requests().is_empty(), "no request to a host that is not Discord's");
    let warning = logs().into_iter().find(|l| l.contains("admin \"reseller9\" has a discord_webhook")).unwrap();
    assert!(warning.contains("is not one of Discord's webhook hosts"), "{warning}");
    assert!(!warning.contains(WEBHOOK_TOKEN), "the URL is never logged: {warning}");
    app.stop().await;
}

#[tokio::test]
async fn each_panel_has_its_own_path_and_secret() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord).var("PANELS", "eu1:secret-eu,us1:secret-us");
    let app = spawn_app_in(dir.path(), options).await;
    let body = || fixture("marzban-0.8.4/user_deleted.json");

    assert_eq!(app.post_to("/webhook/eu1", body(), Some("secret-eu")).await.status(), 200);
    assert_eq!(app.post_to("/webhook/us1/", body(), Some("secret-us")).await.status(), 200);
    assert_eq!(app.post_to("/webhook/eu1", body(), Some("secret-us")).await.status(), 401, "another panel's secret");
    assert_eq!(app.post_to("/webhook/us1", body(), Some(SECRET)).await.status(), 401, "the root secret");
    assert_eq!(app.post_to("/webhook/asia", body(), Some("secret-eu")).await.status(), 401, "an unknown panel");
    assert_eq!(app.post_to("/", body(), Some(SECRET)).await.status(), 200, "the root path keeps its secret");

    let embeds = discord.wait_for_embeds(3, WAIT).await;
    let footers: Vec<&str> = embeds.iter().map(|e| e["footer"]["text"].as_str().unwrap_or("")).collect();
    assert_eq!(footers, ["eu1", "us1", ""], "the panel label reaches the templates");
    app.stop().await;
}

#[tokio::test]
async fn reads_secrets_from_files() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "from-a-compose-secret\n").unwrap();
    let url = dir.path().join("url");
    std::fs::write(&url, discord.webhook_url()).unwrap();
    let options = Options::new()
        .var("WEBHOOK_SECRET_FILE", secret.to_str().unwrap())
        .var("DISCORD_WEBHOOK_URL_FILE", url.to_str().unwrap());
    let app = spawn_app_in(dir.path(), options).await;

    let body = fixture("marzban-0.8.4/user_deleted.json");
    assert_eq!(app.post_to("/", body.clone(), Some("from-a-compose-secret")).await.status(), 200);
    assert_eq!(app.post_to("/", body, Some(SECRET)).await.status(), 401);
    discord.wait_for_embeds(1, WAIT).await;
    app.stop().await;

    let output = relay(&["check"], &[("WEBHOOK_SECRET", "x"), ("WEBHOOK_SECRET_FILE", secret.to_str().unwrap())]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("WEBHOOK_SECRET and WEBHOOK_SECRET_FILE are both set; set one"), "{stdout}");
}

#[tokio::test]
async fn readyz_follows_the_outbox_and_the_destinations() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    assert_eq!(ready(&app).await, (200, json!({"ready": true})));

    let blocker = rusqlite::Connection::open(dir.path().join("outbox.sqlite3")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let reason = "the outbox cannot commit a write to its file: outbox storage error: database is locked";
    assert_eq!(ready(&app).await, (503, json!({"ready": false, "reasons": [reason]})));
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(ready(&app).await.0, 200);

    discord.script([Reply::not_found()]);
    assert_eq!(app.post(fixture("marzban-0.8.4/user_deleted.json")).await.status(), 200);
    let (status, body) =
        poll_until("readiness to change", || async { Some(ready(&app).await).filter(|(status, _)| *status != 200) })
            .await;
    assert_eq!(status, 503, "{body}");
    let reason = body["reasons"][0].as_str().unwrap();
    assert!(reason.starts_with("destination default is paused: Discord answered 404"), "{reason}");
    app.stop().await;
}

async fn ready(app: &crate::helpers::TestApp) -> (u16, Value) {
    let response = app.get("/readyz").await;
    (response.status().as_u16(), response.json::<Value>().await.unwrap())
}

/// Parses the OpenMetrics text exposition strictly: every line is a comment of a known kind or a
/// sample `name{labels} value`; returns the samples by name and labels.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    assert!(text.ends_with("# EOF\n"), "the exposition ends with # EOF");
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split_whitespace().next().unwrap();
            assert!(["HELP", "TYPE", "UNIT", "EOF"].contains(&kind), "unexpected comment: {line}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            let labels = &series[name_end..];
            assert!(labels.starts_with('{') && labels.ends_with('}'), "bad labels: {line}");
            for pair in labels[1..labels.len() - 1].split("\",").filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label: {line}"));
                assert!(key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "bad label name: {line}");
                assert!(!value.trim_end_matches('"').contains('\n'));
            }
        }
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value: {line}"));
        samples.insert(series.to_owned(), value);
    }
    samples
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_what_happened() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply::server_error(), Reply::too_many(Duration::from_millis(200))]);
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord).var("DIGEST_THRESHOLD", "0").var("PANEL_NAME", "main");
    let app = spawn_app_in(dir.path(), options).await;

    let mut body: Vec<Value> = serde_json::from_str(&batch_of("user_created", 3, "m", |_, _| {})).unwrap();
    body.push(json!({"username": "no action"}));
    assert_eq!(app.post(serde_json::to_string(&body).unwrap()).await.status(), 200);
    assert_eq!(app.post(fixture("marzban-0.8.4/user_limited.json")).await.status(), 200);
    assert_eq!(app.post_to("/", "[]", Some("wrong")).await.status(), 401);
    // A delivery's latency is counted once Discord has the message, and its rows are recorded as
    // delivered just after: wait for both.
    poll_until("4 deliveries counted and recorded", || async {
        let samples = parse_metrics(&app.get("/metrics").await.text().await.ok()?);
        let latencies = samples.get(r#"relay_delivery_latency_seconds_count{destination="default"}"#)?;
        let pending = samples.get(r#"relay_pending_rows{destination="default"}"#)?;
        (*latencies == 4.0 && *pending == 0.0).then_some(())
    })
    .await;

    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    let samples = parse_metrics(&response.text().await.unwrap());
    let get = |series: &str| samples.get(series).copied().unwrap_or_else(|| panic!("no {series} in {samples:#?}"));
    assert_eq!(get(r#"relay_events_received_total{panel="main"}"#), 5.0);
    assert_eq!(get(r#"relay_events_accepted_total{panel="main",action="user_created"}"#), 3.0);
    assert_eq!(get(r#"relay_events_accepted_total{panel="main",action="user_limited"}"#), 1.0);
    assert_eq!(get(r#"relay_events_rejected_total{panel="main"}"#), 1.0);
    assert_eq!(get(r#"relay_auth_failures_total{panel="main"}"#), 1.0);
    assert_eq!(get(r#"relay_embeds_delivered_total{destination="default"}"#), 4.0);
    assert_eq!(get(r#"relay_events_delivered_total{destination="default"}"#), 4.0);
    assert_eq!(get(r#"relay_discord_responses_total{destination="default",class="5xx"}"#), 1.0);
    assert_eq!(get(r#"relay_discord_responses_total{destination="default",class="429"}"#), 1.0);
    assert_eq!(get(r#"relay_rate_limited_total{destination="default",scope="user"}"#), 1.0);
    assert_eq!(get(r#"relay_retries_total{destination="default"}"#), 1.0);
    assert_eq!(get(r#"relay_delivery_latency_seconds_count{destination="default"}"#), 4.0);
    assert_eq!(get(r#"relay_pending_rows{destination="default"}"#), 0.0);
    assert_eq!(get(r#"relay_oldest_pending_age_seconds{destination="default"}"#), 0.0);
    assert_eq!(get(r#"relay_destination_paused{destination="default"}"#), 0.0);
    let messages = get(r#"relay_messages_delivered_total{destination="default"}"#);
    assert_eq!(messages, discord.messages().len() as f64);
    app.stop().await;
}

#[test]
fn check_reports_the_problems_of_a_routes_file() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        "[destinations.alerts]\nurl = \"https://discord.com/webhooks/1/x\"\n\n[[rules]]\nactions = [\"user_expird\"]\nto = [\"alrts\"]\nmention_roles = [42]\n",
    )
    .unwrap();
    let output = relay(&["check"], &[("ROUTES_FILE", routes.to_str().unwrap()), ("WEBHOOK_SECRET", "s")]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "ROUTES_FILE has problems:",
        "destinations.alerts.url is not a usable webhook URL",
        "rules[0].actions: unknown action \"user_expird\"",
        "rules[0].to: unknown destination \"alrts\"",
        "rules[0].mention_roles: 42 is not a Discord id",
    ] {
        assert!(stdout.contains(expected), "{expected} not in {stdout}");
    }
}

#[tokio::test]
async fn two_destinations_on_one_webhook_are_refused_naming_both_and_not_the_token() {
    // Two forum destinations on the fake's one forum webhook (spelled with and without an API
    // version): together they would outrun its rate limit and give a user two posts.
    let discord = FakeDiscord::start().await;
    let url = discord.forum_webhook_url(crate::fake_discord::WEBHOOK_ID);
    let versioned = url.replace("/api/webhooks/", "/api/v10/webhooks/");
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        format!(
            "[destinations.support]\nurl = \"{url}\"\nforum = true\n[destinations.audit]\nurl = \"{versioned}\"\n\
             forum = true\n[[rules]]\nto = [\"support\"]\n[[rules]]\nactions = [\"user_deleted\"]\nto = [\"audit\"]\n"
        ),
    )
    .unwrap();
    let output = relay(&["check"], &[("ROUTES_FILE", routes.to_str().unwrap()), ("WEBHOOK_SECRET", "s")]);
    assert_eq!(output.status.code(), Some(1));
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(said.contains("destinations.audit and destinations.support post to the same webhook"), "{said}");
    assert!(!said.contains(WEBHOOK_TOKEN), "{said}");
    assert!(discord.requests().is_empty());
}

/// A forward HTTP proxy on 127.0.0.1 that records the request lines it relays.
async fn http_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut client = BufReader::new(client);
                let mut head = String::new();
                client.read_line(&mut head).await.unwrap();
                record.lock().unwrap().push(head.trim().to_owned());
                // "POST http://127.0.0.1:PORT/path HTTP/1.1" → connect there, send origin-form.
                let mut parts = head.split_whitespace();
                let (method, target, version) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
                let rest = target.strip_prefix("http://").unwrap();
                let (authority, path) = rest.split_at(rest.find('/').unwrap());
                let mut upstream = TcpStream::connect(authority).await.unwrap();
                upstream.write_all(format!("{method} {path} {version}\r\n").as_bytes()).await.unwrap();
                let buffered = client.buffer().to_vec();
                upstream.write_all(&buffered).await.unwrap();
                let mut client = client.into_inner();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, seen)
}

/// A SOCKS5 proxy (no authentication) on 127.0.0.1 that records the addresses it connects to.
async fn socks5_proxy() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let mut greeting = [0u8; 2];
                client.read_exact(&mut greeting).await.unwrap();
                let mut methods = vec![0u8; greeting[1] as usize];
                client.read_exact(&mut methods).await.unwrap();
                client.write_all(&[5, 0]).await.unwrap();
                let mut request = [0u8; 4];
                client.read_exact(&mut request).await.unwrap();
                let host = match request[3] {
                    1 => {
                        let mut ip = [0u8; 4];
                        client.read_exact(&mut ip).await.unwrap();
                        std::net::Ipv4Addr::from(ip).to_string()
                    }
                    3 => {
                        let len = client.read_u8().await.unwrap();
                        let mut name = vec![0u8; len as usize];
                        client.read_exact(&mut name).await.unwrap();
                        String::from_utf8(name).unwrap()
                    }
                    other => panic!("address type {other}"),
                };
                let port = client.read_u16().await.unwrap();
                record.lock().unwrap().push(format!("{host}:{port}"));
                let mut upstream = TcpStream::connect((host.as_str(), port)).await.unwrap();
                client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    (port, seen)
}

async fn deliver_through(proxy_var: &str, proxy_url: &str, discord: &FakeDiscord) {
    let dir = tempfile::tempdir().unwrap();
    let url = discord.webhook_url();
    let vars = [("WEBHOOK_SECRET", SECRET), ("DISCORD_WEBHOOK_URL", url.as_str()), (proxy_var, proxy_url)];
    let mut relay = Process::start(dir.path(), &vars).await;
    let response = reqwest::Client::new()
        .post(relay.url())
        .header("x-webhook-secret", SECRET)
        .body(fixture("marzban-0.8.4/user_deleted.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    discord.wait_for_embeds(1, WAIT).await;
    relay.signal("TERM").await;
    assert!(relay.wait().await.success());
}

#[tokio::test]
async fn sends_through_an_http_proxy_from_the_environment() {
    let discord = FakeDiscord::start().await;
    let (port, seen) = http_proxy().await;
    deliver_through("HTTP_PROXY", &format!("http://127.0.0.1:{port}"), &discord).await;
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with(&format!("POST http://127.0.0.1:{}/api/webhooks/", discord.port())), "{seen:?}");
}

#[tokio::test]
async fn sends_through_a_socks5_proxy_from_all_proxy() {
    let discord = FakeDiscord::start().await;
    let (port, seen) = socks5_proxy().await;
    deliver_through("ALL_PROXY", &format!("socks5://127.0.0.1:{port}"), &discord).await;
    assert_eq!(seen.lock().unwrap().clone(), [format!("127.0.0.1:{}", discord.port())]);
}

#[test]
fn the_example_routes_file_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/routes.example.toml")).unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    std::fs::write(secrets.join("us1_webhook_secret"), "us1-secret\n").unwrap();
    std::fs::write(secrets.join("alerts_webhook_url"), "https://discord.com/api/webhooks/666666666666666666/tok\n")
        .unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(&routes, example.replace("/run/secrets/", &format!("{}/", secrets.display()))).unwrap();

    let output = relay(&["check"], &[("ROUTES_FILE", routes.to_str().unwrap()), ("WEBHOOK_SECRET", "s")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
}
