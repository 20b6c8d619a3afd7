//! The Discord application over HTTP: `POST /interactions` signed with a test key, against a fake
//! Marzban user API and a fake Discord REST API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

use crate::fake_bot_peers::{FakePanel, FakeRest, RestCall, JWT_PREFIX, PANEL_PASSWORD, PANEL_USER};
use crate::helpers::{logs, poll_until, spawn_app_in, Options, TestApp};

pub(crate) const SIGNING_KEY: [u8; 32] = [7; 32];
pub(crate) const APPLICATION_ID: &str = "1234567890123456789";
pub(crate) const GUILD: &str = "1100000000000000001";
pub(crate) const MODERATOR_ROLE: &str = "1400000000000000001";
const BOT_TOKEN: &str = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GfAkE.bot-token-never-shown";

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

pub(crate) fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/discord-interactions/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A new interaction id each time, as Discord gives every interaction its own (a repeated id is a
/// replay).
pub(crate) fn fresh_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_300_000_000_000_000_100);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string()
}

/// `/user <username>` from the moderator (with the moderator role unless `roles` says otherwise).
pub(crate) fn command(username: &str, roles: &[&str]) -> Value {
    let mut command = fixture("command_user.json");
    command["id"] = json!(fresh_id());
    command["data"]["options"][0]["value"] = json!(username);
    command["member"]["roles"] = json!(roles);
    command
}

/// A click on the card's button `custom_id`, on a card message drawn now with that button.
pub(crate) fn click(custom_id: &str, roles: &[&str]) -> Value {
    let drawn = json!([{"type": 1, "components": [{"type": 2, "custom_id": custom_id, "label": "x", "style": 1}]}]);
    click_on(custom_id, &drawn, roles)
}

/// A click on `custom_id`, on a message drawn now with the action rows `components` (as the
/// relay's response gave them: `response["data"]["components"]`).
pub(crate) fn click_on(custom_id: &str, components: &Value, roles: &[&str]) -> Value {
    let mut click = fixture("component_button.json");
    click["id"] = json!(fresh_id());
    click["message"]["timestamp"] = json!(rfc3339(now()));
    click["message"]["components"] = components.clone();
    click["data"]["custom_id"] = json!(custom_id);
    click["member"]["roles"] = json!(roles);
    click
}

pub(crate) struct Bot {
    pub app: TestApp,
    pub panel: FakePanel,
    pub rest: FakeRest,
    _dir: tempfile::TempDir,
}

/// `options` with the bot answering `POST /interactions` (signed with the test key), its REST calls
/// to `api_base`, and the moderator role allowed every action.
pub(crate) fn http_bot(options: Options, api_base: &str) -> Options {
    let key = hex(SigningKey::from_bytes(&SIGNING_KEY).verifying_key().as_bytes());
    options
        .var("DISCORD_PUBLIC_KEY", &key)
        .var("DISCORD_APPLICATION_ID", APPLICATION_ID)
        .var("DISCORD_API_BASE", api_base)
        .var("DISCORD_ACTORS", &format!("role:{MODERATOR_ROLE}"))
        .var("DISCORD_ACTIONS", "all")
}

/// `options` with the panel API at `url`, of `family`, logged in as the fake panel's admin.
pub(crate) fn panel_api(options: Options, url: &str, family: &str) -> Options {
    options
        .var("PANEL_API_URL", url)
        .var("PANEL_API_USERNAME", PANEL_USER)
        .var("PANEL_API_PASSWORD", PANEL_PASSWORD)
        .var("PANEL_API_FAMILY", family)
}

/// Sends the command `interaction` to a relay whose panel is slow: checks that it is deferred
/// (type 5, seen by the member only) and returns the edit of the deferred response, made with the
/// interaction's token.
pub(crate) async fn deferred_then_edited(app: &TestApp, rest: &FakeRest, interaction: &Value) -> RestCall {
    let deferred = interact(app, interaction).await;
    assert_eq!((deferred["type"].as_u64(), deferred["data"]["flags"].as_u64()), (Some(5), Some(64)), "{deferred}");
    let edit = poll_until("the deferred response edited", || async {
        rest.calls().into_iter().find(|call| call.method == "PATCH")
    })
    .await;
    let token = interaction["token"].as_str().unwrap();
    assert_eq!(edit.path, format!("/api/v10/webhooks/{APPLICATION_ID}/{token}/messages/@original"));
    edit
}

