//! Faults the relay must survive: a kill -9 under load, Discord down for a minute, a full outbox,
//! hostile input. Each test checks that nothing acknowledged is lost.

use std::collections::{BTreeSet, HashSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_discord::{FakeDiscord, Limits};
use crate::helpers::{
    batch_of, eventually, fixture, poll_until, post_head, raw_exchange, spawn_app_in, Options, Process, TestApp,
    SECRET, SETTLE,
};

/// Usernames in the titles (single embeds) of every message `discord` accepted.
fn delivered_users(discord: &FakeDiscord) -> Vec<String> {
    discord
        .embeds()
        .iter()
        .filter_map(|e| e["title"].as_str()?.split(": ").nth(1).map(|name| name.replace("\\_", "_")))
        .collect()
}

/// Generous limits: these tests are about faults, not pacing.
fn roomy() -> Limits {
    Limits { bucket_requests: 10_000, bucket_window: Duration::from_secs(1), channel: None }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_event() {
    let discord = FakeDiscord::start_with(roomy()).await;
    discord.set_delay(Duration::from_millis(25));
    let dir = tempfile::tempdir().unwrap();
    let url = discord.webhook_url();
    let vars = [
        ("WEBHOOK_SECRET", SECRET),
        ("DISCORD_WEBHOOK_URL", url.as_str()),
        ("DIGEST_THRESHOLD", "0"),
        ("CHANNEL_RATE_LIMIT", "0"),
        ("DATA_DIR", "data"),
        ("RUST_LOG", "warn"),
    ];
    let mut relay = Process::start(dir.path(), &vars).await;
    let address = relay.url();

    // 200 requests of 50 events, 4 at a time; the relay is killed once 80 were acknowledged.
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (client, address, acknowledged, next) =
                (client.clone(), address.clone(), acknowledged.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let batch = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if batch >= 200 {
                        return;
                    }
                    let body = batch_of("user_created", 50, &format!("k{batch:03}_"), |_, _| {});
                    let sent = client.post(&address).header("x-webhook-secret", SECRET).body(body).send().await;
                    if sent.is_ok_and(|r| r.status() == 200) {
                        acknowledged.lock().unwrap().extend((0..50).map(|i| format!("k{batch:03}_{i}")));
                    }
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(60), "80 acknowledged requests", || acknowledged.lock().unwrap().len() >= 4000)
        .await;
    relay.signal("KILL").await;
    for sender in senders {
        sender.await.unwrap();
    }
    relay.wait().await;
    let acknowledged: BTreeSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();
    let before_restart = delivered_users(&discord).len();
    assert!(before_restart < acknowledged.len(), "the kill came before everything was delivered");

    let mut restarted = Process::start(dir.path(), &vars).await;
    eventually(Duration::from_secs(120), "every acknowledged event in Discord", || {
        let delivered: HashSet<String> = delivered_users(&discord).into_iter().collect();
        acknowledged.iter().all(|name| delivered.contains(name))
    })
    .await;
    let delivered = delivered_users(&discord);
    let unique: HashSet<&String> = delivered.iter().collect();
    assert!(delivered.len() - unique.len() <= 10, "at most the message in flight is repeated");
    restarted.signal("TERM").await;
    assert!(restarted.wait().await.success());
}

/// The relay's count of requests to Discord that got no answer at all.
async fn unanswered(app: &TestApp) -> f64 {
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let series = r#"relay_discord_responses_total{destination="default",class="error"} "#;
    metrics.lines().find_map(|line| line.strip_prefix(series)?.parse().ok()).unwrap_or(0.0)
}

/// A long outage, shortened: the retry schedule is milliseconds instead of minutes, and the outage
/// lasts as many retries as a minute would at the real schedule's long end (events keep arriving
/// all along, one batch per failed retry). Then Discord cannot even be reached for two more
/// retries, then it is back on the same address.
#[tokio::test]
async fn discord_down_for_long_then_unreachable_then_back_delivers_everything_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let discord = FakeDiscord::start_on(listener, roomy()).await;
    discord.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let schedule = [10, 40, 80].map(Duration::from_millis).to_vec();
    let options =
        Options::delivering_to(&discord).var("DIGEST_THRESHOLD", "0").tweak(|c| c.delivery.retry_schedule = schedule);
    let app = spawn_app_in(dir.path(), options).await;
    let mut posted = Vec::new();
    let mut batch = 0;
    let mut post_batch = async |posted: &mut Vec<String>| {
        assert_eq!(app.post(batch_of("user_expired", 3, &format!("d{batch}_"), |_, _| {})).await.status(), 200);
        posted.extend((0..3).map(|i| format!("d{batch}_{i}")));
        batch += 1;
    };

    // 503s, well past the end of the retry schedule, with events arriving after each.
    while discord.count_status(503) < 20 {
        post_batch(&mut posted).await;
        let seen = discord.count_status(503);
        eventually(SETTLE, "another retry", || discord.count_status(503) > seen).await;
    }
    // Then nobody answers at all.
    discord.stop().await;
    for _ in 0..2 {
        post_batch(&mut posted).await;
        let seen = unanswered(&app).await;
        poll_until("a retry that gets no answer", || async { (unanswered(&app).await > seen).then_some(()) }).await;
    }
    // And back, on the same address. Rebinding the port the fake Discord just released is the one
    // place a test reuses a port: the relay's configured URL cannot change.
    let back = FakeDiscord::start_on(TcpListener::bind(("127.0.0.1", port)).unwrap(), roomy()).await;
    app.wait_until_settled().await;
    assert!(delivered_users(&discord).is_empty());
    assert_eq!(delivered_users(&back), posted, "all of them, once, in the order received");
    app.stop().await;
}

#[tokio::test]
async fn a_full_outbox_answers_503_and_recovers_without_acknowledging_what_it_did_not_store() {
    let discord = FakeDiscord::start_with(roomy()).await;
    discord.set_down(true);
    let dir = tempfile::tempdir().unwrap();
    let options = Options::delivering_to(&discord)
        .var("DIGEST_THRESHOLD", "0")
        .var("OUTBOX_MAX_BYTES", "400KiB")
        .var("CHANNEL_RATE_LIMIT", "0")
        .var("RETRY_SCHEDULE", "100ms");
    let app = spawn_app_in(dir.path(), options).await;

    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for batch in 0..60 {
        let names: Vec<String> = (0..20).map(|i| format!("f{batch}_{i}")).collect();
        let response = app.post(batch_of("user_created", 20, &format!("f{batch}_"), |_, _| {})).await;
        match response.status().as_u16() {
            200 => acknowledged.extend(names),
            503 => refused.extend(names),
            other => panic!("unexpected {other}"),
        }
    }
    assert!(!refused.is_empty(), "the outbox filled up");
    assert!(acknowledged.len() >= 100, "it held something first: {}", acknowledged.len());
    let readiness = app.get("/readyz").await;
    assert_eq!(readiness.status(), 503, "a full outbox is not ready");
    assert!(readiness.text().await.unwrap().contains("the outbox is full"));

    discord.set_down(false);
    app.wait_until_settled().await;
    let delivered = delivered_users(&discord);
    assert_eq!(delivered, acknowledged, "exactly what was acknowledged, in order");
    assert!(!delivered.iter().any(|name| refused.contains(name)));

    // Once Discord has them, their room is reused: the relay takes events again.
    let response = app.post(batch_of("user_created", 20, "again_", |_, _| {})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200, "ready again once there is room");
    app.stop().await;
}

/// Resident memory high-water mark of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<f64>().unwrap() / 1024.0
}

