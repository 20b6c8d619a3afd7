//! The routes file as written: the serde structs it is read into (unknown keys refused), a panel
//! secret that must be a quoted string, and Discord ids given as numbers or strings.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RoutesFile {
    #[serde(default)]
    pub(super) mute: Vec<String>,
    #[serde(default)]
    pub(super) panels: BTreeMap<String, PanelSpec>,
    #[serde(default)]
    pub(super) destinations: BTreeMap<String, DestinationSpec>,
    #[serde(default)]
    pub(super) rules: Vec<RuleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PanelSpec {
    #[serde(default, deserialize_with = "quoted_secret")]
    pub(super) secret: Option<String>,
    pub(super) secret_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DestinationSpec {
    pub(super) url: Option<String>,
    pub(super) url_file: Option<PathBuf>,
    // The relay makes its own webhook in this channel (with DISCORD_BOT_TOKEN), instead of `url`.
    pub(super) channel_id: Option<Id>,
    pub(super) thread_id: Option<Id>,
    pub(super) username: Option<String>,
    pub(super) avatar_url: Option<String>,
    // Forum mode (issue 12): the webhook is a forum channel's; tags by action (or `digest`).
    #[serde(default)]
    pub(super) forum: bool,
    pub(super) tags: Option<BTreeMap<String, TagIds>>,
    // Scheduled reports (REPORTS): which reports this destination gets.
    pub(super) reports: Option<Vec<String>>,
}

/// A forum tag id, or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum TagIds {
    One(Id),
    Many(Vec<Id>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleSpec {
    pub(super) actions: Option<Vec<String>>,
    pub(super) panels: Option<Vec<String>>,
    pub(super) admins: Option<Vec<String>>,
    pub(super) min_used_percent: Option<f64>,
    pub(super) max_days_left: Option<i64>,
    pub(super) to: Vec<String>,
    #[serde(default)]
    pub(super) mention_roles: Vec<Id>,
    #[serde(default)]
    pub(super) mention_users: Vec<Id>,
}

/// A panel secret must be a quoted string. Anything else is refused without echoing the value,
/// which would otherwise land in the error message and the log: `secret = 12345678` is a secret too.
fn quoted_secret<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match toml::Value::deserialize(deserializer)? {
        toml::Value::String(secret) => Ok(Some(secret)),
        other => Err(serde::de::Error::custom(format!(
            "a secret is a string in quotes, not a {} (its value is not shown)",
            other.type_str()
        ))),
    }
}

/// A Discord id (snowflake), written as a number or, safer for 19-digit ids, as a string.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum Id {
    Number(i64),
    Text(String),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Number(n) => write!(f, "{n}"),
            // Quoted for the message about it, without a webhook token pasted there by mistake.
            Id::Text(s) => write!(f, "{:?}", crate::discord::redact(s, None)),
        }
    }
}

impl Id {
    /// A snowflake: a positive 64-bit number of at least 15 digits (ids from 2015 on).
    pub(super) fn snowflake(&self) -> Option<u64> {
        let n = match self {
            Id::Number(n) => u64::try_from(*n).ok()?,
            Id::Text(s) => s.trim().parse().ok()?,
        };
        (100_000_000_000_000..1 << 63).contains(&n).then_some(n)
    }
}
