//! The default destination (`DISCORD_WEBHOOK_URL`, or `DISCORD_CHANNEL_ID` where the relay makes
//! its own webhook), its forum mode (`DISCORD_FORUM`, `DISCORD_FORUM_TAGS`), and what the relay's
//! own webhooks need (`DISCORD_BOT_TOKEN`, `DISCORD_APPLICATION_ID`, `DISCORD_API_BASE`).

use super::{invalid, parse_bool, ConfigError, Env};
use crate::bot::settings::{parse_api_base, parse_id, DEFAULT_API_BASE};
use crate::deliver::AppWebhookSettings;
use crate::destination::{parse_tags, Destination, Forum, Target, DEFAULT_DESTINATION};
use crate::discord::{BotToken, WebhookUrl};
use crate::routing::Routes;

/// The default destination's place: `DISCORD_WEBHOOK_URL`, or `DISCORD_CHANNEL_ID`; not both.
pub(super) fn default_target(env: &Env) -> Result<Option<Target>, ConfigError> {
    let url = env
        .value_or_file("DISCORD_WEBHOOK_URL")?
        .map(|url| WebhookUrl::parse(&url))
        .transpose()
        .map_err(|e| invalid("DISCORD_WEBHOOK_URL", format!("is not a usable webhook URL: {e}")))?;
    let channel = env
        .get("DISCORD_CHANNEL_ID")
        .map(|id| parse_channel(&id))
        .transpose()
        .map_err(|m| invalid("DISCORD_CHANNEL_ID", m))?;
    match (url, channel) {
        (Some(_), Some(_)) => Err(invalid(
            "DISCORD_CHANNEL_ID",
            "and DISCORD_WEBHOOK_URL are both set; set one: DISCORD_CHANNEL_ID makes the relay its own webhook there \
             (with the \"Act on a user…\" menu), DISCORD_WEBHOOK_URL uses one you made (no menu)",
        )),
        (Some(url), None) => Ok(Some(Target::Webhook(url))),
        (None, channel) => Ok(channel.map(Target::Channel)),
    }
}

/// A channel id: a Discord id below 2^63, as every snowflake is (and as the routes file's
/// `channel_id`); the outbox keys the channel's webhook by it as a signed integer, where a larger
/// one would share a row with another channel.
fn parse_channel(value: &str) -> Result<u64, String> {
    let id = parse_id(value)?;
    i64::try_from(id).map(|_| id).map_err(|_| format!("must be a Discord id, below 2^63, not {id}"))
}

/// What the relay's own webhooks need, when any destination is a channel; an error naming the
/// missing variable when that need is not met.
pub(super) fn app_webhooks(
    env: &Env,
    default: Option<&Target>,
    routes: Option<&Routes>,
) -> Result<Option<AppWebhookSettings>, ConfigError> {
    let file = routes.into_iter().flat_map(|routes| routes.destinations.iter());
    let channel = default
        .filter(|target| matches!(target, Target::Channel(_)))
        .map(|_| "DISCORD_CHANNEL_ID".to_owned())
        .or_else(|| {
            file.filter(|d| matches!(d.target, Target::Channel(_))).map(|d| format!("destinations.{}", d.name)).next()
        });
    let Some(channel) = channel else { return Ok(None) };
    let needs = |var: &'static str, what: &str| invalid(var, format!("must be set: {channel} is a channel, {what}"));
    let bot_token = env
        .value_or_file("DISCORD_BOT_TOKEN")?
        .ok_or_else(|| needs("DISCORD_BOT_TOKEN", "where the bot makes the relay's own webhook"))?;
    let application_id = env
        .get("DISCORD_APPLICATION_ID")
        .ok_or_else(|| needs("DISCORD_APPLICATION_ID", "and the relay's webhooks there are the application's"))
        .and_then(|id| parse_id(&id).map_err(|m| invalid("DISCORD_APPLICATION_ID", m)))?;
    let api_base = env.parse_or("DISCORD_API_BASE", DEFAULT_API_BASE.to_owned(), parse_api_base)?;
    if WebhookUrl::parse(&format!("{api_base}/webhooks/1/token")).is_err() {
        return Err(invalid("DISCORD_API_BASE", "must end in /api or /api/v<N> for the relay's own webhooks"));
    }
    Ok(Some(AppWebhookSettings { api_base, application_id, bot_token: BotToken::new(bot_token.trim()) }))
}

