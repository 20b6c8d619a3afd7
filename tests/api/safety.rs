//! What must never happen: a ping from panel text, a secret reaching Discord or the logs.

use std::time::Duration;

use serde_json::{json, Value};

use crate::fake_discord::FakeDiscord;
use crate::helpers::{every_capture, fixture, logs, spawn_app};

#[tokio::test]
async fn a_note_with_mentions_neither_pings_nor_renders_as_markdown() {
    let discord = FakeDiscord::start().await;
    let (app, _dir) = spawn_app(&discord).await;
    let mut events: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_created.json")).unwrap();
    events[0]["user"]["note"] = json!("@everyone <@&1> **free** [link](https://x.example)");
    events[0]["username"] = json!("@here");

    assert_eq!(app.post(serde_json::to_string(&events).unwrap()).await.status(), 200);
    discord.wait_for_embeds(1, Duration::from_secs(10)).await;
    let message = &discord.messages()[0];
    assert_eq!(message["allowed_mentions"]["parse"], json!([]));
    let embed = &message["embeds"][0];
    assert_eq!(embed["description"], r"📝 \@everyone \<\@&1\> \*\*free\*\* \[link\](https://x.example)");
    assert_eq!(embed["title"], r"🆕 User created: \@here");
    app.stop().await;
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
    let (app, _dir) = spawn_app(&discord).await;

    // Act
    let mut stored = 0;
    for (name, body) in every_capture() {
        let response = app.post(body).await;
        assert_eq!(response.status(), 200, "{name}");
        let receipt: Value = response.json().await.unwrap();
        stored += receipt["accepted"].as_u64().unwrap() - receipt["duplicates"].as_u64().unwrap();
    }
    discord.wait_for_embeds(stored as usize, Duration::from_secs(20)).await;
    app.stop().await;

    // Assert

    let sent: Vec<String> = discord.requests().into_iter().map(|r| r.body).collect();
    let logged = logs();
    for secret in &secrets {
        assert!(!sent.iter().any(|body| body.contains(secret.as_str())), "{secret} was sent to Discord");
        assert!(!logged.iter().any(|line| line.contains(secret.as_str())), "{secret} was logged");
    }
}
