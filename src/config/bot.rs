//! `DISCORD_*` settings of the Discord application (the bot): on when `DISCORD_BOT_TOKEN` (the
//! gateway) or `DISCORD_PUBLIC_KEY` (the HTTP interactions endpoint) is set.

use std::time::Duration;

use super::{invalid, parse_bool, parse_duration_in, Bounds, ConfigError, Env};
use crate::bot::settings::{
    parse_api_base, parse_id, parse_traffic_gib, GatewaySettings, DEFAULT_API_BASE, DEFAULT_TRAFFIC_GIB,
};
use crate::bot::{parse_actions, parse_actors, parse_extend_days, parse_ids, parse_public_key, BotSettings};
use crate::panel::Redacted;

/// The bot's variables; any of them set without a token or a public key is an error (it would do
/// nothing).
const BOT_VARS: &[&str] = &[
    "DISCORD_APPLICATION_ID",
    "DISCORD_GUILD_IDS",
    "DISCORD_API_BASE",
    "DISCORD_ACTORS",
    "DISCORD_ACTIONS",
    "DISCORD_EXTEND_DAYS",
    "DISCORD_TRAFFIC_GIB",
    "DISCORD_GATEWAY",
    "DISCORD_GATEWAY_GRACE",
];

/// `DISCORD_GATEWAY_GRACE`: 0 (a lost gateway shows at once) to 1 h.
pub const GATEWAY_GRACE: Bounds = Bounds { min: Duration::ZERO, max: Duration::from_secs(3600), zero_is_off: false };

/// The default of `DISCORD_GATEWAY_GRACE`: Discord asks for a reconnect now and then, and a
/// resume takes a few seconds; a minute without the gateway is worth a look.
pub const DEFAULT_GATEWAY_GRACE: Duration = Duration::from_secs(60);

