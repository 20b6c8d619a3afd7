//! The panel's REST API, as the relay asks it things: log in (or present an API key), list the
//! nodes, read the core's status. One client per panel, for Marzban, PasarGuard and Marzneshin.
//!
//! * [`client`]: the HTTP side: timeouts on every call, a bounded answer, the login and its JWT
//!   (kept in memory only, renewed before it expires and on a `401`).
//! * [`users`]: one user (the bot's user card) and the changes made to them from Discord;
//!   [`user_changes`]: adding traffic and deleting a user.
//! * [`answers`]: what the panel answers, parsed as hostile input: never a panic, every name and
//!   message cut to a documented length, at most [`MAX_NODES`] nodes.
//!
//! Nothing secret leaves this module: the password, the API key and the JWT are held in
//! [`Redacted`], whose `Debug` prints `[redacted]`, and no [`PanelError`] quotes a header, a body
//! it was sent, or a URL with credentials (a URL with a user or password is refused at start).
//!
//! The family decides the paths. Marzban and PasarGuard log in at `POST /api/admin/token`,
//! Marzneshin at `POST /api/admins/token` (all three take the OAuth2 password form); PasarGuard
//! also takes an API key in `X-Api-Key`. `GET /api/nodes` answers a list (Marzban), `{nodes,
//! total}` with `offset`/`limit` (PasarGuard) or a page `{items, total, page, size, pages}`
//! (Marzneshin). Only Marzban has one core on the panel (`GET /api/core`, `started`); PasarGuard
//! and Marzneshin run their cores on the nodes. An unset family is detected: the login path that
//! exists, then the shape of the node list.

mod answers;
mod client;
mod scrub;
mod user_changes;
mod users;

use std::fmt;
use std::time::Duration;

pub use answers::{CoreStatus, Node, NodeStatus, ADDRESS_MAX_CHARS, MAX_NODES, MESSAGE_MAX_CHARS, NAME_MAX_CHARS};
pub use client::{PanelClient, MAX_ANSWER_BYTES};
pub use scrub::scrub;
pub use user_changes::{TrafficAdded, GIB, TRAFFIC_LIMIT_MAX};
pub use users::{is_username, PanelUser, EXTEND_MAX_DAYS, NOTE_MAX_CHARS, USERNAME_MAX_CHARS, USER_ANSWER_MAX_BYTES};

pub use crate::event::Family;

/// A value that must never be shown: a password, an API key, a JWT.
#[derive(Clone, PartialEq, Eq)]
pub struct Redacted(String);

impl Redacted {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one header or form field that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the relay proves who it is to the panel.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// `PANEL_API_USERNAME` and `PANEL_API_PASSWORD`: an admin's login; the panel gives a JWT.
    Login { username: String, password: Redacted },
    /// `PANEL_API_KEY`: PasarGuard's API key, sent as `X-Api-Key` on every call.
    ApiKey(Redacted),
}

/// One panel's API settings.
#[derive(Debug, Clone)]
pub struct PanelApiSettings {
    /// `PANEL_API_URL`: the panel's base URL (`https://panel.example.com:8000`), without a path
    /// to the API and without credentials.
    pub url: url::Url,
    pub credentials: Credentials,
    /// `PANEL_API_FAMILY`: the panel software, or `None` to detect it.
    pub family: Option<Family>,
    /// `PANEL_API_INSECURE_TLS`, default false: accept a certificate that does not verify
    /// (self-signed). Never implied.
    pub insecure_tls: bool,
    /// `PANEL_API_TIMEOUT`, default 10 s: the most one call may take, connection included.
    pub timeout: Duration,
    /// The panel's label for events (`PANEL_NAME`), if any.
    pub label: Option<String>,
}

/// The default of `PANEL_API_TIMEOUT`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to the panel did not give an answer to use. Never holds a secret: upstream text is
/// redacted and cut before it is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PanelError {
    /// No answer: refused connection, DNS, TLS, or the timeout.
    #[error("the panel did not answer: {0}")]
    Unreachable(String),
    /// The login (or the API key) was refused.
    #[error("the panel refused the login (HTTP {0}): check PANEL_API_USERNAME/PASSWORD or PANEL_API_KEY")]
    LoginRefused(u16),
    /// The panel answered with an error status.
    #[error("the panel answered HTTP {status} to {path}")]
    Status { status: u16, path: &'static str },
    /// The answer was larger than the call reads ([`MAX_ANSWER_BYTES`], a user's
    /// [`USER_ANSWER_MAX_BYTES`]).
    #[error("the panel's answer to {0} was larger than {1} bytes")]
    TooLarge(&'static str, usize),
    /// The answer was not what the family sends.
    #[error("the panel's answer to {path} could not be read: {reason}")]
    Unreadable { path: &'static str, reason: String },
    /// What the relay cannot ask this family yet.
    #[error("{0} are not supported yet")]
    Unsupported(&'static str),
}

/// The parsing of `PANEL_API_FAMILY`.
pub fn parse_family(value: &str) -> Result<Option<Family>, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => Ok(None),
        "marzban" => Ok(Some(Family::Marzban)),
        "pasarguard" => Ok(Some(Family::PasarGuard)),
        "marzneshin" => Ok(Some(Family::Marzneshin)),
        _ => Err("must be marzban, pasarguard, marzneshin or auto".to_owned()),
    }
}

/// The parsing of `PANEL_API_URL`: http or https, a host, no credentials, no query.
pub fn parse_url(value: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(value.trim()).map_err(|_| "is not a URL such as https://panel.example.com".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not hold a user or password; use PANEL_API_USERNAME and PANEL_API_PASSWORD".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_with_credentials_is_refused_without_quoting_them() {
        let err = parse_url("https://admin:hunter2@panel.example.com").unwrap_err();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(parse_url("ftp://panel").is_err());
        assert!(parse_url("https://panel.example.com:8000/").is_ok());
        assert!(parse_url("https://panel.example.com/?token=x").is_err());
    }

    #[test]
    fn secrets_print_as_redacted() {
        let credentials = Credentials::Login { username: "admin".into(), password: Redacted::new("hunter2") };
        assert!(!format!("{credentials:?}").contains("hunter2"));
        assert_eq!(parse_family("PasarGuard"), Ok(Some(Family::PasarGuard)));
        assert_eq!(parse_family("auto"), Ok(None));
        assert!(parse_family("3x-ui").is_err());
    }
}
