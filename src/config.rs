//! The relay's settings, read once at start from the environment (and `.env`, loaded by dotenvy
//! before this runs), validated, and typed. Names match Marzban's own where they mean the same
//! thing. An empty variable counts as unset, as in `.env.example`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::deliver::DeliverySettings;
use crate::discord::WebhookUrl;
use crate::render::Lang;
use crate::routing::{is_panel_label, Routes, DEFAULT_DESTINATION};
use crate::secret::Secret;

/// 64 MiB: a burst of ~40,000 Marzban events in one request.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// A setting that cannot be used, named, with what is wrong. Never contains a secret value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} {message}")]
    Invalid { var: &'static str, message: String },
    #[error(
        "DISCORD_WEBHOOK_URL is set but WEBHOOK_SECRET is not, so anyone who can reach the relay could post to \
         your Discord channel. Set WEBHOOK_SECRET to the same value as Marzban's WEBHOOK_SECRET, or set \
         ALLOW_NO_SECRET=true to accept requests without a secret"
    )]
    MissingSecret,
}

fn invalid(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { var, message: message.into() }
}

/// Everything the relay needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR`, default `0.0.0.0:9000`: where the panel POSTs.
    pub listen_addr: SocketAddr,
    /// `DATA_DIR`, default `./data`: where the SQLite outbox lives. Created if missing.
    pub data_dir: PathBuf,
    /// `TEMPLATES_DIR`, default `./templates`: files here replace the built-in template of the same
    /// name. A missing folder means built-in templates only.
    pub templates_dir: PathBuf,
    /// `TEMPLATE_LANG`, default `en`: the language of the built-in templates.
    pub template_lang: Lang,
    /// `PANEL_NAME`: a label for the panel, available to templates as `panel` (e.g. in the footer).
    pub panel_name: Option<String>,
    /// `MAX_BODY_BYTES`, default 64 MiB: larger requests are answered 413 and nothing is stored.
    pub max_body_bytes: usize,
    /// `WEBHOOK_SECRET` (or `WEBHOOK_SECRET_FILE`): what the panel sends in `x-webhook-secret` to
    /// `POST /`. `None` only when the relay runs dry, panels have their own secrets, or
    /// `ALLOW_NO_SECRET=true`.
    pub webhook_secret: Option<Secret>,
    /// `ALLOW_NO_SECRET`: accept requests on `POST /` without a secret even when delivering.
    pub allow_no_secret: bool,
    /// `DISCORD_WEBHOOK_URL` (or `DISCORD_WEBHOOK_URL_FILE`): the destination `default`. Without it
    /// and without a routes file's destinations, the relay runs dry: messages are logged, not sent.
    pub discord_webhook_url: Option<WebhookUrl>,
    /// `PANELS` (`label:secret,…`) and the routes file's `[panels]`: panels posting to
    /// `/webhook/<label>` with their own secret; the label is the events' `panel`.
    pub panels: Vec<(String, Secret)>,
    /// `ROUTES_FILE`: named destinations, rules, mentions and mutes.
    pub routes: Option<Routes>,
    /// `DELIVER_TO_OWNER_ADMIN`, default false: also deliver each event to the Discord webhook of
    /// the admin who owns the user (Discord's own hosts only).
    pub deliver_to_owner_admin: bool,
    /// How delivery retries, paces, digests and gives up (`RETRY_SCHEDULE`, `RETRY_MAX_AGE`,
    /// `DIGEST_THRESHOLD`).
    pub delivery: DeliverySettings,
    /// `DELIVERED_RETENTION`, default 7 days: delivered rows older than this are deleted (hourly).
    pub delivered_retention: Duration,
    /// `OUTBOX_MAX_BYTES`: the most the outbox file may hold. When it is full, delivered rows are
    /// deleted to make room; if that is not enough, requests are answered 503 (the panel keeps its
    /// batch). `None`: only the disk limits it.
    pub outbox_max_bytes: Option<u64>,
    /// How long a client may take to send a request body before it is answered 408.
    pub body_timeout: Duration,
    /// `DEDUP_WINDOW`, default 10 minutes: a notification the panel sends again identically within
    /// this window is stored once. `0` turns de-duplication off.
    pub dedup_window: Option<Duration>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the given variables only (for tests and tools).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| vars.get(name).cloned())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let webhook_secret = env
            .value_or_file("WEBHOOK_SECRET")?
            .map(Secret::parse)
            .transpose()
            .map_err(|e| invalid("WEBHOOK_SECRET", e.to_string()))?;
        let discord_webhook_url = env
            .value_or_file("DISCORD_WEBHOOK_URL")?
            .map(|url| WebhookUrl::parse(&url))
            .transpose()
            .map_err(|e| invalid("DISCORD_WEBHOOK_URL", format!("is not a usable webhook URL: {e}")))?;
        let reserved: &[&str] = if discord_webhook_url.is_some() { &[DEFAULT_DESTINATION] } else { &[] };
        let routes = env
            .get("ROUTES_FILE")
            .map(|path| Routes::load(Path::new(&path), reserved))
            .transpose()
            .map_err(|problems| invalid("ROUTES_FILE", format!("has problems:\n  {}", problems.join("\n  "))))?;
        let mut panels = env.parse_or("PANELS", Vec::new(), parse_panels)?;
        for (label, secret) in routes.iter().flat_map(|r| r.panels.iter()) {
            if panels.iter().any(|(known, _)| known == label) {
                return Err(invalid("PANELS", format!("and the routes file both define panel {label:?}")));
            }
            panels.push((label.clone(), secret.clone()));
        }
        let delivering = discord_webhook_url.is_some() || routes.as_ref().is_some_and(|r| !r.destinations.is_empty());
        let allow_no_secret = env.parse_or("ALLOW_NO_SECRET", false, parse_bool)?;
        if delivering && webhook_secret.is_none() && panels.is_empty() && !allow_no_secret {
            return Err(ConfigError::MissingSecret);
        }
        Ok(Self {
            listen_addr: env.parse_or("LISTEN_ADDR", SocketAddr::from(([0, 0, 0, 0], 9000)), |s| {
                s.parse().map_err(|_| "must be an address and port such as 0.0.0.0:9000 or 127.0.0.1:9000".to_owned())
            })?,
            data_dir: env.get("DATA_DIR").map_or_else(|| PathBuf::from("./data"), PathBuf::from),
            templates_dir: env.get("TEMPLATES_DIR").map_or_else(|| PathBuf::from("./templates"), PathBuf::from),
            template_lang: env.parse_or("TEMPLATE_LANG", Lang::default(), |s| s.parse())?,
            panel_name: env.get("PANEL_NAME").map(|name| name.trim().to_owned()),
            max_body_bytes: env.parse_or("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, parse_size)?,
            webhook_secret,
            allow_no_secret,
            discord_webhook_url,
            panels,
            routes,
            deliver_to_owner_admin: env.parse_or("DELIVER_TO_OWNER_ADMIN", false, parse_bool)?,
            delivery: delivery_settings(&env)?,
            delivered_retention: env.parse_or(
                "DELIVERED_RETENTION",
                Duration::from_secs(7 * 86_400),
                parse_duration,
            )?,
            outbox_max_bytes: env
                .parse_or("OUTBOX_MAX_BYTES", None, |s| parse_size(s).map(|size| Some(size as u64)))?,
            body_timeout: Duration::from_secs(60),
            dedup_window: Some(env.parse_or("DEDUP_WINDOW", Duration::from_secs(600), parse_duration)?)
                .filter(|window| !window.is_zero()),
        })
    }

    /// Whether the relay only logs what it would send: no destination is configured at all.
    pub fn is_dry_run(&self) -> bool {
        self.discord_webhook_url.is_none() && self.routes.as_ref().is_none_or(|r| r.destinations.is_empty())
    }
}

