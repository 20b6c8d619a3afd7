//! The HTTP surface: secrets, bodies, batches, answers.

use std::time::Duration;

use marzban_discord_relay::secret::Secret;
use serde_json::{json, Value};

use crate::fake_discord::FakeDiscord;
use crate::helpers::{fixture, raw_exchange, spawn_app, spawn_app_in, Options, SECRET};

#[tokio::test]
async fn refuses_a_missing_or_wrong_secret_without_detail() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let body = fixture("marzban-0.8.4/user_created.json");

    for secret in [None, Some("wrong"), Some("")] {
        let response = app.post_to("/", body.clone(), secret).await;
        assert_eq!(response.status(), 401, "secret {secret:?}");
        assert_eq!(response.text().await.unwrap(), "");
    }
    app.wait_until_settled().await;
    assert!(discord.requests().is_empty(), "nothing was stored, so nothing is sent");
    app.stop().await;
}

#[tokio::test]
async fn accepts_the_raw_secret_and_the_hmac_of_the_body_on_every_path() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let body = fixture("marzban-0.8.4/user_created.json");
    let hmac = Secret::parse(SECRET).unwrap().hmac_hex(body.as_bytes());

    for path in ["/", "/webhook", "/webhook/"] {
        assert_eq!(app.post_to(path, body.clone(), Some(SECRET)).await.status(), 200, "{path}");
    }
    let response = app.post_to("/", body.clone(), Some(&hmac)).await;
    assert_eq!(response.status(), 200);
    // The HMAC of another body does not open this one.
    let other = Secret::parse(SECRET).unwrap().hmac_hex(b"[]");
    assert_eq!(app.post_to("/", body, Some(&other)).await.status(), 401);
    app.stop().await;
}

/// POSTs `body` to `path` with `secret` as the raw bytes of `x-webhook-secret`, as Python's
/// `http.client` writes them; the status code of the answer.
async fn post_with_header_bytes(port: u16, path: &str, secret: &[u8], body: String) -> u16 {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: relay\r\nContent-Length: {}\r\n", body.len()).into_bytes();
    head.extend_from_slice(b"x-webhook-secret: ");
    head.extend_from_slice(secret);
    head.extend_from_slice(b"\r\n\r\n");
    let answer = tokio::task::spawn_blocking(move || raw_exchange(port, &head, body.as_bytes())).await.unwrap();
    answer.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or_else(|| panic!("{answer:?}"))
}

#[tokio::test]
async fn accepts_a_non_ascii_secret_in_the_latin1_bytes_marzban_sends() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = Options::new()
        .var("WEBHOOK_SECRET", "pässwörd")
        .var("PANELS", "eu1:gärtnerß")
        .var("DISCORD_WEBHOOK_URL", &discord.webhook_url());
    let app = spawn_app_in(dir.path(), options).await;
    let body = fixture("marzban-0.8.4/user_created.json");
    // What Python's requests sends for the str "pässwörd": one byte per character.
    let latin1 = b"p\xe4ssw\xf6rd";

    assert_eq!(post_with_header_bytes(app.port(), "/", latin1, body.clone()).await, 200);
    assert_eq!(post_with_header_bytes(app.port(), "/", "pässwörd".as_bytes(), body.clone()).await, 200);
    assert_eq!(post_with_header_bytes(app.port(), "/webhook/eu1", b"g\xe4rtner\xdf", body.clone()).await, 200);
    assert_eq!(post_with_header_bytes(app.port(), "/", b"p\xe4ssw\xf6rt", body.clone()).await, 401);
    assert_eq!(post_with_header_bytes(app.port(), "/", b"passwoerd", body).await, 401);
    discord.wait_for_embeds(1, Duration::from_secs(30)).await;
    app.stop().await;
}