/// The bot's settings, when `DISCORD_BOT_TOKEN` or `DISCORD_PUBLIC_KEY` is set.
pub(super) fn bot(env: &Env) -> Result<Option<BotSettings>, ConfigError> {
    let bot_token = env.value_or_file("DISCORD_BOT_TOKEN")?.map(|token| Redacted::new(token.trim()));
    let key = env.get("DISCORD_PUBLIC_KEY");
    if bot_token.is_none() && key.is_none() {
        if let Some(name) = BOT_VARS.iter().find(|name| env.get(name).is_some()) {
            return Err(invalid(
                "DISCORD_BOT_TOKEN",
                format!("is not set, nor DISCORD_PUBLIC_KEY, but {name} is (the bot needs one of them)"),
            ));
        }
        return Ok(None);
    }
    let public_key =
        key.map(|key| parse_public_key(&key)).transpose().map_err(|message| invalid("DISCORD_PUBLIC_KEY", message))?;
    let application_id = env
        .get("DISCORD_APPLICATION_ID")
        .ok_or_else(|| {
            invalid(
                "DISCORD_APPLICATION_ID",
                "must be set with DISCORD_BOT_TOKEN or DISCORD_PUBLIC_KEY (the Developer Portal's Application ID)",
            )
        })
        .and_then(|id| parse_id(&id).map_err(|message| invalid("DISCORD_APPLICATION_ID", message)))?;
    let gateway_on = env.parse_or("DISCORD_GATEWAY", true, parse_bool)?;
    let grace =
        env.parse_or("DISCORD_GATEWAY_GRACE", DEFAULT_GATEWAY_GRACE, |s| parse_duration_in(s, GATEWAY_GRACE))?;
    if !gateway_on && public_key.is_none() {
        return Err(invalid(
            "DISCORD_GATEWAY",
            "is off, so DISCORD_PUBLIC_KEY must be set (nothing would bring interactions)",
        ));
    }
    let gateway = (gateway_on && bot_token.is_some()).then_some(GatewaySettings { grace });
    Ok(Some(BotSettings {
        public_key,
        application_id,
        bot_token,
        guild_ids: env.parse_or("DISCORD_GUILD_IDS", Vec::new(), parse_ids)?,
        api_base: env.parse_or("DISCORD_API_BASE", DEFAULT_API_BASE.to_owned(), parse_api_base)?,
        actors: env.parse_or("DISCORD_ACTORS", Default::default(), parse_actors)?,
        actions: env.parse_or("DISCORD_ACTIONS", parse_actions("").unwrap_or_default(), parse_actions)?,
        extend_days: env.parse_or("DISCORD_EXTEND_DAYS", vec![30], parse_extend_days)?,
        gateway,
        traffic_gib: env.parse_or("DISCORD_TRAFFIC_GIB", DEFAULT_TRAFFIC_GIB.to_vec(), parse_traffic_gib)?,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::bot::Action;
    use crate::config::Config;

    const KEY: &str = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";

    fn config(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let mut vars: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        vars.insert("DATA_DIR".into(), "/tmp".into());
        Config::from_vars(&vars).map_err(|err| err.to_string())
    }

    #[test]
    fn bot_settings_are_checked_and_named() {
        assert!(config(&[]).unwrap().bot.is_none());
        let with = |extra: &[(&str, &str)]| {
            config(&[&[("DISCORD_PUBLIC_KEY", KEY), ("DISCORD_APPLICATION_ID", "1234567890")], extra].concat())
        };
        let bot = with(&[]).unwrap().bot.unwrap();
        assert_eq!((bot.actions.len(), bot.actors.len(), bot.extend_days.clone()), (1, 0, vec![30]));
        assert!(bot.actions.contains(&Action::Lookup));
        assert_eq!(bot.api_base, "https://discord.com/api/v10");
        assert!(config(&[("DISCORD_PUBLIC_KEY", KEY)]).unwrap_err().starts_with("DISCORD_APPLICATION_ID"));
        assert!(with(&[("DISCORD_ACTORS", "role:abc")]).unwrap_err().starts_with("DISCORD_ACTORS"));
        assert!(with(&[("DISCORD_ACTIONS", "explode")]).unwrap_err().starts_with("DISCORD_ACTIONS"));
        assert_eq!(bot.traffic_gib, vec![10, 50]);
        assert!(with(&[("DISCORD_TRAFFIC_GIB", "0")]).unwrap_err().starts_with("DISCORD_TRAFFIC_GIB"));
        assert!(with(&[("DISCORD_TRAFFIC_GIB", "1,2,3,4,5,6")]).unwrap_err().starts_with("DISCORD_TRAFFIC_GIB"));
        assert!(with(&[("DISCORD_EXTEND_DAYS", "0")]).unwrap_err().starts_with("DISCORD_EXTEND_DAYS"));
        assert!(with(&[("DISCORD_GUILD_IDS", "x")]).unwrap_err().starts_with("DISCORD_GUILD_IDS"));
        assert!(config(&[("DISCORD_PUBLIC_KEY", "nothex")]).unwrap_err().starts_with("DISCORD_PUBLIC_KEY"));
        let token = config(&[("DISCORD_BOT_TOKEN", "MTIzNDU2Nzg5MA.secret-token")]).unwrap_err();
        assert!(token.starts_with("DISCORD_APPLICATION_ID") && !token.contains("secret-token"), "{token}");
        assert!(config(&[("DISCORD_ACTORS", "1")]).unwrap_err().starts_with("DISCORD_BOT_TOKEN"));
        let shown = format!("{:?}", with(&[("DISCORD_BOT_TOKEN", "MTIzNDU2Nzg5MA.secret-token")]).unwrap().bot);
        assert!(!shown.contains("secret-token"), "{shown}");
    }

    #[test]
    fn a_token_alone_runs_the_gateway_and_its_settings_are_checked() {
        let token = [("DISCORD_BOT_TOKEN", "MTIzNDU2Nzg5MA.secret-token"), ("DISCORD_APPLICATION_ID", "1234567890")];
        let bot = config(&token).unwrap().bot.unwrap();
        assert!(bot.public_key.is_none(), "no HTTP endpoint without the key");
        assert_eq!(bot.gateway.unwrap().grace, std::time::Duration::from_secs(60));
        let with = |extra: &[(&str, &str)]| config(&[&token[..], extra].concat());
        assert_eq!(with(&[("DISCORD_GATEWAY_GRACE", "0")]).unwrap().bot.unwrap().gateway.unwrap().grace.as_secs(), 0);
        assert!(with(&[("DISCORD_GATEWAY_GRACE", "2h")]).unwrap_err().starts_with("DISCORD_GATEWAY_GRACE"));
        assert!(
            with(&[("DISCORD_GATEWAY", "off")]).unwrap_err().starts_with("DISCORD_GATEWAY"),
            "nothing would listen"
        );
        let http_only = with(&[("DISCORD_GATEWAY", "false"), ("DISCORD_PUBLIC_KEY", KEY)]).unwrap().bot.unwrap();
        assert!(http_only.gateway.is_none() && http_only.public_key.is_some());
        let key_only = config(&[("DISCORD_PUBLIC_KEY", KEY), ("DISCORD_APPLICATION_ID", "1")]).unwrap().bot.unwrap();
        assert!(key_only.gateway.is_none(), "no token, no gateway");
    }
}
