//! `DISCORD_*` settings of the Discord application (the bot): served when `DISCORD_PUBLIC_KEY` is
//! set.

use super::{invalid, ConfigError, Env};
use crate::bot::settings::{parse_api_base, parse_id, parse_traffic_gib, DEFAULT_API_BASE, DEFAULT_TRAFFIC_GIB};
use crate::bot::{parse_actions, parse_actors, parse_extend_days, parse_ids, parse_public_key, BotSettings};
use crate::panel::Redacted;

/// The bot's variables; any of them set without `DISCORD_PUBLIC_KEY` is an error (it would do nothing).
const BOT_VARS: &[&str] = &[
    "DISCORD_APPLICATION_ID",
    "DISCORD_BOT_TOKEN",
    "DISCORD_GUILD_IDS",
    "DISCORD_API_BASE",
    "DISCORD_ACTORS",
    "DISCORD_ACTIONS",
    "DISCORD_EXTEND_DAYS",
    "DISCORD_TRAFFIC_GIB",
];

/// The bot's settings, when `DISCORD_PUBLIC_KEY` is set.
pub(super) fn bot(env: &Env) -> Result<Option<BotSettings>, ConfigError> {
    let bot_token = env.value_or_file("DISCORD_BOT_TOKEN")?;
    let Some(key) = env.get("DISCORD_PUBLIC_KEY") else {
        let set = BOT_VARS.iter().find(|name| env.get(name).is_some());
        if let Some(name) = set.or(bot_token.as_ref().map(|_| &"DISCORD_BOT_TOKEN")) {
            return Err(invalid("DISCORD_PUBLIC_KEY", format!("is not set, but {name} is (the bot needs it)")));
        }
        return Ok(None);
    };
    let public_key = parse_public_key(&key).map_err(|message| invalid("DISCORD_PUBLIC_KEY", message))?;
    let application_id = env
        .get("DISCORD_APPLICATION_ID")
        .ok_or_else(|| {
            invalid(
                "DISCORD_APPLICATION_ID",
                "must be set with DISCORD_PUBLIC_KEY (the Developer Portal's Application ID)",
            )
        })
        .and_then(|id| parse_id(&id).map_err(|message| invalid("DISCORD_APPLICATION_ID", message)))?;
    let bot_token = bot_token.map(|token| Redacted::new(token.trim()));
    Ok(Some(BotSettings {
        public_key,
        application_id,
        bot_token,
        guild_ids: env.parse_or("DISCORD_GUILD_IDS", Vec::new(), parse_ids)?,
        api_base: env.parse_or("DISCORD_API_BASE", DEFAULT_API_BASE.to_owned(), parse_api_base)?,
        actors: env.parse_or("DISCORD_ACTORS", Default::default(), parse_actors)?,
        actions: env.parse_or("DISCORD_ACTIONS", parse_actions("").unwrap_or_default(), parse_actions)?,
        extend_days: env.parse_or("DISCORD_EXTEND_DAYS", vec![30], parse_extend_days)?,
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
        assert!(token.starts_with("DISCORD_PUBLIC_KEY") && !token.contains("secret-token"), "{token}");
        let shown = format!("{:?}", with(&[("DISCORD_BOT_TOKEN", "MTIzNDU2Nzg5MA.secret-token")]).unwrap().bot);
        assert!(!shown.contains("secret-token"), "{shown}");
    }
}
