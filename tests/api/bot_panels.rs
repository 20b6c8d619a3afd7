//! The bot asking several panels: the handler built as start-up builds it (`Bot::new` for the
//! default panel, `with_panels` for the others), fed interactions directly (the HTTP endpoint and
//! its signature are the same for one panel or several: see `bot.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use marzban_discord_relay::bot::Bot;
use marzban_discord_relay::config::Config;
use marzban_discord_relay::panel::PanelClient;
use serde_json::{json, Value};
use serenity::model::application::Interaction;

use crate::bot::{command, fixture, fresh_id, hex, now, APPLICATION_ID, GUILD, MODERATOR_ROLE, SIGNING_KEY};
use crate::fake_bot_peers::{FakePanel, FakeRest, Shape, PANEL_PASSWORD, PANEL_USER};

/// The bot asking `eu1` (the default, `PANEL_API_URL`) and `de2`, each a fake panel.
async fn two_panels() -> (Bot, FakePanel, FakePanel, FakeRest) {
    let (eu1, de2, rest) =
        (FakePanel::start().await, FakePanel::start_as(Shape::PasarGuard).await, FakeRest::start().await);
    let key = hex(ed25519_dalek::SigningKey::from_bytes(&SIGNING_KEY).verifying_key().as_bytes());
    let vars: HashMap<String, String> = [
        ("DATA_DIR", "/tmp"),
        ("DISCORD_PUBLIC_KEY", key.as_str()),
        ("DISCORD_APPLICATION_ID", APPLICATION_ID),
        ("DISCORD_API_BASE", &rest.base()),
        ("DISCORD_GUILD_IDS", GUILD),
        ("DISCORD_ACTORS", MODERATOR_ROLE),
        ("DISCORD_ACTIONS", "all"),
        ("PANEL_NAME", "eu1"),
        ("PANEL_API_URL", &eu1.url()),
        ("PANEL_API_USERNAME", PANEL_USER),
        ("PANEL_API_PASSWORD", PANEL_PASSWORD),
        ("PANEL_API_FAMILY", "marzban"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::from_vars(&vars).unwrap();
    let default = config.panel_api.clone().unwrap();
    let mut other = default.clone();
    other.url = url::Url::parse(&de2.url()).unwrap();
    other.family = None;
    let client = |settings| Arc::new(PanelClient::new(settings).unwrap());
    let panels = vec![
        (Some("eu1".into()), client(&default)),
        (Some("de2".into()), client(&other)),
        (Some("eu1".into()), client(&other)),
    ];
    let bot = Bot::new(config.bot.clone().unwrap(), panels).unwrap();
    (bot, eu1, de2, rest)
}

async fn answer(bot: &Bot, interaction: Value) -> Value {
    let interaction: Interaction = serde_json::from_value(interaction).unwrap();
    serde_json::to_value(bot.handle(interaction).await.response).unwrap()
}

fn with_panel(mut interaction: Value, panel: &str) -> Value {
    interaction["data"]["options"].as_array_mut().unwrap().push(json!({"name": "panel", "type": 3, "value": panel}));
    interaction
}

fn slash(name: &str) -> Value {
    let mut slash = command("alice", &[MODERATOR_ROLE]);
    slash["data"]["name"] = json!(name);
    slash["data"]["options"] = json!([]);
    slash
}

#[tokio::test]
async fn stats_shows_every_panel_and_a_panel_option_chooses_one() {
    let (bot, eu1, de2, _rest) = two_panels().await;
    assert_eq!(bot.panel_labels(), ["eu1", "de2"], "the default first, a label once");

    let all = answer(&bot, slash("stats")).await;
    let fields = all["data"]["embeds"][0]["fields"].as_array().unwrap();
    let names: Vec<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["eu1 · Marzban 0.8.4", "de2 · PasarGuard 5.2.1"], "{all}");

    let one = answer(&bot, with_panel(slash("stats"), "de2")).await;
    assert_eq!(one["data"]["embeds"][0]["fields"].as_array().unwrap().len(), 1, "{one}");
    assert_eq!(eu1.calls().len(), 1);
    assert_eq!(de2.calls().len(), 2);
    let unknown = answer(&bot, with_panel(slash("stats"), "nowhere")).await;
    assert!(unknown.to_string().contains("no panel of that name"), "{unknown}");
}

#[tokio::test]
async fn user_asks_the_chosen_panel_and_a_button_acts_on_the_panel_its_card_names() {
    let (bot, eu1, de2, _rest) = two_panels().await;
    let card = answer(&bot, with_panel(command("alice", &[MODERATOR_ROLE]), "de2")).await;
    assert_eq!(card["data"]["embeds"][0]["footer"]["text"], "Live from de2", "{card}");
    assert!(eu1.calls().is_empty());
    assert_eq!(de2.calls(), vec![("GET".to_owned(), "/api/user/alice".to_owned())]);

    // A click on that card: the message Discord sends with it is the card, footer and all.
    let mut click = fixture("component_button.json");
    click["id"] = json!(fresh_id());
    let drawn = time::OffsetDateTime::from_unix_timestamp(now() as i64).unwrap();
    click["message"]["timestamp"] = json!(drawn.format(&time::format_description::well_known::Rfc3339).unwrap());
    click["message"]["embeds"][0]["footer"] = json!({"text": "Live from de2"});
    let custom_id = format!("card:reset:{}:alice", now());
    click["message"]["components"] =
        json!([{"type": 1, "components": [{"type": 2, "custom_id": custom_id, "label": "x", "style": 1}]}]);
    click["data"]["custom_id"] = json!(custom_id);
    let reset = answer(&bot, click.clone()).await;
    assert!(reset.to_string().contains("reset alice's usage · de2"), "{reset}");
    assert_eq!(de2.calls().last().unwrap().1, "/api/user/alice/reset");
    assert!(eu1.calls().is_empty(), "the default panel was not touched");

    // A card without a footer naming a panel is the default panel's.
    click["id"] = json!(fresh_id());
    click["message"]["embeds"][0]["footer"] = Value::Null;
    let custom_id = format!("card:refresh:{}:alice", now());
    click["message"]["components"] =
        json!([{"type": 1, "components": [{"type": 2, "custom_id": custom_id, "label": "x", "style": 1}]}]);
    click["data"]["custom_id"] = json!(custom_id);
    answer(&bot, click).await;
    assert_eq!(eu1.calls(), vec![("GET".to_owned(), "/api/user/alice".to_owned())]);
}

#[test]
fn several_panels_give_user_and_stats_a_panel_option_with_the_labels() {
    let commands = marzban_discord_relay::bot::commands(&["eu1".to_owned(), "de2".to_owned()]);
    for (i, name) in ["user", "stats"].iter().enumerate() {
        let options = commands[i]["options"].as_array().unwrap();
        let panel = options.iter().find(|o| o["name"] == "panel").unwrap_or_else(|| panic!("{name}: {commands}"));
        assert_eq!(panel["choices"], json!([{"name": "eu1", "value": "eu1"}, {"name": "de2", "value": "de2"}]));
        assert_eq!(panel["required"], false);
    }
    assert_eq!(commands[2]["options"], json!([]), "/report is the relay's own, of no panel");
}

/// A click with `verb` on a card of alice whose footer is `footer` (`None`: no footer).
fn card_click(verb: &str, footer: Option<&str>) -> Value {
    let mut click = fixture("component_button.json");
    click["id"] = json!(fresh_id());
    let drawn = time::OffsetDateTime::from_unix_timestamp(now() as i64).unwrap();
    click["message"]["timestamp"] = json!(drawn.format(&time::format_description::well_known::Rfc3339).unwrap());
    click["message"]["embeds"][0]["footer"] = footer.map_or(Value::Null, |text| json!({"text": text}));
    let custom_id = format!("card:{verb}:{}:alice", now());
    click["message"]["components"] =
        json!([{"type": 1, "components": [{"type": 2, "custom_id": custom_id, "label": "x", "style": 1}]}]);
    click["data"]["custom_id"] = json!(custom_id);
    click
}

#[tokio::test]
async fn a_card_naming_a_panel_the_bot_no_longer_asks_acts_on_no_panel() {
    // The card was drawn from `fr3`, which has since left PANELS: its alice is not the default
    // panel's alice, so the click must not fall through to the default panel.
    let (bot, eu1, de2, _rest) = two_panels().await;
    let reset = answer(&bot, card_click("reset", Some("Live from fr3"))).await;
    assert!(reset.to_string().contains("fr3"), "the answer names the card's panel: {reset}");
    assert!(eu1.calls().is_empty(), "the default panel was not touched: {:?}", eu1.calls());
    assert!(de2.calls().is_empty(), "{:?}", de2.calls());
    // A card of the one-panel relay ("Live from the panel") is the default panel's.
    answer(&bot, card_click("refresh", Some("Live from the panel"))).await;
    assert_eq!(eu1.calls(), vec![("GET".to_owned(), "/api/user/alice".to_owned())]);
}

#[tokio::test]
async fn the_same_action_on_a_namesake_on_another_panel_is_not_refused_as_done() {
    let (bot, eu1, de2, _rest) = two_panels().await;
    let on_de2 = answer(&bot, card_click("reset", Some("Live from de2"))).await;
    assert!(on_de2.to_string().contains("reset alice's usage · de2"), "{on_de2}");
    let on_eu1 = answer(&bot, card_click("reset", Some("Live from eu1"))).await;
    assert!(on_eu1.to_string().contains("reset alice's usage · eu1"), "{on_eu1}");
    assert_eq!(eu1.calls().last().map(|c| c.1.as_str()), Some("/api/user/alice/reset"));
    assert_eq!(de2.calls().last().map(|c| c.1.as_str()), Some("/api/user/alice/reset"));
    // The same panel again within the guard's time: done once.
    let again = answer(&bot, card_click("reset", Some("Live from eu1"))).await;
    assert!(again.to_string().contains("not done twice"), "{again}");
}
