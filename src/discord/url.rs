//! The webhook URL type: parsed once at the edge, with the token kept out of every display.

use std::fmt;

use url::Url;

/// Discord's own hosts for webhooks. A URL on any other host is a reverse proxy or a test server.
const DISCORD_HOSTS: &[&str] = &[
    "discord.com",
    "discordapp.com",
    "canary.discord.com",
    "ptb.discord.com",
    "canary.discordapp.com",
    "ptb.discordapp.com",
];

/// A parsed Discord webhook URL. Its `Display` and `Debug` never show the token.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: Url,
    id: u64,
    thread_id: Option<u64>,
    /// Whether executions ask Discord to keep the message's components (`with_components=true`):
    /// set on the relay's own (application-owned) webhooks, whose interactive components Discord
    /// keeps; a webhook a person made drops them.
    with_components: bool,
}

/// Why a string is not a usable webhook URL. Messages never contain the token.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookUrlError {
    #[error("is not a URL")]
    NotAUrl,
    #[error("must use http or https, not {0}")]
    Scheme(String),
    #[error("must use https for Discord's own host {0}")]
    PlainHttpToDiscord(String),
    #[error("host {0} is not one of Discord's webhook hosts")]
    NotDiscordHost(String),
    #[error("must have a path /api/webhooks/<id>/<token> or /api/v<N>/webhooks/<id>/<token>")]
    Path,
    #[error("webhook id must be a number")]
    Id,
    #[error("webhook token may only contain letters, digits, '-' and '_'")]
    Token,
    #[error("thread_id must be a number")]
    ThreadId,
    #[error("must not contain a user name or password")]
    Credentials,
}

impl WebhookUrl {
    /// Parses a URL an admin configured: Discord's hosts over https, or any http(s) origin (a
    /// reverse proxy, a local test server) with a webhook path.
    pub fn parse(input: &str) -> Result<Self, WebhookUrlError> {
        Self::parse_with(input, false)
    }

    /// Parses a URL that came from a panel's payload: only Discord's own hosts are accepted, so a
    /// payload can never make the relay send a request anywhere else.
    pub fn parse_discord_only(input: &str) -> Result<Self, WebhookUrlError> {
        Self::parse_with(input, true)
    }

    fn parse_with(input: &str, discord_only: bool) -> Result<Self, WebhookUrlError> {
        let mut url = Url::parse(input.trim()).map_err(|_| WebhookUrlError::NotAUrl)?;
        let host = url.host_str().ok_or(WebhookUrlError::NotAUrl)?.to_ascii_lowercase();
        let on_discord = DISCORD_HOSTS.contains(&host.as_str());
        match url.scheme() {
            "https" => {}
            "http" if on_discord => return Err(WebhookUrlError::PlainHttpToDiscord(host)),
            "http" => {}
            other => return Err(WebhookUrlError::Scheme(other.to_owned())),
        }
        if discord_only && !on_discord {
            return Err(WebhookUrlError::NotDiscordHost(host));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebhookUrlError::Credentials);
        }
        let (id, token) = webhook_path(&url)?;
        let id: u64 = id.parse().map_err(|_| WebhookUrlError::Id)?;
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(WebhookUrlError::Token);
        }
        let thread_id = url
            .query_pairs()
            .find(|(key, _)| key == "thread_id")
            .map(|(_, value)| value.parse::<u64>().map_err(|_| WebhookUrlError::ThreadId))
            .transpose()?;
        url.set_query(None);
        url.set_fragment(None);
        Ok(Self { url, id, thread_id, with_components: false })
    }

    /// This webhook, its executions keeping the message's components (an application-owned
    /// webhook's).
    pub fn with_components(self) -> Self {
        Self { with_components: true, ..self }
    }

    /// Whether executions keep the message's components.
    pub fn keeps_components(&self) -> bool {
        self.with_components
    }

    /// The full URL, token included. Only for storing it; never log it.
    pub fn expose(&self) -> &str {
        self.url.as_str()
    }

    /// The token (the secret part of the path): to redact it from upstream text, or to store the
    /// relay's own webhook. Never log it.
    pub fn token(&self) -> &str {
        webhook_path(&self.url).map(|(_, token)| token).unwrap_or_default()
    }

    /// The host requests go to, for logs.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// Whether the host is one of Discord's own.
    pub fn is_discord_host(&self) -> bool {
        DISCORD_HOSTS.contains(&self.host())
    }

    /// The webhook's id (not secret).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// A `thread_id` given in the URL's query, if any.
    pub fn thread_id(&self) -> Option<u64> {
        self.thread_id
    }

    /// The URL that names this webhook: its execute URL, as `discord.com/api/webhooks/<id>/<token>`
    /// when it is on any of Discord's hosts, so `discordapp.com`, `canary.discord.com`,
    /// `/api/v10/` or trailing-slash spellings of one webhook are one webhook (one task, one
    /// place under `OWNER_DESTINATIONS_MAX`, one pace for its channel).
    pub fn identity(&self) -> Url {
        let mut url = self.execute_url(None);
        if self.is_discord_host() {
            // Setting a domain host on an https URL cannot fail.
            let _ = url.set_host(Some("discord.com"));
            url.set_path(&format!("/api/webhooks/{}/{}", self.id, self.token()));
        }
        url
    }

    /// The address to POST to: `?wait=true` so that Discord answers with the created message (with
    /// the default `wait=false` a message that was not saved still gets a 204).
    pub fn execute_url(&self, thread_id: Option<u64>) -> Url {
        let mut url = self.url.clone();
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("wait", "true");
            if let Some(thread) = thread_id.or(self.thread_id) {
                query.append_pair("thread_id", &thread.to_string());
            }
            if self.with_components {
                query.append_pair("with_components", "true");
            }
        }
        url
    }
}

/// Splits `/api/webhooks/<id>/<token>` or `/api/v<N>/webhooks/<id>/<token>` (trailing slash allowed).
fn webhook_path(url: &Url) -> Result<(&str, &str), WebhookUrlError> {
    let segments: Vec<&str> =
        url.path_segments().ok_or(WebhookUrlError::Path)?.filter(|segment| !segment.is_empty()).collect();
    match segments.as_slice() {
        ["api", "webhooks", id, token] => Ok((id, token)),
        ["api", version, "webhooks", id, token] if is_api_version(version) => Ok((id, token)),
        _ => Err(WebhookUrlError::Path),
    }
}

fn is_api_version(segment: &str) -> bool {
    segment.len() > 1 && segment.starts_with('v') && segment[1..].bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let port = self.url.port().map(|p| format!(":{p}")).unwrap_or_default();
        write!(f, "{}://{}{}/…/webhooks/{}/[redacted]", self.url.scheme(), self.host(), port, self.id)
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({self})")
    }
}
