//! The fake Discord's channel webhooks, as Discord's REST API documents them for a bot
//! (`Authorization: Bot <token>`): `POST /channels/{id}/webhooks` makes a webhook owned by the
//! application (its `application_id` set, a token of its own), `GET /channels/{id}/webhooks` lists
//! the channel's webhooks with their tokens (a person's webhook among them, `application_id` null).
//!
//! Answers, each Discord's documented code:
//! * the bot lacks Manage Webhooks: 403, code 50013 ("Missing Permissions");
//! * no `Bot` authorisation: 401, code 0 ("401: Unauthorized").
//!
//! As Discord does, a message's `components` are kept only when sent through an application-owned
//! webhook with `?with_components=true`; otherwise they are dropped without an error. Tests delete
//! webhooks by hand (executing a deleted one is 404, code 10015) and make channels forums.

use serde_json::{json, Value};

/// The application whose bot token the relay uses in the tests (the interaction fixtures' too).
pub const APPLICATION_ID: &str = "1234567890123456789";

/// Ids the fake gives the webhooks it makes start here (snowflake-sized).
const FIRST_HOOK_ID: u64 = 1_200_000_000_000_000_000;

/// A webhook the application made.
#[derive(Debug, Clone)]
pub struct AppHook {
    pub id: u64,
    pub channel: u64,
    pub token: String,
    pub deleted: bool,
}

/// What the fake knows of channels and the application's webhooks.
#[derive(Debug, Default)]
pub struct Channels {
    pub hooks: Vec<AppHook>,
    /// The bot lacks Manage Webhooks everywhere.
    pub forbidden: bool,
    /// Channels that are forums: a webhook made there is a forum webhook.
    pub forums: Vec<u64>,
    /// Every call to the channel endpoints: (method, path).
    pub calls: Vec<(String, String)>,
    /// Answers for the next calls of a method, in order, instead of the normal ones.
    pub scripted: Vec<Scripted>,
}

/// A scripted answer to the next call of `method` (`GET` or `POST`): `status` with Discord's body
/// for it; a `POST` with `made` makes the webhook all the same (the answer was lost on the way).
#[derive(Debug, Clone)]
pub struct Scripted {
    pub method: &'static str,
    pub status: u16,
    pub made: bool,
}

impl Scripted {
    fn body(&self) -> Value {
        match self.status {
            429 => json!({"message": "You are being rate limited.", "retry_after": 0.3, "global": false}),
            status => json!({"message": format!("{status}: Server Error"), "code": 0}),
        }
    }
}

impl Channels {
    /// The token of an application webhook `id` that was not deleted.
    pub fn token_of(&self, id: u64) -> Option<&str> {
        self.hooks.iter().find(|hook| hook.id == id && !hook.deleted).map(|hook| hook.token.as_str())
    }

    pub fn is_app_hook(&self, id: u64) -> bool {
        self.hooks.iter().any(|hook| hook.id == id)
    }

    /// `POST /channels/{channel}/webhooks`: the status and body, and the new webhook if one was made.
    pub fn create(&mut self, channel: u64, authorization: Option<&str>, body: &str) -> (u16, Value, Option<AppHook>) {
        self.calls.push(("POST".into(), format!("/channels/{channel}/webhooks")));
        if let Some(refused) = self.refusal(authorization) {
            return (refused.0, refused.1, None);
        }
        let scripted = self.next_scripted("POST");
        let name = serde_json::from_str::<Value>(body).ok().and_then(|b| b["name"].as_str().map(str::to_owned));
        let Some(name) = name.filter(|n| (1..=80).contains(&n.chars().count())) else {
            return (400, json!({"code": 50035, "message": "Invalid Form Body"}), None);
        };
        if name.to_lowercase().contains("discord") || name.to_lowercase().contains("clyde") {
            return (400, json!({"code": 50035, "message": "Invalid Form Body", "errors": {"name": "refused"}}), None);
        }
        let id = FIRST_HOOK_ID + self.hooks.len() as u64;
        let hook = AppHook { id, channel, token: format!("app-token_{id}_{}", "Xy0".repeat(16)), deleted: false };
        self.hooks.push(hook.clone());
        match scripted {
            Some(scripted) if scripted.made => (scripted.status, scripted.body(), Some(hook)),
            Some(scripted) => {
                self.hooks.pop();
                (scripted.status, scripted.body(), None)
            }
            None => (200, describe(&hook, &name), Some(hook)),
        }
    }

