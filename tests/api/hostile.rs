//! What a stranger or a broken upstream sends: bodies that cannot be checked before they are read,
//! absurd delays, answers of any size, tokens echoed in error pages, batches of a million nothings.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::fake_discord::{FakeDiscord, Reply, WEBHOOK_ID, WEBHOOK_TOKEN};
use crate::helpers::{eventually, fixture, logs, poll_until, spawn_app_in, Options, TestApp, SECRET};

const WAIT: Duration = Duration::from_secs(30);

/// A header shaped like an HMAC-SHA256 (64 hex digits) that is not the HMAC of anything sent.
const HMAC_SHAPED: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

async fn readiness(app: &TestApp) -> (u16, Value) {
    let response = app.get("/readyz").await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Polls `/readyz` until one of its reasons contains `needle`; returns that reason.
async fn wait_for_reason(app: &TestApp, needle: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let (status, body) = readiness(app).await;
        let reasons: Vec<String> =
            body["reasons"].as_array().into_iter().flatten().filter_map(|r| r.as_str().map(str::to_owned)).collect();
        if let Some(reason) = reasons.iter().find(|r| r.contains(needle)) {
            assert_eq!(status, 503);
            return reason.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no readiness reason with {needle:?}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn user_created() -> String {
    fixture("marzban-0.8.4/user_created.json")
}

/// Opens a connection, sends a POST head with `secret` announcing `length` bytes, then `sent` bytes
/// of body, and keeps the connection open without finishing.
async fn stalled_upload(port: u16, secret: &str, length: usize, sent: usize) -> TcpStream {
    stalled_upload_to(port, "/", secret, length, sent).await
}

/// [`stalled_upload`] to `path`.
async fn stalled_upload_to(port: u16, path: &str, secret: &str, length: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: relay\r\nx-webhook-secret: {secret}\r\nContent-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(&vec![b' '; sent]).await;
    stream
}

/// The status line of whatever the relay answered on `stream` within `wait`, if anything.
async fn answer_within(stream: &mut TcpStream, wait: Duration) -> Option<String> {
    let mut buffer = [0u8; 64];
    match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
        Ok(Ok(read)) if read > 0 => Some(String::from_utf8_lossy(&buffer[..read]).lines().next()?.to_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn unverified_bodies_share_one_budget_and_never_slow_the_panel() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("UNVERIFIED_BODY_BYTES", "1MiB")).await;

    // Bigger than the whole budget: refused before a byte is read.
    let mut huge = stalled_upload(app.port(), HMAC_SHAPED, 60 << 20, 0).await;
    assert_eq!(answer_within(&mut huge, WAIT).await.as_deref(), Some("HTTP/1.1 413 Payload Too Large"));

    // Forty uploads that send 4 KiB and stall: 32 get a place, the other 8 are turned away at once,
    // and the 32 are cut off after the short timeout for unverified bodies, not the 60 s one.
    let uploads: Vec<_> = futures_util::future::join_all(
        (0..40).map(|_| async { stalled_upload(app.port(), HMAC_SHAPED, 200 << 10, 4 << 10).await }),
    )
    .await;
    let started = std::time::Instant::now();
    let answers: Vec<_> = uploads
        .into_iter()
        .map(|mut upload| tokio::spawn(async move { (answer_within(&mut upload, WAIT * 2).await, started.elapsed()) }))
        .collect();

    // Meanwhile the panel, which sends the raw secret, is served every time.
    for i in 0..10 {
        assert_eq!(app.post(user_created()).await.status(), 200, "panel request {i}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut answers: Vec<_> = futures_util::future::join_all(answers).await.into_iter().map(Result::unwrap).collect();
    answers.sort_by_key(|(_, after)| *after);
    let busy = answers.iter().filter(|(a, _)| a.as_deref() == Some("HTTP/1.1 503 Service Unavailable")).count();
    let timed_out = answers.iter().filter(|(a, _)| a.as_deref() == Some("HTTP/1.1 408 Request Timeout")).count();
    assert_eq!((busy, timed_out), (8, 32), "{answers:?}");
    let slowest = answers.last().unwrap().1;
    assert!(slowest >= Duration::from_secs(9), "cut off after the unverified timeout, not before: {slowest:?}");

    // Ten uploads that each send 200 KiB and stall: five fit in the 1 MiB budget, the rest do not.
    let mut uploads = Vec::new();
    for _ in 0..10 {
        uploads.push(stalled_upload(app.port(), HMAC_SHAPED, 300 << 10, 200 << 10).await);
    }
    wait_for_refusals(&mut uploads, 5).await;
    assert_eq!(app.post(user_created()).await.status(), 200, "the panel is still served");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("relay_unverified_refused_total"), "{metrics}");

    // Meanwhile the panel, which sends the raw secret, is served every time.
    for i in 0..10 {
        assert_eq!(app.post(user_created()).await.status(), 200, "panel request {i}");
    }
    drop(uploads);
    app.stop().await;
}

/// Waits until `count` of `uploads` were answered 503; panics past [`WAIT`].
async fn wait_for_refusals(uploads: &mut [TcpStream], count: usize) {
    let mut refused = vec![false; uploads.len()];
    let deadline = std::time::Instant::now() + WAIT;
    while refused.iter().filter(|r| **r).count() < count {
        assert!(std::time::Instant::now() < deadline, "only {refused:?} of the uploads were refused");
        for (upload, refused) in uploads.iter_mut().zip(&mut refused).filter(|(_, refused)| !**refused) {
            if answer_within(upload, Duration::from_millis(10)).await.as_deref()
                == Some("HTTP/1.1 503 Service Unavailable")
            {
                *refused = true;
            }
        }
    }
}

#[tokio::test]
async fn bodies_with_a_panels_secret_share_one_budget_and_the_other_panels_are_served() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord)
        .var("PANELS", "eu:secret-of-eu,us:secret-of-us")
        .var("PANEL_BODY_BYTES", "2MiB")
        .var("PANEL_REQUESTS_MAX", "8");
    let app = spawn_app_in(dir.path(), options).await;

    // Larger than eu's half of the budget: refused before a byte is read.
    let mut huge = stalled_upload_to(app.port(), "/webhook/eu", "secret-of-eu", 60 << 20, 0).await;
    assert_eq!(answer_within(&mut huge, WAIT).await.as_deref(), Some("HTTP/1.1 413 Payload Too Large"));

    // Twenty uploads with eu's real secret that send 100 KiB and stall: 8 get a place, 12 are
    // turned away at once.
    let mut uploads = Vec::new();
    for _ in 0..20 {
        uploads.push(stalled_upload_to(app.port(), "/webhook/eu", "secret-of-eu", 900 << 10, 100 << 10).await);
    }
    wait_for_refusals(&mut uploads, 12).await;
    let refused = app.post_to("/webhook/eu", user_created(), Some("secret-of-eu")).await;
    assert_eq!(refused.status(), 503, "eu's places are taken: its panel sends again later");
    assert_eq!(refused.headers()["retry-after"], "5");

    // The 8 held send 200 KiB more each: eu may hold 1 MiB (half of 2 MiB), so some are refused.
    let mut held: Vec<TcpStream> = Vec::new();
    for mut upload in uploads {
        if answer_within(&mut upload, Duration::from_millis(1)).await.is_none() {
            let _ = upload.write_all(&vec![b' '; 200 << 10]).await;
            held.push(upload);
        }
    }
    assert_eq!(held.len(), 8);
    wait_for_refusals(&mut held, 4).await;

    // Meanwhile another panel, and POST /, are served and delivered.
    let us = app.post_to("/webhook/us", user_created(), Some("secret-of-us")).await;
    assert_eq!(us.status(), 200, "{:?}", us.text().await);
    assert_eq!(app.post(user_created()).await.status(), 200);
    discord.wait_for_embeds(2, WAIT).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("relay_bodies_refused_total{panel=\"eu\"}"), "{metrics}");

    // Once eu's uploads end, its places and bytes come back.
    drop(held);
    let again = poll_until("eu is served again", || async {
        let response = app.post_to("/webhook/eu", user_created(), Some("secret-of-eu")).await;
        (response.status() == 200).then_some(())
    });
    again.await;
    app.stop().await;
}

#[tokio::test]
async fn an_absurd_retry_after_is_capped_and_shows_in_readiness() {
    for reply in [
        Reply { status: 429, headers: vec![], body: json!({"retry_after": 1e20, "global": false}).to_string() },
        Reply {
            status: 429,
            headers: vec![("retry-after".into(), "99999999999999999999".into())],
            body: String::new(),
        },
    ] {
        let discord = FakeDiscord::start().await;
        discord.script([reply]);
        let dir = tempfile::tempdir().unwrap();
        let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;

        assert_eq!(app.post(user_created()).await.status(), 200);
        let reason = wait_for_reason(&app, "parked").await;
        assert!(reason.contains("3600s") && reason.contains("capped"), "{reason}");
        let metrics = app.get("/metrics").await.text().await.unwrap();
        assert!(!metrics.contains("relay_delivery_task_restarts_total{"), "the task did not die:\n{metrics}");
        assert!(logs().iter().any(|l| l.contains("asked to wait longer than 3600s")));
        app.stop().await;
    }
}

#[tokio::test]
async fn an_empty_bucket_with_an_absurd_reset_parks_loudly() {
    let discord = FakeDiscord::start().await;
    discord.script([Reply {
        status: 200,
        headers: vec![("x-ratelimit-remaining".into(), "0".into()), ("x-ratelimit-reset-after".into(), "1e19".into())],
        body: "{}".into(),
    }]);
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;

    assert_eq!(app.post(user_created()).await.status(), 200);
    let reason = wait_for_reason(&app, "rate-limit bucket is empty").await;
    assert!(reason.contains("capped"), "{reason}");
    assert!(logs().iter().any(|l| l.starts_with("ERROR") && l.contains("rate-limit bucket is empty")));
    app.stop().await;
}

/// A server that answers every request `200` with a body of `length` bytes, and counts how much
/// of it it managed to write before the client hung up.
struct Firehose {
    port: u16,
    written: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
}

impl Firehose {
    async fn start(length: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (written, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (w, d) = (written.clone(), done.clone());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            read_request(&mut stream).await;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n");
            if stream.write_all(head.as_bytes()).await.is_ok() {
                let chunk = vec![b' '; 64 << 10];
                while w.load(Ordering::SeqCst) < length {
                    if stream.write_all(&chunk).await.is_err() {
                        break;
                    }
                    w.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            }
            d.store(true, Ordering::SeqCst);
        });
        Self { port, written, done }
    }
}

/// Reads one HTTP request (head and `Content-Length` body) from `stream`.
async fn read_request(stream: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let read = stream.read(&mut buffer).await.unwrap_or(0);
        if read == 0 {
            return;
        }
        seen.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_huge_answer_is_not_read_to_the_end() {
    let firehose = Firehose::start(300 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}/api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}", firehose.port);
    let options = Options::new().var("WEBHOOK_SECRET", SECRET).var("DISCORD_WEBHOOK_URL", &url);
    let app = spawn_app_in(dir.path(), options).await;

    assert_eq!(app.post(user_created()).await.status(), 200);
    eventually(WAIT, "the relay to hang up on the firehose", || firehose.done.load(Ordering::SeqCst)).await;
    let written = firehose.written.load(Ordering::SeqCst);
    assert!(written < 32 << 20, "the relay read {written} bytes of a 300 MiB answer");
    let delivered = "relay_events_delivered_total{destination=\"default\"} 1";
    let deadline = std::time::Instant::now() + WAIT;
    while !app.get("/metrics").await.text().await.unwrap().contains(delivered) {
        assert!(std::time::Instant::now() < deadline, "a 2xx is delivered, however long its body");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn tokens_echoed_by_a_proxy_are_never_logged_stored_or_served() {
    let discord = FakeDiscord::start().await;
    let echo = |status: u16| Reply::status(status, &format!("Cannot POST /api/webhooks/{WEBHOOK_ID}/{WEBHOOK_TOKEN}"));
    discord.script([echo(502), echo(400), echo(404)]);
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("DIGEST_THRESHOLD", "0")).await;

    // The 502 is retried, the 400 makes a dead letter, the 404 (for the next event) pauses the
    // destination.
    assert_eq!(app.post(user_created()).await.status(), 200);
    discord.wait_for_requests(2, WAIT).await;
    let next = fixture("marzban-0.8.4/user_deleted.json");
    assert_eq!(app.post(next).await.status(), 200);
    let reason = wait_for_reason(&app, "paused").await;
    assert!(reason.contains("HTTP 404 (a ") && reason.contains("not shown"), "{reason}");
    let body = app.get("/readyz").await.text().await.unwrap();
    assert!(!body.contains(WEBHOOK_TOKEN), "{body}");
    app.stop().await;

    let outbox = marzban_discord_relay::outbox::Outbox::open(dir.path()).unwrap();
    let dead = outbox.dead(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let stored = format!("{dead:?}");
    assert!(stored.contains("HTTP 400 (a ") && !stored.contains(WEBHOOK_TOKEN), "{stored}");
    let leaked: Vec<String> = logs().into_iter().filter(|l| l.contains(WEBHOOK_TOKEN)).collect();
    assert!(leaked.is_empty(), "{leaked:?}");
}

#[tokio::test]
async fn a_million_nothings_get_a_short_answer_and_one_log_line() {
    let (discord, dir) = (FakeDiscord::start().await, tempfile::tempdir().unwrap());
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord)).await;
    let marker = "k3q9";
    let mut events: Vec<Value> = serde_json::from_str(&user_created()).unwrap();
    events[0]["username"] = json!(marker);
    let good = serde_json::to_string(&events[0]).unwrap();
    let body = format!("[{good},{}]", vec!["{}"; 1_000_000].join(","));

    let response = app.post(body).await;
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!(receipt["accepted"], 1);
    assert_eq!(receipt["rejected"], 1_000_000);
    assert_eq!(receipt["errors"].as_array().unwrap().len(), 100);
    assert_eq!(receipt["errors_not_shown"], 999_900);
    let lines = logs().iter().filter(|l| l.contains("rejected 1000000 elements")).count();
    assert_eq!(lines, 1, "one summary line for the whole batch");
    let per_element = logs().iter().filter(|l| l.contains("rejected element")).count();
    assert_eq!(per_element, 0);
    let embeds = discord.wait_for_embeds(1, WAIT).await;
    assert!(embeds[0]["title"].as_str().unwrap().contains(marker));
    app.stop().await;
}

#[tokio::test]
async fn a_megabyte_username_is_cut_at_ingest_and_in_the_dead_letter_line() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord).var("OUTBOX_MAX_BYTES", "4MiB").var("DIGEST_THRESHOLD", "0");
    let app = spawn_app_in(dir.path(), options).await;
    // The first message is refused, then its first embed alone: a dead letter.
    let refused = r#"{"code": 50035, "message": "Invalid Form Body"}"#;
    discord.script([Reply::status(400, refused), Reply::status(400, refused)]);
    let name = "m".repeat(1_000_000);
    let cut = format!("{}…", "m".repeat(63));
    let mut events: Value = serde_json::from_str(&user_created()).unwrap();
    events[0]["username"] = json!(name);

    // Sixty such events, in six requests (60 MB of names), fit in a 4 MiB outbox.
    for request in 0..6 {
        let batch: Vec<Value> = (0..10)
            .map(|i| {
                let mut event = events[0].clone();
                event["user"]["note"] = json!(format!("{request}-{i}"));
                event
            })
            .collect();
        assert_eq!(app.post(serde_json::to_string(&batch).unwrap()).await.status(), 200, "request {request}");
    }
    app.wait_until_settled().await;

    // The first message was refused for good: its dead-letter line names the user as cut.
    let lines = logs();
    let dead = lines.iter().find(|l| l.contains("kept as a dead letter")).expect("a dead-letter line");
    assert!(dead.contains(&format!("{cut:?}")) && dead.len() < 1_000, "{} bytes: {dead:.300}", dead.len());
    let delivered = discord.embeds();
    assert!(!delivered.is_empty());
    let text = serde_json::to_string(&delivered).unwrap();
    assert!(text.contains(&cut) && !text.contains(&"m".repeat(64)), "every embed shows the name cut");
    app.stop().await;
}