pub(crate) async fn start(extra: &[(&str, &str)]) -> Bot {
    let (panel, rest) = (FakePanel::start().await, FakeRest::start().await);
    let options = http_bot(Options::new(), &rest.base()).var("DISCORD_GUILD_IDS", GUILD);
    let mut options = panel_api(options, &panel.url(), "marzban");
    for (name, value) in extra {
        options = options.var(name, value);
    }
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), options).await;
    Bot { app, panel, rest, _dir: dir }
}

/// POSTs `body` to `/interactions` signed by `key` at `timestamp`.
pub(crate) async fn post_signed(app: &TestApp, body: &[u8], key: &SigningKey, timestamp: u64) -> reqwest::Response {
    let timestamp = timestamp.to_string();
    let signature = key.sign(&[timestamp.as_bytes(), body].concat());
    app.client
        .post(format!("{}/interactions", app.address))
        .header("x-signature-ed25519", hex(&signature.to_bytes()))
        .header("x-signature-timestamp", timestamp)
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

/// Sends `interaction` as Discord does and returns the response's JSON.
pub(crate) async fn interact(app: &TestApp, interaction: &Value) -> Value {
    let response =
        post_signed(app, interaction.to_string().as_bytes(), &SigningKey::from_bytes(&SIGNING_KEY), now()).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

pub(crate) fn text_of(response: &Value) -> String {
    response.to_string()
}

#[tokio::test]
async fn only_discords_signature_is_accepted_and_a_ping_gets_a_pong() {
    let bot = start(&[]).await;
    let ping = fixture("ping.json").to_string();
    let key = SigningKey::from_bytes(&SIGNING_KEY);
    let good = post_signed(&bot.app, ping.as_bytes(), &key, now()).await;
    assert_eq!(good.status(), 200);
    assert_eq!(good.json::<Value>().await.unwrap(), json!({"type": 1}));

    let stranger = SigningKey::from_bytes(&[9; 32]);
    assert_eq!(post_signed(&bot.app, ping.as_bytes(), &stranger, now()).await.status(), 401, "another key");
    assert_eq!(post_signed(&bot.app, ping.as_bytes(), &key, now() - 301).await.status(), 401, "stale");
    assert_eq!(post_signed(&bot.app, ping.as_bytes(), &key, now() + 301).await.status(), 401, "from the future");

    // Signed, then changed on the way: the command asks for another user.
    let body = command("alice", &[MODERATOR_ROLE]).to_string();
    let timestamp = now().to_string();
    let signature = hex(&key.sign(&[timestamp.as_bytes(), body.as_bytes()].concat()).to_bytes());
    let tampered = body.replace("alice", "bob42");
    let send = |body: String, signature: Option<String>| {
        let mut request = bot.app.client.post(format!("{}/interactions", bot.app.address)).body(body);
        if let Some(signature) = signature {
            request = request.header("x-signature-ed25519", signature);
        }
        request.header("x-signature-timestamp", timestamp.clone()).send()
    };
    assert_eq!(send(tampered, Some(signature.clone())).await.unwrap().status(), 401, "tampered");
    assert_eq!(send(body.clone(), None).await.unwrap().status(), 401, "no signature");
    assert_eq!(send(body.clone(), Some("not hex".into())).await.unwrap().status(), 401, "malformed");
    assert_eq!(send("x".repeat(300 << 10), Some(signature)).await.unwrap().status(), 413, "bounded body");
    assert!(bot.panel.calls().is_empty(), "nothing refused reached the panel");
}

#[tokio::test]
async fn without_a_public_key_there_is_no_interactions_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::new()).await;
    let response = app.client.post(format!("{}/interactions", app.address)).body("{}").send().await.unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn a_member_without_an_allowed_role_is_refused_and_nothing_changes() {
    let bot = start(&[]).await;
    let refused = interact(&bot.app, &command("alice", &["1400000000000000099"])).await;
    assert_eq!((refused["type"].as_u64(), refused["data"]["flags"].as_u64()), (Some(4), Some(64)), "{refused}");
    assert!(text_of(&refused).contains("may not act"), "{refused}");
    let reset = format!("card:reset:{}:alice", now());
    let refused = interact(&bot.app, &click(&reset, &[])).await;
    assert!(text_of(&refused).contains("may not act"), "{refused}");
    assert!(bot.panel.calls().is_empty());
    assert_eq!(bot.panel.user("alice")["used_traffic"], 1_500_000);
}

#[tokio::test]
async fn user_shows_the_live_card_without_a_secret() {
    let bot = start(&[]).await;
    let card = interact(&bot.app, &command("alice", &[MODERATOR_ROLE])).await;
    assert_eq!((card["type"].as_u64(), card["data"]["flags"].as_u64()), (Some(4), Some(64)), "{card}");
    let embed = &card["data"]["embeds"][0];
    assert_eq!(embed["title"], "alice");
    let shown = text_of(&card);
    for expected in
        ["limited", "1.43 MiB / 1.00 MiB", "days left", r"\\*\\*vip\\*\\* \\@everyone", "harness", "card:reset:"]
    {
        assert!(shown.contains(expected), "{expected} in {shown}");
    }
    for secret in ["/sub/", "281f2177", "owner-webhook-token", JWT_PREFIX, PANEL_PASSWORD] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
    assert_eq!(bot.panel.calls(), vec![("GET".to_owned(), "/api/user/alice".to_owned())]);
}

#[tokio::test]
async fn a_slow_panel_is_deferred_then_the_card_is_edited_in() {
    let bot = start(&[]).await;
    bot.panel.state.lock().unwrap().delay = Duration::from_millis(3500);
    let edit = deferred_then_edited(&bot.app, &bot.rest, &command("alice", &[MODERATOR_ROLE])).await;
    assert_eq!(edit.body["embeds"][0]["title"], "alice", "{:?}", edit.body);
    assert_eq!(edit.authorization, None, "the interaction's token authorises the edit, not the bot token");
}

#[tokio::test]
async fn a_panel_that_is_down_an_unknown_user_and_a_renewed_login_are_said_plainly() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let bot = start(&[("PANEL_API_URL", &down)]).await;
    let answer = interact(&bot.app, &command("alice", &[MODERATOR_ROLE])).await;
    assert_eq!((answer["type"].as_u64(), answer["data"]["flags"].as_u64()), (Some(4), Some(64)), "{answer}");
    assert!(text_of(&answer).contains("The panel did not answer"), "{answer}");

    let bot = start(&[]).await;
    let unknown = interact(&bot.app, &command("bob42", &[MODERATOR_ROLE])).await;
    assert!(text_of(&unknown).contains("no user named bob42"), "{unknown}");

    bot.panel.state.lock().unwrap().expire_token = true;
    let card = interact(&bot.app, &command("alice", &[MODERATOR_ROLE])).await;
    assert_eq!(card["data"]["embeds"][0]["title"], "alice", "{card}");
    assert_eq!(bot.panel.state.lock().unwrap().logins, 2, "logged in again after the 401");
}

