//! The bot's settings and their parsers (`config` finds the variables and hands them over).

use std::collections::BTreeSet;

use ed25519_dalek::VerifyingKey;

use crate::panel::{Redacted, EXTEND_MAX_DAYS};

/// The default of `DISCORD_API_BASE`.
pub const DEFAULT_API_BASE: &str = "https://discord.com/api/v10";

/// At most this many ids in `DISCORD_ACTORS` and `DISCORD_GUILD_IDS`.
pub const MAX_IDS: usize = 100;

/// At most this many `DISCORD_EXTEND_DAYS` buttons (one row of the card).
pub const MAX_EXTEND_BUTTONS: usize = 5;

/// At most this many `DISCORD_TRAFFIC_GIB` buttons (one row of the card).
pub const MAX_TRAFFIC_BUTTONS: usize = 5;

/// The most one Add traffic button may add, in GiB (100 TiB).
pub const TRAFFIC_MAX_GIB: u32 = 102_400;

/// The default of `DISCORD_TRAFFIC_GIB`.
pub const DEFAULT_TRAFFIC_GIB: [u32; 2] = [10, 50];

/// What a member may do from Discord (`DISCORD_ACTIONS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// `/user` and Refresh: read only; always allowed to actors.
    Lookup,
    Reset,
    Enable,
    Disable,
    Extend,
    Revoke,
    /// Add traffic: raise the data limit by one of `DISCORD_TRAFFIC_GIB`.
    Traffic,
    /// Delete the user from the panel (asks for a confirmation first).
    Delete,
}

impl Action {
    pub const ALL: [Action; 8] = [
        Action::Lookup,
        Action::Reset,
        Action::Enable,
        Action::Disable,
        Action::Extend,
        Action::Revoke,
        Action::Traffic,
        Action::Delete,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Lookup => "lookup",
            Self::Reset => "reset",
            Self::Enable => "enable",
            Self::Disable => "disable",
            Self::Extend => "extend",
            Self::Revoke => "revoke",
            Self::Traffic => "traffic",
            Self::Delete => "delete",
        }
    }
}

/// The bot's settings.
#[derive(Debug, Clone)]
pub struct BotSettings {
    /// `DISCORD_PUBLIC_KEY`: the application's public key; `POST /interactions` is served with it.
    /// `None`: no HTTP endpoint (the gateway brings the interactions).
    pub public_key: Option<VerifyingKey>,
    /// `DISCORD_APPLICATION_ID`.
    pub application_id: u64,
    /// `DISCORD_BOT_TOKEN` (or `_FILE`): registers the slash commands at start.
    pub bot_token: Option<Redacted>,
    /// `DISCORD_GUILD_IDS`: the guilds the commands are registered in; interactions from any other
    /// guild are refused. Empty: any guild (and no registration).
    pub guild_ids: Vec<u64>,
    /// `DISCORD_API_BASE`, default [`DEFAULT_API_BASE`], without a trailing slash.
    pub api_base: String,
    /// `DISCORD_ACTORS`: the role and user ids that may act. Empty: nobody.
    pub actors: BTreeSet<u64>,
    /// `DISCORD_ACTIONS`: what actors may do; [`Action::Lookup`] always.
    pub actions: BTreeSet<Action>,
    /// `DISCORD_EXTEND_DAYS`: the card's Extend buttons, in days.
    pub extend_days: Vec<u32>,
    /// `DISCORD_TRAFFIC_GIB`: the card's Add traffic buttons, in GiB.
    pub traffic_gib: Vec<u32>,
    /// The gateway connection: `Some` when `DISCORD_BOT_TOKEN` is set and `DISCORD_GATEWAY` is on.
    pub gateway: Option<GatewaySettings>,
}

/// The gateway's settings.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// `DISCORD_GATEWAY_GRACE`: how long the gateway may be lost (a reconnect, a resume) before
    /// `/readyz` says the relay is not ready.
    pub grace: std::time::Duration,
}

/// `DISCORD_PUBLIC_KEY`: 64 hex digits.
pub fn parse_public_key(value: &str) -> Result<VerifyingKey, String> {
    let bytes = hex(value.trim())
        .filter(|b| b.len() == 32)
        .ok_or("must be the 64 hex digits of the Developer Portal's public key")?;
    let mut key = [0u8; 32];
    key.copy_from_slice(&bytes);
    VerifyingKey::from_bytes(&key).map_err(|_| "is not a valid Ed25519 public key".to_owned())
}

/// One Discord id (a snowflake).
pub fn parse_id(value: &str) -> Result<u64, String> {
    let value = value.trim();
    match value.parse::<u64>() {
        Ok(id) if id > 0 && value.len() <= 20 => Ok(id),
        _ => Err(format!("must be Discord ids (digits), not {:?}", value.chars().take(40).collect::<String>())),
    }
}

/// A comma-separated list of ids, at most [`MAX_IDS`].
pub fn parse_ids(value: &str) -> Result<Vec<u64>, String> {
    let ids: Vec<u64> = value.split(',').filter(|s| !s.trim().is_empty()).map(parse_id).collect::<Result<_, _>>()?;
    if ids.len() > MAX_IDS {
        return Err(format!("may hold at most {MAX_IDS} ids"));
    }
    Ok(ids)
}