fn delivery_settings(env: &Env) -> Result<DeliverySettings, ConfigError> {
    let defaults = DeliverySettings::default();
    let channel =
        env.parse_or("CHANNEL_RATE_LIMIT", (defaults.channel_messages, defaults.channel_window), parse_rate)?;
    Ok(DeliverySettings {
        retry_schedule: env.parse_or("RETRY_SCHEDULE", defaults.retry_schedule.clone(), parse_schedule)?,
        retry_max_age: env.parse_or("RETRY_MAX_AGE", defaults.retry_max_age, parse_duration)?,
        channel_messages: channel.0,
        channel_window: channel.1,
        digest_threshold: env.parse_or("DIGEST_THRESHOLD", defaults.digest_threshold, |s| {
            s.parse().map_err(|_| format!("must be a whole number (0 turns digests off), not {s:?}"))
        })?,
        ..defaults
    })
}

/// Typed access to variables; empty values count as unset.
struct Env<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// `NAME`, or the contents of the file `NAME_FILE` names (for compose secrets), trailing
    /// newline removed; setting both is an error.
    fn value_or_file(&self, name: &'static str) -> Result<Option<String>, ConfigError> {
        let file_var = format!("{name}_FILE");
        match (self.get(name), self.get(&file_var)) {
            (Some(_), Some(_)) => Err(invalid(name, format!("and {file_var} are both set; set one"))),
            (Some(value), None) => Ok(Some(value)),
            (None, Some(path)) => std::fs::read_to_string(&path)
                .map(|value| Some(value.trim_end_matches(['\n', '\r']).to_owned()).filter(|v| !v.is_empty()))
                .map_err(|err| {
                    invalid(name, format!("cannot be read from {file_var}={path}: {err}{}", unreadable_file_hint(&err)))
                }),
            (None, None) => Ok(None),
        }
    }

    fn parse_or<T>(
        &self,
        name: &'static str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(value) => parse(value.trim()).map_err(|message| invalid(name, message)),
        }
    }
}