/// Refuses a routes file with a destination on the default destination's webhook (or channel)
/// and thread: two destinations there would pace alone against one rate limit, and make forum
/// posts twice.
pub(super) fn refuse_a_shared_default(routes: Option<&Routes>, default: Option<&Target>) -> Result<(), ConfigError> {
    let (Some(routes), Some(target)) = (routes, default) else { return Ok(()) };
    let problems = routes.shared_with_default(&Destination::new(DEFAULT_DESTINATION, target.clone()));
    if problems.is_empty() {
        Ok(())
    } else {
        Err(invalid("ROUTES_FILE", format!("has problems:\n  {}", problems.join("\n  "))))
    }
}

/// `DISCORD_FORUM` and `DISCORD_FORUM_TAGS`, checked against the default destination.
pub(super) fn forum(env: &Env, default: Option<&Target>) -> Result<Option<Forum>, ConfigError> {
    let tags = env.parse_or("DISCORD_FORUM_TAGS", Default::default(), parse_tags)?;
    if !env.parse_or("DISCORD_FORUM", false, parse_bool)? {
        if !tags.is_empty() {
            return Err(invalid("DISCORD_FORUM_TAGS", "is set but DISCORD_FORUM is not true"));
        }
        return Ok(None);
    }
    match default {
        None | Some(Target::DryRun) => {
            Err(invalid("DISCORD_FORUM", "is true but DISCORD_WEBHOOK_URL (or DISCORD_CHANNEL_ID) is not set"))
        }
        Some(Target::Webhook(url)) if url.thread_id().is_some() => Err(invalid(
            "DISCORD_FORUM",
            "is true but DISCORD_WEBHOOK_URL has a thread_id; a forum destination posts into a thread per user",
        )),
        Some(_) => Ok(Some(Forum { tags })),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::Config;
    use crate::destination::Target;

    const CHANNEL: &str = "1100000000000000002";
    const TOKEN: &str = "MTIzNDU2Nzg5MA.secret-bot-token";

    fn config(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let mut vars: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        vars.insert("DATA_DIR".into(), "/tmp".into());
        vars.insert("WEBHOOK_SECRET".into(), "s".into());
        Config::from_vars(&vars).map_err(|err| err.to_string())
    }

    fn with_bot(extra: &[(&str, &str)]) -> Result<Config, String> {
        let bot = [
            ("DISCORD_PUBLIC_KEY", "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"),
            ("DISCORD_APPLICATION_ID", "1234567890"),
            ("DISCORD_BOT_TOKEN", TOKEN),
        ];
        config(&[&bot[..], extra].concat())
    }

    #[test]
    fn a_channel_is_the_default_destination_with_the_bot_token() {
        let config = with_bot(&[("DISCORD_CHANNEL_ID", CHANNEL), ("DISCORD_FORUM", "true")]).unwrap();
        assert_eq!(config.discord_channel_id, Some(1100000000000000002));
        assert!(config.discord_webhook_url.is_none() && !config.is_dry_run() && config.discord_forum.is_some());
        let settings = config.app_webhooks.unwrap();
        assert_eq!((settings.application_id, settings.api_base.as_str()), (1234567890, "https://discord.com/api/v10"));
        assert!(!format!("{settings:?}").contains("secret-bot-token"));
        let router = crate::startup::router(&with_bot(&[("DISCORD_CHANNEL_ID", CHANNEL)]).unwrap());
        assert_eq!(router.destinations()[0].target, Target::Channel(1100000000000000002));
    }

    #[test]
    fn a_channel_needs_the_bot_and_excludes_a_webhook_url() {
        let url = ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1/tok");
        let both = with_bot(&[("DISCORD_CHANNEL_ID", CHANNEL), url]).unwrap_err();
        assert!(both.starts_with("DISCORD_CHANNEL_ID and DISCORD_WEBHOOK_URL are both set"), "{both}");
        let no_bot = config(&[("DISCORD_CHANNEL_ID", CHANNEL)]).unwrap_err();
        assert!(no_bot.starts_with("DISCORD_BOT_TOKEN must be set: DISCORD_CHANNEL_ID is a channel"), "{no_bot}");
        assert!(config(&[("DISCORD_CHANNEL_ID", "general")]).unwrap_err().starts_with("DISCORD_CHANNEL_ID must be"));
        for id in ["0", "9223372036854775808", "18446744073709551615", "184467440737095516150"] {
            let refused = with_bot(&[("DISCORD_CHANNEL_ID", id)]).unwrap_err();
            assert!(refused.starts_with("DISCORD_CHANNEL_ID must be"), "{id}: {refused}");
        }
        let proxy = with_bot(&[("DISCORD_CHANNEL_ID", CHANNEL), ("DISCORD_API_BASE", "https://proxy.example/discord")]);
        assert!(proxy.unwrap_err().starts_with("DISCORD_API_BASE must end in /api"));
        assert!(with_bot(&[url]).unwrap().app_webhooks.is_none(), "a URL needs no webhook of the relay's own");
    }
}
