//! Discord's REST API for the bot: editing a deferred response
//! (`PATCH /webhooks/{application}/{token}/messages/@original`, authorised by the interaction's
//! token) and registering the slash commands (`PUT /applications/{application}/guilds/{guild}/commands`,
//! with the bot token). No URL is ever logged: it holds the interaction's token.

use std::time::Duration;

use serde_json::{json, Value};

use super::panels::MAX_PANELS;
use super::settings::BotSettings;
use crate::discord::redact;
use crate::panel::{Redacted, USERNAME_MAX_CHARS};

/// The most one REST call may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// An interaction token is at most this long, of URL-safe characters (Discord's are ~200).
const MAX_TOKEN_CHARS: usize = 1000;

pub struct Rest {
    pub(super) http: reqwest::Client,
    pub(super) base: String,
    application_id: u64,
    pub(super) bot_token: Option<Redacted>,
}

impl Rest {
    pub fn new(settings: &BotSettings) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("DiscordBot (marzban-discord-relay, ", env!("CARGO_PKG_VERSION"), ")"))
            .timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| format!("cannot build the Discord REST client: {err}"))?;
        Ok(Self {
            http,
            base: settings.api_base.clone(),
            application_id: settings.application_id,
            bot_token: settings.bot_token.clone(),
        })
    }

    /// Replaces the deferred response of the interaction with `token` by `body`.
    pub async fn edit_original(&self, token: &str, body: &impl serde::Serialize) -> Result<(), String> {
        let token_ok = (1..=MAX_TOKEN_CHARS).contains(&token.len())
            && token.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !token_ok {
            return Err("the interaction's token is not usable in a URL".to_owned());
        }
        let url = format!("{}/webhooks/{}/{token}/messages/@original", self.base, self.application_id);
        let body = serde_json::to_vec(body).map_err(|err| err.to_string())?;
        let response = self
            .http
            .patch(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|err| err.without_url().to_string())?;
        answered(response).await
    }
}

/// The slash commands: `/user <username>` (the username autocompleted from the panel), `/stats`
/// and `/report`, for administrators by default (a server's admin can give them to other roles
/// under Server Settings → Integrations). With several `panels` (labels, the default first),
/// `/user` and `/stats` get a `panel` option choosing one.
pub fn commands(panels: &[String]) -> Value {
    let panel = (panels.len() > 1).then(|| {
        let choices: Vec<Value> =
            panels.iter().take(MAX_PANELS).map(|label| json!({"name": label, "value": label})).collect();
        json!({"type": 3, "name": "panel", "description": "Which panel (default: the first)", "required": false,
            "choices": choices})
    });
    // `/report` is the relay's own tally, of no one panel: it takes no `panel` option.
    let command = |name: &str, description: &str, mut options: Vec<Value>| {
        if name != "report" {
            options.extend(panel.clone());
        }
        json!({"name": name, "type": 1, "description": description, "default_member_permissions": "8",
            "contexts": [0], "options": options})
    };
    let username = json!({
        "type": 3,
        "name": "username",
        "description": "The username on the panel",
        "required": true,
        "min_length": 1,
        "max_length": USERNAME_MAX_CHARS,
        "autocomplete": true,
    });
    json!([
        command("user", "Show a user of the panel, with buttons to act on them", vec![username]),
        command("stats", "Users by status, online now, traffic and version, per panel", Vec::new()),
        command("report", "The current period's report so far", Vec::new()),
    ])
}

/// Registers [`commands`] for the default panel only; see [`register_commands_for`].
pub async fn register_commands(settings: BotSettings) {
    register_commands_for(settings, Vec::new()).await;
}

/// Registers [`commands`] for `panels` (the bot's [`super::Bot::panel_labels`]) in every guild
/// of `settings` with one bulk overwrite each; logs the outcome (never the token). Does nothing
/// without a bot token or guilds.
pub async fn register_commands_for(settings: BotSettings, panels: Vec<String>) {
    let Ok(rest) = Rest::new(&settings) else {
        return;
    };
    let Some(token) = &rest.bot_token else {
        return;
    };
    if settings.guild_ids.is_empty() {
        log::warn!("DISCORD_BOT_TOKEN is set but DISCORD_GUILD_IDS is not: the slash commands are not registered");
        return;
    }
    let body = commands(&panels).to_string();
    for guild in &settings.guild_ids {
        let url = format!("{}/applications/{}/guilds/{guild}/commands", rest.base, rest.application_id);
        let sent = rest
            .http
            .put(url)
            .header(reqwest::header::AUTHORIZATION, format!("Bot {}", token.expose()))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await;
        let outcome = match sent {
            Ok(response) => answered(response).await,
            Err(err) => Err(err.without_url().to_string()),
        };
        match outcome {
            Ok(()) => log::info!("bot: the slash commands are registered in guild {guild}"),
            Err(err) => log::error!("bot: cannot register the slash commands in guild {guild}: {err}"),
        }
    }
}

/// `Ok` for a 2xx; otherwise the status and the start of Discord's answer, redacted.
async fn answered(response: reqwest::Response) -> Result<(), String> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let text: String = redact(&text, None).chars().filter(|c| !c.is_control()).take(200).collect();
    Err(format!("Discord answered HTTP {}: {text}", status.as_u16()))
}