/// `DISCORD_ACTORS`: ids, each optionally written `role:ID` or `user:ID` (Discord's ids are unique
/// across kinds, so both match the same way).
pub fn parse_actors(value: &str) -> Result<BTreeSet<u64>, String> {
    let bare: Vec<&str> = value
        .split(',')
        .map(|item| {
            let item = item.trim();
            item.strip_prefix("role:").or_else(|| item.strip_prefix("user:")).unwrap_or(item)
        })
        .collect();
    Ok(parse_ids(&bare.join(","))?.into_iter().collect())
}

/// `DISCORD_ACTIONS`: `all`, or names of [`Action`]; lookup is always in.
pub fn parse_actions(value: &str) -> Result<BTreeSet<Action>, String> {
    let mut actions = BTreeSet::from([Action::Lookup]);
    for name in value.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()) {
        if name == "all" {
            actions.extend(Action::ALL);
            continue;
        }
        let action = Action::ALL.into_iter().find(|a| a.name() == name).ok_or_else(|| {
            format!(
                "knows lookup, reset, enable, disable, extend, revoke, traffic, delete and all, not {:?}",
                name.chars().take(40).collect::<String>()
            )
        })?;
        actions.insert(action);
    }
    Ok(actions)
}

/// `DISCORD_EXTEND_DAYS`: 1 to [`MAX_EXTEND_BUTTONS`] numbers of days, each 1 to [`EXTEND_MAX_DAYS`].
pub fn parse_extend_days(value: &str) -> Result<Vec<u32>, String> {
    let mut days = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.parse::<u32>() {
            Ok(n) if (1..=EXTEND_MAX_DAYS).contains(&n) && !days.contains(&n) => days.push(n),
            _ => return Err(format!("must be distinct numbers of days, each 1 to {EXTEND_MAX_DAYS}")),
        }
    }
    if days.is_empty() || days.len() > MAX_EXTEND_BUTTONS {
        return Err(format!("must list 1 to {MAX_EXTEND_BUTTONS} numbers of days"));
    }
    Ok(days)
}

/// `DISCORD_TRAFFIC_GIB`: 1 to [`MAX_TRAFFIC_BUTTONS`] amounts of GiB (one row of the card), each 1
/// to [`TRAFFIC_MAX_GIB`].
pub fn parse_traffic_gib(value: &str) -> Result<Vec<u32>, String> {
    let mut gib = Vec::new();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item.parse::<u32>() {
            Ok(n) if (1..=TRAFFIC_MAX_GIB).contains(&n) && !gib.contains(&n) => gib.push(n),
            _ => return Err(format!("must be distinct amounts of GiB, each 1 to {TRAFFIC_MAX_GIB}")),
        }
    }
    if gib.is_empty() || gib.len() > MAX_TRAFFIC_BUTTONS {
        return Err(format!("must list 1 to {MAX_TRAFFIC_BUTTONS} amounts of GiB"));
    }
    Ok(gib)
}

/// `DISCORD_API_BASE`: an http(s) URL without credentials, query or fragment.
pub fn parse_api_base(value: &str) -> Result<String, String> {
    let url =
        url::Url::parse(value.trim()).map_err(|_| "is not a URL such as https://discord.com/api/v10".to_owned())?;
    let plain =
        url.username().is_empty() && url.password().is_none() && url.query().is_none() && url.fragment().is_none();
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() || !plain {
        return Err("must be an http(s) URL with a host, without credentials or a query".to_owned());
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// Bytes from hex digits; `None` for anything else.
pub(super) fn hex(text: &str) -> Option<Vec<u8>> {
    // Every character a hex digit: `from_str_radix` alone would take "+f" for 0x0f.
    if text.len() % 2 != 0 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lists_and_refuses_what_is_off() {
        assert_eq!(parse_actors("role:1, user:2,3").unwrap(), BTreeSet::from([1, 2, 3]));
        assert!(parse_actors("role:x").is_err());
        assert_eq!(parse_actions("").unwrap(), BTreeSet::from([Action::Lookup]));
        assert_eq!(parse_actions("Reset,revoke").unwrap().len(), 3);
        assert_eq!(parse_actions("all").unwrap().len(), Action::ALL.len());
        assert!(parse_actions("explode").is_err());
        assert!(parse_actions("traffic,delete").unwrap().contains(&Action::Delete));
        assert_eq!(parse_extend_days("7, 30").unwrap(), vec![7, 30]);
        for bad in ["0", "7,7", "1,2,3,4,5,6", "99999", "x"] {
            assert!(parse_extend_days(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_traffic_gib(" 10, 50 ").unwrap(), vec![10, 50]);
        for bad in ["", "0", "10,10", "1,2,3,4,5,6", "102401", "-1", "4294967296", "1.5"] {
            assert!(parse_traffic_gib(bad).is_err(), "{bad}");
        }
        assert!(parse_public_key("zz").is_err());
        assert_eq!(hex("0aFf"), Some(vec![0x0a, 0xff]), "either case");
        assert_eq!(hex("+a"), None, "a sign is not a hex digit");
        let key = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
        assert!(parse_public_key(key).is_ok() && parse_public_key(&key.replacen("0a", "+a", 1)).is_err());
        assert!(parse_api_base("https://u:p@discord.com/api").is_err());
        assert_eq!(parse_api_base("http://127.0.0.1:5/api/").unwrap(), "http://127.0.0.1:5/api");
    }
}