#[tokio::test]
async fn reset_from_the_card_zeroes_the_usage_once_and_updates_the_card() {
    let bot = start(&[]).await;
    let card = interact(&bot.app, &command("alice", &[MODERATOR_ROLE])).await;
    let reset = text_of(&card)
        .split('"')
        .find(|part| part.starts_with("card:reset:"))
        .expect("the card has a Reset usage button")
        .to_owned();
    let updated = interact(&bot.app, &click(&reset, &[MODERATOR_ROLE])).await;
    assert_eq!(updated["type"], 7, "the card updates in place: {updated}");
    assert_eq!(bot.panel.user("alice")["used_traffic"], 0);
    let shown = text_of(&updated);
    assert!(shown.contains("0 B / 1.00 MiB") && shown.contains("reset alice's usage"), "{shown}");

    let again = interact(&bot.app, &click(&reset, &[MODERATOR_ROLE])).await;
    assert!(text_of(&again).contains("done a moment ago"), "{again}");
    let resets = bot.panel.calls().iter().filter(|(_, path)| path.ends_with("/reset")).count();
    assert_eq!(resets, 1, "a double click acts once");
    let audit: Vec<String> = logs().into_iter().filter(|line| line.contains("audit:")).collect();
    assert_eq!(audit.len(), 1, "{audit:#?}");
    assert!(audit[0].contains(r#""moderator" (1500000000000000001) reset alice's usage"#), "{audit:#?}");
    let token = fixture("component_button.json")["token"].as_str().unwrap().to_owned();
    for secret in [JWT_PREFIX, PANEL_PASSWORD, token.as_str()] {
        assert!(!logs().iter().any(|line| line.contains(secret)), "{secret} logged");
    }
}

#[tokio::test]
async fn disable_asks_first_and_an_old_card_must_be_refreshed() {
    let bot = start(&[]).await;
    let issued = now();
    let asked = interact(&bot.app, &click(&format!("card:disable:{issued}:alice"), &[MODERATOR_ROLE])).await;
    assert_eq!(asked["type"], 7, "{asked}");
    assert!(text_of(&asked).contains(&format!("card:disable!:{issued}:alice")), "{asked}");
    assert_eq!(bot.panel.user("alice")["status"], "limited", "not before the confirmation");
    let done = interact(&bot.app, &click(&format!("card:disable!:{issued}:alice"), &[MODERATOR_ROLE])).await;
    assert_eq!(done["type"], 7, "{done}");
    assert_eq!(bot.panel.user("alice")["status"], "disabled");
    assert!(text_of(&done).contains("card:enable:"), "a disabled user's card offers Enable: {done}");

    let old = now() - 16 * 60;
    let refused = interact(&bot.app, &click(&format!("card:revoke!:{old}:alice"), &[MODERATOR_ROLE])).await;
    assert!(text_of(&refused).contains("older than 15 minutes"), "{refused}");
    assert!(!bot.panel.calls().iter().any(|(_, path)| path.ends_with("/revoke_sub")));
}

#[tokio::test]
async fn the_slash_commands_are_registered_for_the_guild_with_the_bot_token() {
    let bot = start(&[("DISCORD_BOT_TOKEN", BOT_TOKEN)]).await;
    let put = poll_until("the commands registered", || async {
        bot.rest.calls().into_iter().find(|call| call.method == "PUT")
    })
    .await;
    assert_eq!(put.path, format!("/api/v10/applications/{APPLICATION_ID}/guilds/{GUILD}/commands"));
    assert_eq!(put.authorization.as_deref(), Some(format!("Bot {BOT_TOKEN}").as_str()));
    assert_eq!(put.body[0]["name"], "user");
    assert_eq!(put.body[0]["default_member_permissions"], "8", "administrators only by default");
    poll_until("the registration logged", || async {
        logs().iter().any(|line| line.contains("slash commands are registered in guild")).then_some(())
    })
    .await;
    assert!(!logs().iter().any(|line| line.contains("bot-token-never-shown")), "the bot token was logged");
}

#[tokio::test]
async fn a_slow_click_is_acknowledged_then_the_card_is_edited_with_the_new_state() {
    let bot = start(&[]).await;
    bot.panel.state.lock().unwrap().delay = Duration::from_millis(3500);
    let acknowledged = interact(&bot.app, &click(&format!("card:reset:{}:alice", now()), &[MODERATOR_ROLE])).await;
    assert_eq!(acknowledged, json!({"type": 6}), "a deferred update takes no data");
    let edit =
        poll_until("the card edited", || async { bot.rest.calls().into_iter().find(|call| call.method == "PATCH") })
            .await;
    assert_eq!(bot.panel.user("alice")["used_traffic"], 0);
    assert!(edit.body.to_string().contains("0 B / 1.00 MiB"), "{:?}", edit.body);
}

#[tokio::test]
async fn extend_moves_the_expiry_and_a_confirmed_revoke_revokes_once() {
    let bot = start(&[("DISCORD_EXTEND_DAYS", "7,30")]).await;
    let card = interact(&bot.app, &command("alice", &[MODERATOR_ROLE])).await;
    assert!(text_of(&card).contains("Extend +7 d") && text_of(&card).contains("Extend +30 d"), "{card}");
    let before = bot.panel.user("alice")["expire"].as_i64().unwrap();
    let extended = interact(&bot.app, &click(&format!("card:extend30:{}:alice", now()), &[MODERATOR_ROLE])).await;
    assert_eq!(extended["type"], 7, "{extended}");
    assert_eq!(bot.panel.user("alice")["expire"].as_i64().unwrap(), before + 30 * 86_400);

    let revoke = format!("card:revoke!:{}:alice", now());
    interact(&bot.app, &click(&revoke, &[MODERATOR_ROLE])).await;
    let revoked = bot.panel.calls().iter().filter(|(_, path)| path.ends_with("/revoke_sub")).count();
    assert_eq!(revoked, 1);
    assert!(!bot.panel.user("alice")["subscription_url"].as_str().unwrap().contains("YWxpY2U"), "a new link");
}

#[tokio::test]
async fn actions_not_in_discord_actions_are_refused() {
    let bot = start(&[("DISCORD_ACTIONS", "lookup")]).await;
    let card = interact(&bot.app, &command("alice", &[MODERATOR_ROLE])).await;
    assert!(!text_of(&card).contains("card:reset:"), "no button for what is not allowed: {card}");
    let refused = interact(&bot.app, &click(&format!("card:reset:{}:alice", now()), &[MODERATOR_ROLE])).await;
    assert!(text_of(&refused).contains("You may not reset"), "{refused}");
    assert_eq!(bot.panel.user("alice")["used_traffic"], 1_500_000);
}

/// A click whose card message was last drawn at `drawn` (unix seconds), as Discord sends it.
fn click_on_card_drawn(custom_id: &str, drawn: u64) -> Value {
    let mut click = click(custom_id, &[MODERATOR_ROLE]);
    click["message"]["timestamp"] = json!(rfc3339(drawn));
    click
}

pub(crate) fn rfc3339(unix: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(unix as i64).unwrap();
    at.format(&time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test]
async fn a_crafted_custom_id_cannot_extend_by_days_that_are_not_configured() {
    let bot = start(&[("DISCORD_EXTEND_DAYS", "7")]).await;
    let before = bot.panel.user("alice")["expire"].as_i64().unwrap();
    let forged = interact(&bot.app, &click_on_card_drawn(&format!("card:extend3650:{}:alice", now()), now())).await;
    assert!(text_of(&forged).contains("not one of"), "{forged}");
    assert_eq!(bot.panel.user("alice")["expire"].as_i64().unwrap(), before, "the expiry moved by 10 years");
    let allowed = interact(&bot.app, &click_on_card_drawn(&format!("card:extend7:{}:alice", now()), now())).await;
    assert_eq!(allowed["type"], 7, "{allowed}");
    assert_eq!(bot.panel.user("alice")["expire"].as_i64().unwrap(), before + 7 * 86_400);
}

#[tokio::test]
async fn a_fresh_timestamp_in_the_custom_id_does_not_make_an_old_card_fresh() {
    let bot = start(&[]).await;
    let drawn = now() - 20 * 60;
    let forged = interact(&bot.app, &click_on_card_drawn(&format!("card:reset:{}:alice", now()), drawn)).await;
    assert!(text_of(&forged).contains("older than 15 minutes"), "{forged}");
    assert_eq!(bot.panel.user("alice")["used_traffic"], 1_500_000);
    assert!(bot.panel.calls().is_empty(), "{:?}", bot.panel.calls());
}

#[tokio::test]
async fn a_replayed_signed_interaction_is_answered_once() {
    // Whoever captured one signed request (a proxy's log) must not get the live card again, nor
    // repeat an action once the double-click guard's 5 s are over.
    let bot = start(&[]).await;
    let body = command("alice", &[MODERATOR_ROLE]).to_string();
    let key = SigningKey::from_bytes(&SIGNING_KEY);
    let timestamp = now();
    let first = post_signed(&bot.app, body.as_bytes(), &key, timestamp).await.json::<Value>().await.unwrap();
    assert_eq!(first["data"]["embeds"][0]["title"], "alice", "{first}");
    let replayed = post_signed(&bot.app, body.as_bytes(), &key, timestamp).await;
    let shown = replayed.text().await.unwrap();
    assert!(!shown.contains("1.43 MiB") && !shown.contains("embeds"), "the replay got the card: {shown}");
    assert_eq!(bot.panel.calls().len(), 1, "{:?}", bot.panel.calls());
}

/// Opens a connection, sends a `POST /interactions` head with signature headers (any value: they
/// cannot be checked before the body is in) announcing `length` bytes, then `sent` bytes of it,
/// and keeps the connection open without finishing.
async fn stalled_interaction(port: u16, length: usize, sent: usize) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /interactions HTTP/1.1\r\nHost: relay\r\nx-signature-ed25519: {}\r\nx-signature-timestamp: {}\r\n\
         Content-Length: {length}\r\n\r\n",
        "ab".repeat(64),
        now()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let _ = stream.write_all(&vec![b' '; sent]).await;
    stream
}

#[tokio::test]
async fn unsigned_interaction_bodies_share_the_unverified_budget() {
    use tokio::io::AsyncReadExt;
    // Two headers of any value made the relay hold a 256 KiB body per connection for 10 s, with
    // nothing bounding them in total (1,024 connections: 256 MiB).
    let bot = start(&[]).await;
    let port = bot.app.port();
    let uploads = futures_util::future::join_all((0..40).map(|_| stalled_interaction(port, 200 << 10, 4 << 10))).await;
    let answers = futures_util::future::join_all(uploads.into_iter().map(|mut upload| async move {
        let mut buffer = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(3), upload.read(&mut buffer)).await {
            Ok(Ok(read)) if read > 0 => String::from_utf8_lossy(&buffer[..read]).lines().next().map(str::to_owned),
            _ => None,
        }
    }))
    .await;
    let count = |status: &str| answers.iter().filter(|a| a.as_deref() == Some(status)).count();
    let (busy, timed_out) = (count("HTTP/1.1 503 Service Unavailable"), count("HTTP/1.1 408 Request Timeout"));
    assert_eq!((busy, timed_out), (8, 32), "32 places, the rest turned away at once: {answers:?}");
    let ping = fixture("ping.json").to_string();
    let pong = post_signed(&bot.app, ping.as_bytes(), &SigningKey::from_bytes(&SIGNING_KEY), now()).await;
    assert_eq!(pong.status(), 200, "Discord is still served once the stalled bodies are cut off");
}

#[tokio::test]
async fn a_panel_url_without_the_login_path_is_not_reported_as_an_unknown_user() {
    // PANEL_API_URL pointing at something that is not the panel (a wrong port, a path prefix
    // missing): the login is 404, which is not "the panel has no user named alice".
    let elsewhere = FakeRest::start().await;
    let bot = start(&[("PANEL_API_URL", &format!("http://127.0.0.1:{}", elsewhere.port))]).await;
    let answer = interact(&bot.app, &command("alice", &[MODERATOR_ROLE])).await;
    let shown = text_of(&answer);
    assert!(!shown.contains("no user named"), "{shown}");
    assert!(shown.contains("the login"), "{shown}");
}

#[tokio::test]
async fn an_action_the_panel_did_not_confirm_is_audited_too() {
    // A panel that times out may have reset the usage all the same: the attempt must be on record.
    let bot = start(&[("PANEL_API_TIMEOUT", "1s")]).await;
    bot.panel.state.lock().unwrap().delay = Duration::from_millis(1500);
    interact(&bot.app, &click(&format!("card:reset:{}:alice", now()), &[MODERATOR_ROLE])).await;
    let audit = poll_until("the attempt audited", || async {
        logs().into_iter().find(|line| line.contains("audit:") && line.contains("reset alice's usage"))
    })
    .await;
    assert!(audit.contains(r#""moderator" (1500000000000000001)"#) && audit.contains("did not confirm"), "{audit}");
}

#[tokio::test]
async fn extending_a_user_who_never_expires_says_nothing_changed_and_audits_nothing() {
    let bot = start(&[]).await;
    bot.panel.state.lock().unwrap().users[0]["expire"] = Value::Null;
    let answer = interact(&bot.app, &click(&format!("card:extend30:{}:alice", now()), &[MODERATOR_ROLE])).await;
    let shown = text_of(&answer);
    assert!(shown.contains("never expires") && !shown.contains("extended alice"), "{shown}");
    assert_eq!(bot.panel.user("alice")["expire"], Value::Null);
    assert!(!logs().iter().any(|line| line.contains("extended alice")), "an extension that did not happen was audited");
}