/// The status code of a raw exchange's answer; 0 when there was none.
fn status_of(answer: &str) -> u16 {
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_a_clear_answer_and_hurts_nothing() {
    let discord = FakeDiscord::start_with(roomy()).await;
    let dir = tempfile::tempdir().unwrap();
    let url = discord.webhook_url();
    let vars = [("WEBHOOK_SECRET", SECRET), ("DISCORD_WEBHOOK_URL", url.as_str()), ("DIGEST_THRESHOLD", "0")];
    let mut relay = Process::start(dir.path(), &vars).await;
    let port = relay.port;
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>| client.post(relay.url()).header("x-webhook-secret", SECRET).body(body).send();

    // An event accepted before the barrage must still be delivered after it.
    assert_eq!(post(fixture("marzban-0.8.4/user_created.json").into_bytes()).await.unwrap().status(), 200);

    // Deeply nested JSON: the outer array is read element by element, and the nested element is
    // rejected on its own.
    let response = post(format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes()).await.unwrap();
    assert_eq!(response.status(), 200);
    let receipt = response.text().await.unwrap();
    assert!(receipt.contains(r#""rejected":1"#) && receipt.contains("recursion limit exceeded"), "{receipt}");
    let response = post(format!("{}{}", "{\"a\":".repeat(100_000), "}".repeat(100_000)).into_bytes()).await.unwrap();
    assert_eq!(response.status(), 400, "a single deeply nested object is no event at all");
    // Invalid UTF-8 inside a string.
    let mut invalid = br#"[{"action":"user_created","username":""#.to_vec();
    invalid.extend_from_slice(&[0xff, 0xfe, 0xfd]);
    invalid.extend_from_slice(br#""}]"#);
    let response = post(invalid).await.unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("invalid unicode"));
    // Wrong types in every field: each element is rejected or read leniently, never a 5xx.
    let wrong = json!([
        {"action": 5, "username": {}},
        {"action": "user_created", "username": 5},
        {"action": "user_created", "username": "w1", "user": {"used_traffic": "x", "expire": [1], "note": {},
         "data_limit": "big", "status": 7, "admin": "me"}, "by": null, "used_percent": "high", "days_left": {}},
        {"action": "user_created", "username": "w2", "by": [1], "user": null},
        {"action": "x".repeat(100), "username": "w3"},
        null, true, 1.5, "text", [],
    ]);
    let response = post(serde_json::to_vec(&wrong).unwrap()).await.unwrap();
    assert_eq!(response.status(), 200);
    let receipt: Value = response.json().await.unwrap();
    assert_eq!((receipt["accepted"].as_u64(), receipt["rejected"].as_u64()), (Some(1), Some(9)));
    // Ten quarter-megabyte usernames, each given twice (an element over 1 MiB is rejected unread).
    let huge = batch_of("user_created", 10, "", |i, event| {
        let name = format!("{i}{}", "u".repeat(1 << 18));
        event["username"] = json!(name);
        event["user"]["username"] = json!(name);
    });
    let response = post(huge.into_bytes()).await.unwrap();
    assert_eq!(response.status(), 200);
    // A body that stops mid-way, and a client that sends its head one byte at a time, then stalls.
    let raw = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.write_all(post_head(10_000).as_bytes()).unwrap();
        stream.write_all(b"[{\"action\": \"user_cre").unwrap();
        drop(stream);
        let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        // Only a deadline for the test: the relay's own limit is seconds.
        slow.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        for byte in b"POST / HTTP/1.1\r\nHost: re" {
            if slow.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut rest = Vec::new();
        // The end of the stream or a reset: the relay hung up. A timeout: it did not.
        let closed = match slow.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(err) => !matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        };
        let answer = String::from_utf8_lossy(&rest).into_owned();
        (closed, answer, status_of(&raw_exchange(port, post_head(2).as_bytes(), b"[]")))
    })
    .await
    .unwrap();
    let (closed, answer, after) = raw;
    assert!(closed, "the relay cut the slow client off");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(after, 200, "the relay still serves");

    let embeds = discord.wait_for_embeds(12, Duration::from_secs(30)).await;
    assert!(embeds[0]["title"].as_str().unwrap().contains("h5b5cf44"), "the event from before is delivered");
    assert_eq!(discord.count_status(400), 0, "everything sent was valid for Discord");
    let peak = peak_rss_mib(relay.pid());
    eprintln!("peak RSS of the relay through the hostile input: {peak:.0} MiB");
    assert!(peak < 200.0, "peak memory {peak:.0} MiB");
    relay.signal("TERM").await;
    assert!(relay.wait().await.success());
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app =
        spawn_app_in(dir.path(), Options::delivering_to(&discord).tweak(|c| c.body_timeout = Duration::from_secs(1)))
            .await;
    let port = app.port();
    let status =
        tokio::task::spawn_blocking(move || raw_exchange(port, post_head(100).as_bytes(), b"[")).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    app.stop().await;
}
