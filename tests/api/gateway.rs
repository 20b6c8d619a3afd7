//! The Discord application over the gateway (the default transport): a fake gateway on
//! 127.0.0.1 brings `/user` as Discord does, the card goes to the interaction's callback on the
//! fake REST API; the gateway is lost, resumed, invalidated and refused, while panel events keep
//! being delivered.

use std::time::Duration;

use serde_json::{json, Value};

use crate::bot::panel_api;
use crate::fake_bot_peers::{FakeGateway, FakePanel, FakeRest, GatewayCommand, GATEWAY_TOKEN};
use crate::fake_discord::FakeDiscord;
use crate::helpers::{fixture, logs, poll_until, spawn_app_in, Options, TestApp};

const APPLICATION_ID: &str = "1234567890123456789";
const GUILD: &str = "1100000000000000001";
const MODERATOR_ROLE: &str = "1400000000000000001";

struct Relay {
    app: TestApp,
    gateway: FakeGateway,
    rest: FakeRest,
    discord: FakeDiscord,
    panel: FakePanel,
    _dir: tempfile::TempDir,
}

/// A relay with a bot token and no public key, delivering panel events to a fake Discord.
async fn start(token: &str) -> Relay {
    let (panel, rest, gateway, discord) =
        (FakePanel::start().await, FakeRest::start().await, FakeGateway::start().await, FakeDiscord::start().await);
    rest.use_gateway(&gateway);
    let options = Options::delivering_to(&discord)
        .var("DISCORD_BOT_TOKEN", token)
        .var("DISCORD_APPLICATION_ID", APPLICATION_ID)
        .var("DISCORD_API_BASE", &rest.base())
        .var("DISCORD_GUILD_IDS", GUILD)
        .var("DISCORD_ACTORS", &format!("role:{MODERATOR_ROLE}"))
        .var("DISCORD_GATEWAY_GRACE", "1s");
    let options = panel_api(options, &panel.url(), "marzban");
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), options).await;
    Relay { app, gateway, rest, discord, panel, _dir: dir }
}

/// `/user <username>` from the moderator, as the gateway's INTERACTION_CREATE carries it.
fn command(id: &str, username: &str) -> Value {
    let path = format!("{}/tests/fixtures/discord-interactions/command_user.json", env!("CARGO_MANIFEST_DIR"));
    let mut command: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    command["id"] = json!(id);
    command["data"]["options"][0]["value"] = json!(username);
    command
}