/// What to do when a secret file exists but the relay's user may not read it: a compose secret is
/// the host file bind-mounted with its host owner and mode, and the natural mode is 0600.
fn unreadable_file_hint(err: &std::io::Error) -> &'static str {
    if err.kind() != std::io::ErrorKind::PermissionDenied {
        return "";
    }
    ". The relay's user may not read the file. In the Docker image that user is uid 65532: on the host, run \
     `sudo chown 65532:65532` on the secret file (it can keep mode 0600)"
}

/// `label:secret,label:secret`: panels and their secrets (a secret may hold `:` but not `,`).
pub fn parse_panels(value: &str) -> Result<Vec<(String, Secret)>, String> {
    let mut panels: Vec<(String, Secret)> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (label, secret) =
            entry.split_once(':').ok_or_else(|| "must be label:secret pairs separated by commas".to_owned())?;
        if !is_panel_label(label) {
            return Err(format!("panel label {label:?} must be 1 to 32 letters, digits, '_' or '-'"));
        }
        if panels.iter().any(|(known, _)| known == label) {
            return Err(format!("names panel {label:?} twice"));
        }
        let secret = Secret::parse(secret).map_err(|e| format!("secret of panel {label:?} {e}"))?;
        panels.push((label.to_owned(), secret));
    }
    Ok(panels)
}

/// `true/false`, `1/0`, `yes/no`, `on/off`.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("must be true or false, not {value:?}")),
    }
}

/// A byte size: a number, optionally with a unit `B`, `K`/`KiB`, `M`/`MiB`, `G`/`GiB` (binary).
pub fn parse_size(value: &str) -> Result<usize, String> {
    let bad = || format!("must be a size such as 67108864, 64MiB or 512K, not {value:?}");
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let number: usize = digits.parse().map_err(|_| bad())?;
    let factor: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    let size = number.checked_mul(factor).ok_or_else(bad)?;
    if size == 0 {
        return Err("must be more than 0".into());
    }
    Ok(size)
}