    fn next_scripted(&mut self, method: &str) -> Option<Scripted> {
        let at = self.scripted.iter().position(|scripted| scripted.method == method)?;
        Some(self.scripted.remove(at))
    }

    /// `GET /channels/{channel}/webhooks`.
    pub fn list(&mut self, channel: u64, authorization: Option<&str>, person_made: (u64, &str)) -> (u16, Value) {
        self.calls.push(("GET".into(), format!("/channels/{channel}/webhooks")));
        if let Some(refused) = self.refusal(authorization) {
            return refused;
        }
        if let Some(scripted) = self.next_scripted("GET") {
            return (scripted.status, scripted.body());
        }
        let (id, token) = person_made;
        let mut listed = vec![json!({
            "type": 1, "id": id.to_string(), "name": "Captain Hook", "avatar": null,
            "channel_id": channel.to_string(), "guild_id": "1100000000000000001", "application_id": null,
            "token": token, "url": format!("https://discord.com/api/webhooks/{id}/{token}"),
        })];
        let ours = self.hooks.iter().filter(|hook| hook.channel == channel && !hook.deleted);
        listed.extend(ours.map(|hook| describe(hook, "Marzban relay")));
        (200, Value::Array(listed))
    }

    fn refusal(&self, authorization: Option<&str>) -> Option<(u16, Value)> {
        if !authorization.is_some_and(|a| a.starts_with("Bot ") && a.len() > 4) {
            return Some((401, json!({"message": "401: Unauthorized", "code": 0})));
        }
        self.forbidden.then(|| (403, json!({"message": "Missing Permissions", "code": 50013})))
    }
}

fn describe(hook: &AppHook, name: &str) -> Value {
    json!({
        "type": 1, "id": hook.id.to_string(), "name": name, "avatar": null,
        "channel_id": hook.channel.to_string(), "guild_id": "1100000000000000001",
        "application_id": APPLICATION_ID, "token": hook.token,
        "url": format!("https://discord.com/api/webhooks/{}/{}", hook.id, hook.token),
    })
}

/// Whether Discord keeps the components of a message to webhook `id` with `query`.
pub fn keeps_components(channels: &Channels, id: u64, query: &str) -> bool {
    channels.is_app_hook(id) && query.split('&').any(|pair| pair == "with_components=true")
}

/// Discord's limits on a message's components (action rows of one string select), checked
/// without any of the relay's code.
pub fn validate(message: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(rows) = message.get("components").and_then(Value::as_array) else { return problems };
    if rows.len() > 5 {
        problems.push(format!("components: {} rows > 5", rows.len()));
    }
    let len = |v: &Value| v.as_str().map_or(0, |s| s.chars().count());
    for (i, row) in rows.iter().enumerate() {
        for (j, item) in row["components"].as_array().cloned().unwrap_or_default().iter().enumerate() {
            let at = format!("components.{i}.components.{j}");
            if item["type"] == 3 {
                let options = item["options"].as_array().cloned().unwrap_or_default();
                if !(1..=25).contains(&options.len()) {
                    problems.push(format!("{at}.options: {} not in 1..=25", options.len()));
                }
                for key in ["label", "value"] {
                    if options.iter().any(|o| !(1..=100).contains(&len(&o[key]))) {
                        problems.push(format!("{at}.options.{key}: not 1 to 100 characters"));
                    }
                }
                if len(&item["placeholder"]) > 150 || !(1..=100).contains(&len(&item["custom_id"])) {
                    problems.push(format!("{at}: placeholder or custom_id too long"));
                }
            }
        }
    }
    problems
}
