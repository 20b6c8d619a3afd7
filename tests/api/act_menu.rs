//! The "Act on a user…" menu under the relay's own messages: choosing a user opens their live card
//! (the one `/user` gives, with its buttons) as a reply only the chooser sees, after the same
//! checks of who may act.

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

use crate::app_webhooks::{accepted, limited, menu_of};
use crate::bot::{http_bot, panel_api};
use crate::fake_bot_peers::FakePanel;
use crate::fake_discord::FakeDiscord;
use crate::helpers::{spawn_app_in, Options, TestApp, SECRET};

const SIGNING_KEY: [u8; 32] = [7; 32];
const MODERATOR_ROLE: &str = "1400000000000000001";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A choice of `username` in the menu `custom_id`, by a member with `roles` (Discord's
/// `message_component` interaction for a string select, on the relay's webhook message).
fn choice(custom_id: &str, username: &str, roles: &[&str]) -> Value {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_300_000_000_000_000_500);
    let path = format!("{}/tests/fixtures/discord-interactions/component_select.json", env!("CARGO_MANIFEST_DIR"));
    let mut choice: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    choice["id"] = json!(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_string());
    choice["data"]["custom_id"] = json!(custom_id);
    choice["data"]["values"] = json!([username]);
    choice["member"]["roles"] = json!(roles);
    choice
}

async fn interact(app: &TestApp, interaction: &Value) -> Value {
    let body = interaction.to_string();
    let timestamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string();
    let signature = SigningKey::from_bytes(&SIGNING_KEY).sign(&[timestamp.as_bytes(), body.as_bytes()].concat());
    let response = app
        .client
        .post(format!("{}/interactions", app.address))
        .header("x-signature-ed25519", hex(&signature.to_bytes()))
        .header("x-signature-timestamp", timestamp)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn options(panel: &FakePanel, discord: &FakeDiscord, panel_name: Option<&str>) -> Options {
    let options = panel_api(http_bot(Options::new(), &discord.api_base()), &panel.url(), "marzban");
    match panel_name {
        Some(name) => options.var("PANEL_NAME", name),
        None => options,
    }
}

async fn start(panel: &FakePanel, discord: &FakeDiscord, dir: &std::path::Path) -> TestApp {
    spawn_app_in(dir, options(panel, discord, Some("eu1"))).await
}

#[tokio::test]
async fn choosing_a_user_in_the_menu_opens_their_live_card_for_the_chooser_only() {
    let (panel, discord, dir) = (FakePanel::start().await, FakeDiscord::start().await, tempfile::tempdir().unwrap());
    let app = start(&panel, &discord, dir.path()).await;

    let card = interact(&app, &choice("act:eu1", "alice", &[MODERATOR_ROLE])).await;

    assert_eq!((card["type"].as_u64(), card["data"]["flags"].as_u64()), (Some(4), Some(64)), "{card}");
    assert_eq!(card["data"]["embeds"][0]["title"], "alice");
    let shown = card.to_string();
    assert!(shown.contains("card:reset:") && shown.contains("card:refresh:"), "the card's buttons: {shown}");
    assert!(!shown.contains("/sub/"), "{shown}");
    assert_eq!(panel.calls(), vec![("GET".to_owned(), "/api/user/alice".to_owned())]);
    // A digest's second menu (users 26 to 50) opens the card the same way.
    let card = interact(&app, &choice("act:eu1:2", "alice", &[MODERATOR_ROLE])).await;
    assert_eq!(card["data"]["embeds"][0]["title"], "alice", "{card}");
    app.stop().await;
}

#[tokio::test]
async fn the_menu_refuses_who_may_not_act_and_another_panels_message() {
    let (panel, discord, dir) = (FakePanel::start().await, FakeDiscord::start().await, tempfile::tempdir().unwrap());
    let app = start(&panel, &discord, dir.path()).await;

    let stranger = interact(&app, &choice("act:eu1", "alice", &["1400000000000000099"])).await;
    let other_panel = interact(&app, &choice("act:us2", "alice", &[MODERATOR_ROLE])).await;
    let not_a_name = interact(&app, &choice("act:eu1", "alice; drop", &[MODERATOR_ROLE])).await;

    assert!(stranger.to_string().contains("may not act"), "{stranger}");
    assert!(other_panel.to_string().contains("panel us2"), "{other_panel}");
    assert!(not_a_name.to_string().contains("not a username"), "{not_a_name}");
    for refused in [&stranger, &other_panel, &not_a_name] {
        assert_eq!(refused["data"]["flags"].as_u64(), Some(64), "{refused}");
    }
    assert!(panel.calls().is_empty(), "nothing refused reached the panel");
    app.stop().await;
}

#[tokio::test]
async fn a_panel_name_of_any_length_and_with_colons_keeps_the_menu_and_its_card() {
    // Arrange: PANEL_NAME is free text; this one is longer than a custom_id and holds colons.
    let (panel, discord, dir) = (FakePanel::start().await, FakeDiscord::start().await, tempfile::tempdir().unwrap());
    let name = format!("Frankfurt: production cluster {}", "x".repeat(90));
    let options = options(&panel, &discord, Some(&name))
        .var("WEBHOOK_SECRET", SECRET)
        .var("DISCORD_CHANNEL_ID", "1100000000000000002")
        .var("DISCORD_BOT_TOKEN", "MTIzNDU2Nzg5MDEyMzQ1Njc4OQ.GfAkE.bot-token-never-shown");
    let app = spawn_app_in(dir.path(), options).await;

    // Act: alice's event reaches Discord with its menu, and a moderator chooses her in it.
    assert_eq!(app.post(limited("alice")).await.status(), 200);
    app.wait_until_settled().await;
    let sent = accepted(&discord);
    assert_eq!(sent.len(), 1, "Discord took the message with its menu (not a dead letter)");
    let (custom_id, users) = menu_of(&sent[0].1);
    let card = interact(&app, &choice(&custom_id, "alice", &[MODERATOR_ROLE])).await;

    // Assert
    assert_eq!(users, vec!["alice".to_owned()]);
    assert!(custom_id.chars().count() <= 100, "{custom_id}");
    assert_eq!(card["data"]["embeds"][0]["title"], "alice", "the bot's own panel: {card}");
    app.stop().await;
}

#[tokio::test]
async fn a_bot_without_panel_name_refuses_a_labelled_panels_menu() {
    // Arrange: two panels post to their own paths; the bot's API is the one without a name.
    let (panel, discord, dir) = (FakePanel::start().await, FakeDiscord::start().await, tempfile::tempdir().unwrap());
    let options = options(&panel, &discord, None).var("PANELS", "eu1:secret-of-eu1,us2:secret-of-us2");
    let app = spawn_app_in(dir.path(), options).await;

    // Act: a choice in a message of eu1's, where a namesake of eu1's alice may live on the bot's panel.
    let other_panel = interact(&app, &choice("act:eu1", "alice", &[MODERATOR_ROLE])).await;

    // Assert: refused, and the panel never asked.
    assert!(other_panel.to_string().contains("PANEL_NAME"), "{other_panel}");
    assert_eq!(other_panel["data"]["flags"].as_u64(), Some(64), "{other_panel}");
    assert!(panel.calls().is_empty(), "the namesake's card was not shown: {:?}", panel.calls());
    app.stop().await;
}