/// A duration: a number with a unit `ms`, `s`, `m`, `h` or `d` (`250ms`, `30s`, `10m`, `72h`, `7d`),
/// or `0`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let bad = || format!("must be a duration such as 30s, 10m, 72h or 7d, not {value:?}");
    let value = value.trim();
    if value == "0" {
        return Ok(Duration::ZERO);
    }
    let split = value.find(|c: char| !c.is_ascii_digit() && c != '.').ok_or_else(bad)?;
    let (number, unit) = value.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        "d" => number * 86_400.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| bad())
}

/// A message rate: `30/1m` (messages per duration), or `0` for none.
pub fn parse_rate(value: &str) -> Result<(usize, Duration), String> {
    if value.trim() == "0" {
        return Ok((0, Duration::from_secs(60)));
    }
    let bad = || format!("must be messages per duration such as 30/1m, or 0 for no limit, not {value:?}");
    let (count, per) = value.split_once('/').ok_or_else(bad)?;
    let count: usize = count.trim().parse().map_err(|_| bad())?;
    let per = parse_duration(per).map_err(|_| bad())?;
    if count == 0 || per.is_zero() {
        return Err(bad());
    }
    Ok((count, per))
}

/// A retry schedule: durations separated by commas (`1s,5s,30s,2m,10m,30m`), each more than 0.
pub fn parse_schedule(value: &str) -> Result<Vec<Duration>, String> {
    let steps = value
        .split(',')
        .map(|step| parse_duration(step).map_err(|e| format!("step {:?} {e}", step.trim())))
        .collect::<Result<Vec<_>, _>>()?;
    if steps.iter().any(Duration::is_zero) {
        return Err("steps must be longer than 0".into());
    }
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://discord.com/api/webhooks/1/tok-en_123";

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_vars(&vars)
    }

    #[test]
    fn starts_dry_with_nothing_set() {
        let config = config(&[]).unwrap();
        assert!(config.is_dry_run());
        assert!(config.webhook_secret.is_none());
        assert_eq!(config.listen_addr.to_string(), "0.0.0.0:9000");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.templates_dir, PathBuf::from("./templates"));
        assert_eq!(config.max_body_bytes, 64 * 1024 * 1024);
    }

    #[test]
    fn refuses_a_webhook_without_a_secret_unless_allowed() {
        assert_eq!(config(&[("DISCORD_WEBHOOK_URL", URL)]).unwrap_err(), ConfigError::MissingSecret);
        assert!(config(&[("DISCORD_WEBHOOK_URL", URL), ("ALLOW_NO_SECRET", "true")]).is_ok());
        assert!(config(&[("DISCORD_WEBHOOK_URL", URL), ("WEBHOOK_SECRET", "s")]).is_ok());
    }

    #[test]
    fn names_the_variable_and_hides_the_token() {
        let err = config(&[("DISCORD_WEBHOOK_URL", "https://discord.com/webhooks/1/SECRETTOKEN")]).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("DISCORD_WEBHOOK_URL is not a usable webhook URL"), "{message}");
        assert!(!message.contains("SECRETTOKEN"), "{message}");
        let err = config(&[("LISTEN_ADDR", "nine thousand")]).unwrap_err();
        assert!(err.to_string().starts_with("LISTEN_ADDR must be"), "{err}");
        let err = config(&[("MAX_BODY_BYTES", "lots")]).unwrap_err();
        assert!(err.to_string().starts_with("MAX_BODY_BYTES must be"), "{err}");
    }

    #[test]
    fn empty_values_count_as_unset() {
        let config = config(&[("WEBHOOK_SECRET", ""), ("DISCORD_WEBHOOK_URL", " ")]).unwrap();
        assert!(config.is_dry_run() && config.webhook_secret.is_none());
    }

    #[test]
    fn reads_secrets_from_files_but_not_both_forms() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "from-file\n").unwrap();
        let url = dir.path().join("url");
        std::fs::write(&url, format!("{URL}\n")).unwrap();
        let config = config(&[
            ("WEBHOOK_SECRET_FILE", secret.to_str().unwrap()),
            ("DISCORD_WEBHOOK_URL_FILE", url.to_str().unwrap()),
        ])
        .unwrap();
        assert_eq!(config.webhook_secret.unwrap().expose(), "from-file");
        assert_eq!(config.discord_webhook_url.unwrap().id(), 1);
        let both = self::config(&[("WEBHOOK_SECRET", "x"), ("WEBHOOK_SECRET_FILE", secret.to_str().unwrap())]);
        assert_eq!(both.unwrap_err().to_string(), "WEBHOOK_SECRET and WEBHOOK_SECRET_FILE are both set; set one");
        let missing = self::config(&[("WEBHOOK_SECRET_FILE", "/nonexistent/secret")]).unwrap_err();
        assert!(
            missing.to_string().starts_with("WEBHOOK_SECRET cannot be read from WEBHOOK_SECRET_FILE="),
            "{missing}"
        );
    }

    #[test]
    fn an_unreadable_secret_file_says_which_owner_it_needs() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(unreadable_file_hint(&denied).contains("sudo chown 65532:65532"));
        assert_eq!(unreadable_file_hint(&std::io::Error::from(std::io::ErrorKind::NotFound)), "");
    }

    #[test]
    fn reads_panels_with_their_own_secrets() {
        let config = config(&[("PANELS", "eu1:s1, us-2:a:b"), ("DISCORD_WEBHOOK_URL", URL)]).unwrap();
        let panels: Vec<(&str, &str)> = config.panels.iter().map(|(l, s)| (l.as_str(), s.expose())).collect();
        assert_eq!(panels, [("eu1", "s1"), ("us-2", "a:b")]);
        assert!(self::config(&[("PANELS", "eu1")]).is_err());
        assert!(self::config(&[("PANELS", "e u:s")]).is_err());
        assert!(self::config(&[("PANELS", "a:1,a:2")]).is_err());
    }

    #[test]
    fn parses_sizes_and_durations() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("512K"), Ok(512 << 10));
        assert!(parse_size("0").is_err() && parse_size("1T").is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("72h"), Ok(Duration::from_secs(72 * 3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10").is_err() && parse_duration("5w").is_err());
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_schedule("1s, 5s,2m"),
            Ok(vec![Duration::from_secs(1), Duration::from_secs(5), Duration::from_secs(120)])
        );
        assert!(parse_schedule("1s,,5s").is_err() && parse_schedule("0").is_err());
        assert_eq!(parse_rate("30/1m"), Ok((30, Duration::from_secs(60))));
        assert_eq!(parse_rate("0").map(|r| r.0), Ok(0));
        assert!(parse_rate("30").is_err() && parse_rate("0/1m").is_err() && parse_rate("5/0").is_err());
    }

    #[test]
    fn reads_the_delivery_settings() {
        let config = config(&[
            ("RETRY_SCHEDULE", "2s,1m"),
            ("RETRY_MAX_AGE", "24h"),
            ("DIGEST_THRESHOLD", "0"),
            ("DELIVERED_RETENTION", "1d"),
            ("DEDUP_WINDOW", "0"),
        ])
        .unwrap();
        assert_eq!(config.delivery.retry_schedule, [Duration::from_secs(2), Duration::from_secs(60)]);
        assert_eq!(config.delivery.retry_max_age, Duration::from_secs(86_400));
        assert_eq!(config.delivery.digest_threshold, 0);
        assert_eq!(config.delivered_retention, Duration::from_secs(86_400));
        assert_eq!(config.dedup_window, None);
        let defaults = self::config(&[]).unwrap();
        assert_eq!(defaults.delivery.digest_threshold, 30);
        assert_eq!(defaults.dedup_window, Some(Duration::from_secs(600)));
        let err = self::config(&[("RETRY_SCHEDULE", "1s,soon")]).unwrap_err();
        assert!(err.to_string().starts_with("RETRY_SCHEDULE step \"soon\" must be a duration"), "{err}");
    }
}