#[tokio::test]
async fn warns_at_start_about_a_secret_marzban_cannot_send() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord).var("PANELS", "kyiv:секрет-панелі");
    let app = spawn_app_in(dir.path(), options).await;

    let warned = crate::helpers::logs()
        .iter()
        .any(|line| line.starts_with("WARN") && line.contains("PANELS (panel kyiv) has characters outside latin-1"));
    assert!(warned, "no warning naming PANELS (panel kyiv)");
    // It is still accepted as UTF-8, for a sender that can send it.
    let body = fixture("marzban-0.8.4/user_created.json");
    assert_eq!(app.post_to("/webhook/kyiv", body, Some("секрет-панелі")).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn answers_400_for_a_body_that_is_not_json() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;

    let response = app.post("user_created for bob").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().starts_with("body is not valid JSON"), "{body}");

    let response = app.post("[{\"action\": \"user_created\", \"username\": ").await;
    assert_eq!(response.status(), 400);
    let response = app.post("\"user_created\"").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("JSON array of events or a single event object"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn answers_413_over_the_body_limit_and_keeps_what_was_stored() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("MAX_BODY_BYTES", "4KiB")).await;

    let small = fixture("marzban-0.8.4/user_deleted.json");
    assert_eq!(app.post(small).await.status(), 200);
    let large = fixture("marzban-0.8.4/user_enabled.json");
    assert!(large.len() > 4096);
    let response = app.post(large).await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "body is larger than MAX_BODY_BYTES (4096 bytes)");

    app.wait_until_settled().await;
    let embeds = discord.embeds();
    assert_eq!(embeds.len(), 1, "nothing of the refused body was stored");
    assert!(embeds[0]["title"].as_str().unwrap().contains("deleted"));
    app.stop().await;
}

#[tokio::test]
async fn stores_the_good_elements_of_a_mixed_batch_and_reports_the_bad() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let mut batch: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_created.json")).unwrap();
    batch.push(json!("not an event"));
    batch.push(json!({"username": "no-action"}));
    batch.extend(serde_json::from_str::<Vec<Value>>(&fixture("marzban-0.8.4/user_limited.json")).unwrap());
    batch.push(json!({"action": "user_updated", "user": [1, 2]}));

    let response = app.post(serde_json::to_string(&batch).unwrap()).await;
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["accepted"], 2);
    assert_eq!(receipt["rejected"], 3);
    assert_eq!(
        receipt["errors"],
        json!([
            {"index": 1, "error": "element must be an object, not a string"},
            {"index": 2, "error": "missing `action`"},
            {"index": 4, "error": "`user` must be an object or null, not an array"},
        ])
    );
    let embeds = discord.wait_for_embeds(2, Duration::from_secs(30)).await;
    assert!(embeds[0]["title"].as_str().unwrap().contains("created"));
    assert!(embeds[1]["title"].as_str().unwrap().contains("limit"));
    app.stop().await;
}

#[tokio::test]
async fn accepts_a_batch_of_ten_thousand_marzban_events_in_one_request() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let template: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_expired.json")).unwrap();
    let batch: Vec<Value> = (0..10_000)
        .map(|i| {
            let mut event = template[0].clone();
            event["username"] = json!(format!("user{i:05}"));
            event["user"]["username"] = json!(format!("user{i:05}"));
            event
        })
        .collect();
    let body = serde_json::to_vec(&batch).unwrap();
    assert!(body.len() > 14_000_000, "{} bytes", body.len());

    let response = app.post(body).await;
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["accepted"], 10_000);
    assert_eq!(receipt["rejected"], 0);
    app.stop().await;
}

#[tokio::test]
async fn answers_503_when_the_outbox_cannot_commit_and_stores_nothing() {
    let discord = FakeDiscord::start().await;
    let (app, dir) = spawn_app(&discord).await;
    // Another process holding the write lock makes every commit fail (after the busy timeout).
    let blocker = rusqlite::Connection::open(dir.path().join("outbox.sqlite3")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let response = app.post(fixture("marzban-0.8.4/user_created.json")).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "the relay cannot store events right now; send them again later");

    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);
    assert_eq!(app.post(fixture("marzban-0.8.4/user_deleted.json")).await.status(), 200);
    app.wait_until_settled().await;
    let titles: Vec<String> = discord.embeds().iter().map(|e| e["title"].as_str().unwrap().to_owned()).collect();
    assert_eq!(titles.len(), 1, "{titles:?}");
    assert!(titles[0].contains("deleted"));
    app.stop().await;
}

#[tokio::test]
async fn healthz_answers_200() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn refuses_a_stranger_before_reading_the_body() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let port = app.port();
    // 50 MB announced, none sent: the answer must not wait for it.
    let head = "POST / HTTP/1.1\r\nHost: relay\r\nx-webhook-secret: guess\r\nContent-Length: 50000000\r\n\r\n";
    let answer = tokio::task::spawn_blocking(move || raw_exchange(port, head.as_bytes(), b"")).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer:?}");
    app.stop().await;
}