async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    let text = app.get("/metrics").await.text().await.ok()?;
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn ready(app: &TestApp) -> (u16, Value) {
    let response = app.get("/readyz").await;
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

/// Waits until the gateway session is live (READY or RESUMED seen by the relay).
async fn live(relay: &Relay) {
    poll_until("a live gateway session", || async {
        (metric(&relay.app, "relay_discord_gateway_connected").await == Some(1.0)).then_some(())
    })
    .await;
}

fn no_token_logged() {
    let shown: Vec<String> = logs().into_iter().filter(|line| line.contains("gateway-bot-token")).collect();
    assert!(shown.is_empty(), "the bot token was logged: {shown:?}");
}

#[tokio::test]
async fn user_over_the_gateway_gets_the_card_through_the_interaction_callback() {
    let relay = start(GATEWAY_TOKEN).await;
    live(&relay).await;
    let identify = relay.gateway.sent_with_op(2);
    assert_eq!(identify.len(), 1, "{identify:?}");
    assert_eq!(identify[0]["d"]["token"], GATEWAY_TOKEN);
    assert_eq!(identify[0]["d"]["intents"], 0, "interactions need no intents");

    assert!(relay
        .gateway
        .send(GatewayCommand::Dispatch("INTERACTION_CREATE", command("1300000000000000501", "alice"))));
    let (id, card) = poll_until("the callback", || async { relay.rest.callbacks().into_iter().next() }).await;
    assert_eq!(id, "1300000000000000501");
    assert_eq!((card["type"].as_u64(), card["data"]["flags"].as_u64()), (Some(4), Some(64)), "{card}");
    let text = card.to_string();
    assert!(text.contains("\"title\":\"alice\"") && text.contains("Refresh"), "the live card: {card}");
    assert!(!text.contains("/sub/"), "never the subscription link");
    let path = &relay.rest.calls().into_iter().find(|call| call.path.ends_with("/callback")).unwrap().path;
    let token = command("1", "alice")["token"].as_str().unwrap().to_owned();
    assert_eq!(path, &format!("/api/v10/interactions/1300000000000000501/{token}/callback"));
    assert_eq!(metric(&relay.app, "relay_discord_interactions_total").await, Some(1.0));

    // The command was registered with the token alone (no public key).
    let registered = poll_until("the commands registered", || async {
        relay.rest.calls().into_iter().find(|call| call.path.ends_with(&format!("/guilds/{GUILD}/commands")))
    })
    .await;
    assert_eq!(registered.authorization, Some(format!("Bot {GATEWAY_TOKEN}")));

    // No public key: no HTTP endpoint; heartbeats are acknowledged and the session stays.
    let endpoint = relay.app.client.post(format!("{}/interactions", relay.app.address)).body("{}").send().await;
    assert_eq!(endpoint.unwrap().status(), 404);
    poll_until("a heartbeat with the last sequence number", || async {
        relay.gateway.sent_with_op(1).into_iter().find(|beat| beat["d"] == 2).map(|_| ())
    })
    .await;
    assert_eq!(ready(&relay.app).await.0, 200);
    no_token_logged();
}

#[tokio::test]
async fn a_lost_connection_resumes_the_session_and_an_invalid_session_identifies_again() {
    let relay = start(GATEWAY_TOKEN).await;
    live(&relay).await;
    assert!(relay.gateway.send(GatewayCommand::Dispatch("INTERACTION_CREATE", command("1300000000000000601", "bob"))));
    let seq = poll_until("the event's sequence number", || async {
        let seq = relay.gateway.seq("fake-session-1");
        (seq == 2).then_some(seq)
    })
    .await;
    assert!(relay.gateway.send(GatewayCommand::Close(4000)));
    let resume = poll_until("a RESUME", || async { relay.gateway.sent_with_op(6).into_iter().next() }).await;
    assert_eq!(resume["d"]["session_id"], "fake-session-1");
    assert_eq!(resume["d"]["seq"], seq, "resumed from the last event it had");
    assert_eq!(resume["d"]["token"], GATEWAY_TOKEN);
    poll_until("the resumed session counted", || async {
        (metric(&relay.app, "relay_discord_gateway_resumes_total").await == Some(1.0)).then_some(())
    })
    .await;
    live(&relay).await;

    assert!(relay.gateway.send(GatewayCommand::InvalidSession(false)));
    poll_until("a second IDENTIFY", || async { (relay.gateway.sent_with_op(2).len() == 2).then_some(()) }).await;
    poll_until("the new session counted", || async {
        (metric(&relay.app, "relay_discord_gateway_identifies_total").await == Some(2.0)).then_some(())
    })
    .await;
    assert_eq!(relay.gateway.sent_with_op(6).len(), 1, "an invalid session is not resumed");
    // The new session works: an interaction on it is answered.
    assert!(relay
        .gateway
        .send(GatewayCommand::Dispatch("INTERACTION_CREATE", command("1300000000000000602", "alice"))));
    poll_until("the callback on the new session", || async {
        relay.rest.callbacks().into_iter().find(|(id, _)| id == "1300000000000000602")
    })
    .await;
    no_token_logged();
}

#[tokio::test]
async fn a_lost_gateway_shows_in_readyz_and_delivery_goes_on_until_it_is_back() {
    let relay = start(GATEWAY_TOKEN).await;
    live(&relay).await;
    assert_eq!(ready(&relay.app).await.0, 200);

    relay.gateway.set_down(true);
    let reasons = poll_until("/readyz naming the gateway", || async {
        let (status, body) = ready(&relay.app).await;
        (status == 503).then(|| body["reasons"].to_string())
    })
    .await;
    assert!(reasons.contains("task:gateway has no connection to Discord's gateway"), "{reasons}");
    assert_eq!(metric(&relay.app, "relay_discord_gateway_connected").await, Some(0.0));

    // The panel's events are delivered meanwhile.
    assert_eq!(relay.app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    poll_until("the event delivered", || async { (!relay.discord.embeds().is_empty()).then_some(()) }).await;

    relay.gateway.set_down(false);
    poll_until("/readyz ready again", || async { (ready(&relay.app).await.0 == 200).then_some(()) }).await;
    let reconnects = metric(&relay.app, "relay_discord_gateway_reconnects_total").await.unwrap_or_default();
    assert!(reconnects >= 1.0, "{reconnects}");
    no_token_logged();
}

#[tokio::test]
async fn a_refused_token_stops_the_retries_and_says_so_without_the_token() {
    let wrong = "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GwAy.gateway-bot-token-never-shown-but-old";
    let relay = start(wrong).await;
    // `GET /gateway/bot` answers 401: the token is refused before any websocket.
    let reason = poll_until("/readyz naming the token", || async {
        let (status, body) = ready(&relay.app).await;
        (status == 503).then(|| body["reasons"].to_string())
    })
    .await;
    assert!(reason.contains("DISCORD_BOT_TOKEN"), "{reason}");
    assert!(logs().iter().any(|line| line.contains("refused DISCORD_BOT_TOKEN")), "said in the log too");
    let asked = relay.rest.calls().iter().filter(|call| call.path.ends_with("/gateway/bot")).count();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let asked_again = relay.rest.calls().iter().filter(|call| call.path.ends_with("/gateway/bot")).count();
    assert_eq!((asked, asked_again), (1, 1), "no retries of a refused token");
    assert_eq!(relay.gateway.connections(), 0);
    no_token_logged();
}

#[tokio::test]
async fn a_gateway_that_closes_with_4004_stops_the_retries_and_says_so() {
    let relay = start(GATEWAY_TOKEN).await;
    live(&relay).await;
    // The token is reset in the portal while the relay runs: its next IDENTIFY gets 4004.
    relay.gateway.state.lock().unwrap().refuse_identify = true;
    assert!(relay.gateway.send(GatewayCommand::InvalidSession(false)));
    let reason = poll_until("/readyz naming the token", || async {
        let (status, body) = ready(&relay.app).await;
        (status == 503).then(|| body["reasons"].to_string())
    })
    .await;
    assert!(reason.contains("task:gateway Discord refused DISCORD_BOT_TOKEN (gateway close code 4004"), "{reason}");
    let connections = relay.gateway.connections();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(relay.gateway.connections(), connections, "no retries after 4004");
    assert_eq!(metric(&relay.app, "relay_discord_gateway_connected").await, Some(0.0));
    // Delivery is not affected.
    assert_eq!(relay.app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    poll_until("the event delivered", || async { (!relay.discord.embeds().is_empty()).then_some(()) }).await;
    no_token_logged();
}

#[tokio::test]
async fn a_slow_panel_over_the_gateway_is_deferred_then_the_card_is_edited_in() {
    let relay = start(GATEWAY_TOKEN).await;
    relay.panel.state.lock().unwrap().delay = Duration::from_secs(3);
    live(&relay).await;
    assert!(relay
        .gateway
        .send(GatewayCommand::Dispatch("INTERACTION_CREATE", command("1300000000000000701", "alice"))));
    let (_, deferred) = poll_until("the deferral", || async { relay.rest.callbacks().into_iter().next() }).await;
    assert_eq!(deferred["type"], 5, "deferred: {deferred}");
    let edit = poll_until("the card edited in", || async {
        relay.rest.calls().into_iter().find(|call| call.method == "PATCH" && call.path.ends_with("/messages/@original"))
    })
    .await;
    assert!(edit.body.to_string().contains("\"title\":\"alice\""), "{}", edit.body);
    no_token_logged();
}

#[tokio::test]
async fn an_outage_after_an_invalidated_session_counts_from_the_invalidation() {
    let relay = start(GATEWAY_TOKEN).await;
    live(&relay).await;
    // The session has been live a while when Discord invalidates it and the gateway stays away.
    tokio::time::sleep(Duration::from_secs(6)).await;
    relay.gateway.state.lock().unwrap().down = true;
    assert!(relay.gateway.send(GatewayCommand::InvalidSession(false)));
    let reasons = poll_until("/readyz naming the gateway", || async {
        let (status, body) = ready(&relay.app).await;
        (status == 503).then(|| body["reasons"].to_string())
    })
    .await;
    let lasted: u64 = reasons
        .split("(for ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{reasons}"));
    assert!(lasted < 6, "the outage counts from the invalidation, not from the relay's start: {reasons}");
}

#[tokio::test]
async fn no_session_is_started_when_discord_says_the_days_starts_are_used_up() {
    let (rest, gateway) = (FakeRest::start().await, FakeGateway::start().await);
    rest.use_gateway(&gateway);
    *rest.sessions_left.lock().unwrap() = 0;
    let options = Options::new()
        .var("DISCORD_BOT_TOKEN", GATEWAY_TOKEN)
        .var("DISCORD_APPLICATION_ID", APPLICATION_ID)
        .var("DISCORD_API_BASE", &rest.base())
        .var("DISCORD_GATEWAY_GRACE", "0");
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), options).await;
    poll_until("Discord asked where the gateway is", || async {
        rest.calls().iter().any(|call| call.path.ends_with("/gateway/bot")).then_some(())
    })
    .await;
    // An IDENTIFY past the limit would get the token reset by Discord: none is sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(gateway.connections(), 0);
    assert!(logs().iter().any(|line| line.contains("session_start_limit")), "said in the log");
    assert_eq!(ready(&app).await.0, 503, "and in /readyz");
}
