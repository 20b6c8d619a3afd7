//! What must never happen: a ping from panel text, a secret reaching Discord or the logs.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_discord::FakeDiscord;
use crate::helpers::{every_capture, fixture, logs, spawn_app, spawn_app_in, Options};

#[tokio::test]
async fn a_note_with_mentions_neither_pings_nor_renders_as_markdown() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let mut events: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_created.json")).unwrap();
    events[0]["user"]["note"] = json!("@everyone <@&1> **free** [link](https://x.example)");
    events[0]["username"] = json!("@here");

    assert_eq!(app.post(serde_json::to_string(&events).unwrap()).await.status(), 200);
    discord.wait_for_embeds(1, Duration::from_secs(30)).await;
    let message = &discord.messages()[0];
    assert_eq!(message["allowed_mentions"]["parse"], json!([]));
    let embed = &message["embeds"][0];
    assert_eq!(embed["description"], r"📝 \@everyone \<\@&1\> \*\*free\*\* \[link\](https://x.example)");
    assert_eq!(embed["title"], r"🆕 User created: \@here");
    app.stop().await;
}

#[tokio::test]
async fn hidden_characters_and_markdown_structure_in_panel_text_are_neutralised_in_every_direction() {
    let mut events: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_created.json")).unwrap();
    // U+202E shows "ad\u{202E}nimgpj.exe" as "adexe.jpgnim"; U+200B and U+2060 hide in a name.
    let username = "ad\u{202E}nim\u{200B}gpj.exe\u{2060}";
    events[0]["username"] = json!(username);
    events[0]["user"]["username"] = json!(username);
    events[0]["user"]["note"] =
        json!("1. free\u{0}\u{1b}[2J\r\n- item\n> quote\n## head\n\u{2067}x\u{2069}\u{200D}y\u{FEFF}");
    let body = serde_json::to_string(&events).unwrap();

    for (lang, title, description) in [
        ("en", "🆕 User created: adnimgpj.exe", "📝 1\\. free\\[2J\n\\- item\n\\> quote\n\\#\\# head\nxy"),
        (
            "fa",
            "\u{2067}🆕 کاربر ساخته شد: \u{2068}adnimgpj.exe\u{2069}\u{2069}",
            "\u{2067}📝 \u{2068}1\\. free\\[2J\u{2069}\u{2069}\n\u{2067}\u{2068}\\- item\u{2069}\u{2069}\n\u{2067}\u{2068}\\> quote\u{2069}\u{2069}\n\u{2067}\u{2068}\\#\\# head\u{2069}\u{2069}\n\u{2067}\u{2068}xy\u{2069}\u{2069}",
        ),
    ] {
        let discord = FakeDiscord::start().await;
        let dir = tempfile::tempdir().unwrap();
        let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("TEMPLATE_LANG", lang)).await;

        assert_eq!(app.post(body.clone()).await.status(), 200);
        let embed = discord.wait_for_embeds(1, Duration::from_secs(30)).await.remove(0);
        assert_eq!(embed["title"], title, "{lang}");
        assert_eq!(embed["description"], description, "{lang}");
        for text in &every_string(&discord.messages()[0]) {
            let hidden = text.chars().find(|&c| {
                (c.is_control() && c != '\n')
                    || ('\u{202A}'..='\u{202E}').contains(&c)
                    // Not U+200C/U+200D: Persian needs them (the fa templates' own text has some);
                    // not U+2067-U+2069: the relay isolates every Persian line and value itself.
                    || matches!(c, '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{2060}' | '\u{2066}' | '\u{FEFF}')
            });
            assert_eq!(hidden, None, "{lang}: {text:?}");
            let opened = text.matches(['\u{2067}', '\u{2068}']).count();
            assert_eq!(opened, text.matches('\u{2069}').count(), "{lang}: the relay's isolates pair up in {text:?}");
        }
        app.stop().await;
    }
}

/// Every string in `value`, at any depth.
fn every_string(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Object(map) => map.values().flat_map(every_string).collect(),
        Value::Array(items) => items.iter().flat_map(every_string).collect(),
        _ => Vec::new(),
    }
}

/// Values from the fixtures that must never leave the relay.
pub fn secret_values() -> Vec<String> {
    let mut secrets = Vec::new();
    for (_, body) in every_capture() {
        let value: Value = serde_json::from_str(&body).unwrap();
        collect(&value, &mut secrets);
    }
    secrets.sort();
    secrets.dedup();
    secrets
}

fn collect(value: &Value, secrets: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let secret_key =
                    ["links", "subscription_url", "proxies", "proxy_settings", "key", "discord_webhook", "telegram_id"]
                        .contains(&key.as_str());
                if secret_key {
                    strings(value, secrets);
                } else {
                    collect(value, secrets);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, secrets)),
        _ => {}
    }
}

fn strings(value: &Value, secrets: &mut Vec<String>) {
    match value {
        Value::String(s) if s.len() >= 8 => {
            secrets.push(s.clone());
            // A subscription token also counts without its path.
            if let Some(token) = s.rsplit('/').next().filter(|t| t.len() >= 16) {
                secrets.push(token.to_owned());
            }
        }
        Value::Number(n) if n.to_string().len() >= 6 => secrets.push(n.to_string()),
        Value::Object(map) => map.values().for_each(|v| strings(v, secrets)),
        Value::Array(items) => items.iter().for_each(|v| strings(v, secrets)),
        _ => {}
    }
}

#[tokio::test]
async fn no_secret_from_any_capture_reaches_discord_or_the_logs() {
    // Arrange: subscription tokens and URLs, proxy ids and passwords, Marzneshin keys, admins'
    // Discord webhooks and Telegram ids, from every real body of the three panels.
    let secrets = secret_values();
    assert!(secrets.len() > 100, "the captures hold links, tokens, keys and proxy ids: {}", secrets.len());
    let discord = FakeDiscord::start().await;
    // Folding off: every event of every capture is rendered and sent.
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("FOLD_UPDATES", "false")).await;

    // Act
    let mut stored = 0;
    for (name, body) in every_capture() {
        let response = app.post(body).await;
        assert_eq!(response.status(), 200, "{name}");
        let receipt: Value = response.json().await.unwrap();
        stored += receipt["accepted"].as_u64().unwrap() - receipt["duplicates"].as_u64().unwrap();
    }
    discord.wait_for_embeds(stored as usize, Duration::from_secs(30)).await;
    app.stop().await;

    // Assert

    let sent: Vec<String> = discord.requests().into_iter().map(|r| r.body).collect();
    let logged = logs();
    for secret in &secrets {
        assert!(!sent.iter().any(|body| body.contains(secret.as_str())), "{secret} was sent to Discord");
        assert!(!logged.iter().any(|line| line.contains(secret.as_str())), "{secret} was logged");
    }
}
