//! The relay's settings, read once at start from the environment (and `.env`, loaded by dotenvy
//! before this runs), validated, and typed. Names match Marzban's own where they mean the same
//! thing. An empty variable counts as unset, as in `.env.example`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::bot::BotSettings;
use crate::deliver::{AppWebhookSettings, DeliverySettings};
use crate::destination::{Forum, Target, DEFAULT_DESTINATION, DEFAULT_OWNER_DESTINATIONS_MAX};
use crate::discord::WebhookUrl;
use crate::nodes::NodeWatchSettings;
use crate::panel::PanelApiSettings;
use crate::render::Lang;
use crate::reports::ReportSettings;
use crate::routing::Routes;
use crate::secret::{inline_or_file, InlineOrFileError, Secret};

mod bot;
mod delivery;
mod destinations;
mod panel_api;
mod reports;
#[cfg(test)]
mod tests;
mod values;

pub use delivery::DIGEST_THRESHOLD_MAX;
pub use panel_api::{NODE_DOWN_AFTER, NODE_POLL, PANEL_API_TIMEOUT};
pub use values::*;

/// 64 MiB: a burst of ~40,000 Marzban events in one request.
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// 128 MiB: the largest body (`MAX_BODY_BYTES`) fits in one panel's half, and on a 1 GB VPS the
/// bodies being read, with what parsing them takes, stay well under the memory left to the relay.
pub const DEFAULT_PANEL_BODY_BYTES: usize = 128 * 1024 * 1024;

/// What `PANEL_REQUESTS_MAX` may be. A panel sends its batches one after another; 16 leaves room
/// for a panel with several webhook workers, or several panels sharing `POST /`.
pub const PANEL_REQUESTS_RANGE: RangeInclusive<usize> = 1..=256;

/// What `OWNER_DESTINATIONS_MAX` may be: each owner webhook costs a task and its polling, and
/// 1000 is far more admins with webhooks than one panel has.
pub const OWNER_DESTINATIONS_RANGE: RangeInclusive<usize> = 1..=1000;

/// A setting that cannot be used, named, with what is wrong. Never contains a secret value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} {message}")]
    Invalid { var: &'static str, message: String },
    /// Delivering without any secret; names what makes the relay deliver (`DISCORD_WEBHOOK_URL is
    /// set`, `ROUTES_FILE has destinations`).
    #[error(
        "{0} but WEBHOOK_SECRET is not, so anyone who can reach the relay could post to \
         your Discord channel. Set WEBHOOK_SECRET to the same value as Marzban's WEBHOOK_SECRET, or set \
         ALLOW_NO_SECRET=true to accept requests without a secret"
    )]
    MissingSecret(&'static str),
}

fn invalid(var: &'static str, message: impl Into<String>) -> ConfigError {
    let mut message: String = message.into();
    // A message quotes the value it refuses; a value of a hundred kilobytes is not worth a log.
    if let Some((cut, _)) = message.char_indices().nth(INVALID_MESSAGE_CHARS) {
        let more = message[cut..].chars().count();
        message.truncate(cut);
        message.push_str(&format!("… ({more} more characters not shown)"));
    }
    ConfigError::Invalid { var, message }
}

/// The longest message about an invalid setting, in characters.
const INVALID_MESSAGE_CHARS: usize = 600;

/// Everything the relay needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR`, default `0.0.0.0:9000`: where the panel POSTs.
    pub listen_addr: SocketAddr,
    /// `DATA_DIR`, default `./data`: where the SQLite outbox lives. Created 0700 if missing (an
    /// existing folder is left as it is, with a warning if other users may use it); the outbox
    /// files are 0600, as they hold owner admins' webhook URLs.
    pub data_dir: PathBuf,
    /// `TEMPLATES_DIR`, default `./templates`: files here replace the built-in template of the same
    /// name. A missing folder means built-in templates only.
    pub templates_dir: PathBuf,
    /// `TEMPLATE_LANG`, default `en`: the language of the built-in templates.
    pub template_lang: Lang,
    /// `PANEL_NAME`: a label for the panel, available to templates as `panel` (e.g. in the footer).
    pub panel_name: Option<String>,
    /// `MAX_BODY_BYTES`, default 64 MiB (1 KiB to 1 GiB): larger requests are answered 413 and
    /// nothing is stored.
    pub max_body_bytes: usize,
    /// `UNVERIFIED_BODY_BYTES`, default 16 MiB (64 KiB to 1 GiB): the most bytes held, in total
    /// over all requests, for bodies whose `x-webhook-secret` is shaped like an HMAC and so cannot
    /// be checked before the body is read. A request that does not fit is answered 503 without
    /// being read; one larger than this on its own is answered 413. The raw secret is checked
    /// before any body is read and never needs this budget.
    pub unverified_body_bytes: usize,
    /// `PANEL_BODY_BYTES`, default 128 MiB (1 MiB to 4 GiB): the most bytes held, in total over all
    /// requests, for bodies sent with a panel's secret (or to an open `POST /`), taken as they
    /// arrive; one panel (each label of `PANELS`, and `POST /`) holds at most half of it, so a
    /// leaked secret cannot keep the other panels out. A request that does not fit is answered 503
    /// with `Retry-After` and no more of it is read; a body larger than half is answered 413.
    pub panel_body_bytes: usize,
    /// `PANEL_REQUESTS_MAX`, default 16 (1 to 256): requests of one panel read and handled at
    /// once; one more is answered 503 with `Retry-After`, and the panel sends it again.
    pub panel_requests_max: usize,
    /// `WEBHOOK_SECRET` (or `WEBHOOK_SECRET_FILE`): what the panel sends in `x-webhook-secret` to
    /// `POST /`. `None` only when the relay runs dry, panels have their own secrets, or
    /// `ALLOW_NO_SECRET=true`.
    pub webhook_secret: Option<Secret>,
    /// `ALLOW_NO_SECRET`: accept requests on `POST /` without a secret even when delivering.
    pub allow_no_secret: bool,
    /// `DISCORD_WEBHOOK_URL` (or `DISCORD_WEBHOOK_URL_FILE`): the destination `default`. Without it
    /// and without a routes file's destinations, the relay runs dry: messages are logged, not sent.
    pub discord_webhook_url: Option<WebhookUrl>,
    /// `DISCORD_CHANNEL_ID`, instead of `DISCORD_WEBHOOK_URL`: the destination `default` is the
    /// relay's own webhook in this channel, whose messages carry the "Act on a user…" menu.
    pub discord_channel_id: Option<u64>,
    /// `DISCORD_BOT_TOKEN`, `DISCORD_APPLICATION_ID` and `DISCORD_API_BASE`, required when a
    /// destination is a channel: the relay finds or makes its webhooks there. `None`: none is.
    pub app_webhooks: Option<AppWebhookSettings>,
    /// `DISCORD_FORUM`, default false, and `DISCORD_FORUM_TAGS` (`action:tag_id,…`): the default
    /// destination's webhook belongs to a forum channel; each user gets a post of their own, and a
    /// post created by an action gets that action's tags (at most 5). Needs `DISCORD_WEBHOOK_URL`
    /// without `thread_id`.
    pub discord_forum: Option<Forum>,
    /// `PANELS` (`label:secret,…`) and the routes file's `[panels]`: panels posting to
    /// `/webhook/<label>` with their own secret; the label is the events' `panel`.
    pub panels: Vec<(String, Secret)>,
    /// `ROUTES_FILE`: named destinations, rules, mentions and mutes.
    pub routes: Option<Routes>,
    /// `DELIVER_TO_OWNER_ADMIN`, default false: also deliver each event to the Discord webhook of
    /// the admin who owns the user (Discord's own hosts only).
    pub deliver_to_owner_admin: bool,
    /// `OWNER_DESTINATIONS_MAX`, default 100, 1 to 1000: the most owner admins' webhooks delivered
    /// to at once (admins sharing a webhook count once). Past it, a new admin's events still go to
    /// the configured destinations; only their owner copy is skipped, counted in
    /// `relay_owner_copies_skipped_total` and logged. A webhook's place is freed once it has had no
    /// rows for `DELIVERED_RETENTION`.
    pub owner_destinations_max: usize,
    /// How delivery retries, paces, digests and gives up (`RETRY_SCHEDULE`, `RETRY_MAX_AGE`,
    /// `CHANNEL_RATE_LIMIT`, `DIGEST_THRESHOLD`, `DIGEST_WINDOW`) and which waits `/readyz` lists
    /// (`READYZ_WAIT_NOTICE`), each range-checked: [`RETRY_STEP`], [`RETRY_MAX_AGE`],
    /// [`CHANNEL_WINDOW`], [`CHANNEL_MESSAGES`], [`DIGEST_WINDOW`] and [`WAIT_NOTICE`].
    pub delivery: DeliverySettings,
    /// `DELIVERED_RETENTION`, default 7 days, [`RETENTION`] (0 to 3650 days): delivered rows older
    /// than this are deleted (hourly; 0 deletes them at the next pruning), and owner admins'
    /// webhooks left without rows are forgotten (URL deleted, place freed).
    pub delivered_retention: Duration,
    /// `USER_STATE_RETENTION`, default 90 days, [`USER_STATE`] (0 to 3650 days): how long the
    /// last state of a user is kept after the last event of that user, so that an edit can show
    /// what it changed. 0 keeps none (edits show no changes; kept states go at the next pruning).
    pub user_state_retention: Duration,
    /// `OUTBOX_MAX_BYTES`, at least 128 KiB: the most the outbox file may hold. When it is full, delivered rows are
    /// deleted to make room; if that is not enough, requests are answered 503 (the panel keeps its
    /// batch). `None`: only the disk limits it.
    pub outbox_max_bytes: Option<u64>,
    /// How long a client may take to send a request body before it is answered 408.
    pub body_timeout: Duration,
    /// `DEDUP_WINDOW`, default 15 minutes, [`DEDUP`] (1 s to 1 day): a notification the panel
    /// sends again identically within this window is stored once. `0` turns de-duplication off.
    pub dedup_window: Option<Duration>,
    /// `FOLD_UPDATES`, default true: a `user_updated` followed, in the same request, by a status
    /// event (`user_disabled`, `user_enabled`, `user_limited`, `user_expired`) of the same user by
    /// the same admin is one edit, sent as the status event's embed alone. `false` sends both.
    pub fold_updates: bool,
    /// `REPORTS` and `REPORTS_TZ`: scheduled reports (none by default), see [`ReportSettings`].
    pub reports: ReportSettings,
    /// `PANEL_API_URL` and its credentials (`PANEL_API_USERNAME`, `PANEL_API_PASSWORD` or
    /// `PANEL_API_KEY`, each with a `_FILE` variant), `PANEL_API_FAMILY`, `PANEL_API_INSECURE_TLS`,
    /// `PANEL_API_TIMEOUT`: the panel's REST API, for node watch and the bot. `None`: neither.
    pub panel_api: Option<PanelApiSettings>,
    /// `NODE_POLL_INTERVAL` and `NODE_DOWN_AFTER`, see [`NodeWatchSettings`].
    pub node_watch: NodeWatchSettings,
    /// `DISCORD_PUBLIC_KEY` and the other `DISCORD_*` settings of the Discord application, see
    /// [`BotSettings`]. `None`: no `POST /interactions`.
    pub bot: Option<BotSettings>,
    /// What is usable but probably wrong (a secret Marzban cannot send), to be logged at start
    /// and shown by `check`. Each names the variable.
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok(), true)
    }

    /// Reads the process environment for a command that only previews (`check`, `render`): a
    /// missing `WEBHOOK_SECRET` is a warning, not an error, since nothing is received.
    pub fn from_env_for_preview() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok(), false)
    }

    /// Reads the given variables only (for tests and tools).
    pub fn from_vars(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| vars.get(name).cloned(), true)
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>, require_secret: bool) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let webhook_secret = env
            .value_or_file("WEBHOOK_SECRET")?
            .map(Secret::parse)
            .transpose()
            .map_err(|e| invalid("WEBHOOK_SECRET", e.to_string()))?;
        let default = destinations::default_target(&env)?;
        let reserved: &[&str] = if default.is_some() { &[DEFAULT_DESTINATION] } else { &[] };
        let routes = env
            .get("ROUTES_FILE")
            .map(|path| Routes::load(Path::new(&path), reserved))
            .transpose()
            .map_err(|problems| invalid("ROUTES_FILE", format!("has problems:\n  {}", problems.join("\n  "))))?;
        destinations::refuse_a_shared_default(routes.as_ref(), default.as_ref())?;
        let app_webhooks = destinations::app_webhooks(&env, default.as_ref(), routes.as_ref())?;
        let mut panels = env.parse_or("PANELS", Vec::new(), parse_panels)?;
        let mut warnings: Vec<String> = webhook_secret.iter().filter_map(|s| unsendable(s, "WEBHOOK_SECRET")).collect();
        warnings.extend(panels.iter().filter_map(|(label, s)| unsendable(s, &format!("PANELS (panel {label})"))));
        for (label, secret) in routes.iter().flat_map(|r| r.panels.iter()) {
            if panels.iter().any(|(known, _)| known == label) {
                return Err(invalid("PANELS", format!("and the routes file both define panel {label:?}")));
            }
            warnings.extend(unsendable(secret, &format!("ROUTES_FILE (panels.{label})")));
            panels.push((label.clone(), secret.clone()));
        }
        let discord_forum = destinations::forum(&env, default.as_ref())?;
        let panel_name = env.get("PANEL_NAME").map(|name| name.trim().to_owned());
        let panel_api = panel_api::panel_api(&env, panel_name.as_deref())?;
        let node_watch = panel_api::node_watch(&env)?;
        let bot = bot::bot(&env)?;
        let mut delivery = delivery::delivery_settings(&env)?;
        let reports = reports::report_settings(&env, routes.as_ref())?;
        let delivering = default.is_some() || routes.as_ref().is_some_and(|r| !r.destinations.is_empty());
        let allow_no_secret = env.parse_or("ALLOW_NO_SECRET", false, parse_bool)?;
        // `POST /` is a panel of its own when it takes requests at all.
        delivery.several_panels = panels.len() + usize::from(webhook_secret.is_some() || allow_no_secret) > 1;
        if delivering && webhook_secret.is_none() && panels.is_empty() && !allow_no_secret {
            let cause = if matches!(default, Some(Target::Webhook(_))) {
                "DISCORD_WEBHOOK_URL is set"
            } else if default.is_some() {
                "DISCORD_CHANNEL_ID is set"
            } else {
                "ROUTES_FILE has destinations"
            };
            let missing = ConfigError::MissingSecret(cause);
            if require_secret {
                return Err(missing);
            }
            warnings.push(format!("serve would refuse to start: {missing}"));
        }
        Ok(Self {
            listen_addr: env.parse_or("LISTEN_ADDR", SocketAddr::from(([0, 0, 0, 0], 9000)), |s| {
                s.parse().map_err(|_| "must be an address and port such as 0.0.0.0:9000 or 127.0.0.1:9000".to_owned())
            })?,
            data_dir: env.get("DATA_DIR").map_or_else(|| PathBuf::from("./data"), PathBuf::from),
            templates_dir: env.get("TEMPLATES_DIR").map_or_else(|| PathBuf::from("./templates"), PathBuf::from),
            template_lang: env.parse_or("TEMPLATE_LANG", Lang::default(), |s| s.parse())?,
            panel_name,
            max_body_bytes: env
                .parse_or("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, |s| parse_size_in(s, 1 << 10, Some(1 << 30)))?,
            unverified_body_bytes: env
                .parse_or("UNVERIFIED_BODY_BYTES", 16 << 20, |s| parse_size_in(s, 64 << 10, Some(1 << 30)))?,
            panel_body_bytes: env
                .parse_or("PANEL_BODY_BYTES", DEFAULT_PANEL_BODY_BYTES, |s| parse_size_in(s, 1 << 20, Some(4 << 30)))?,
            panel_requests_max: env.parse_or("PANEL_REQUESTS_MAX", 16, |s| parse_count(s, PANEL_REQUESTS_RANGE))?,
            webhook_secret,
            allow_no_secret,
            discord_webhook_url: default.as_ref().and_then(Target::webhook).cloned(),
            discord_channel_id: default.as_ref().and_then(Target::channel),
            app_webhooks,
            discord_forum,
            panels,
            routes,
            deliver_to_owner_admin: env.parse_or("DELIVER_TO_OWNER_ADMIN", false, parse_bool)?,
            owner_destinations_max: env.parse_or("OWNER_DESTINATIONS_MAX", DEFAULT_OWNER_DESTINATIONS_MAX, |s| {
                parse_count(s, OWNER_DESTINATIONS_RANGE)
            })?,
            delivery,
            delivered_retention: env.parse_or("DELIVERED_RETENTION", Duration::from_secs(7 * 86_400), |s| {
                parse_duration_in(s, RETENTION)
            })?,
            user_state_retention: env.parse_or("USER_STATE_RETENTION", Duration::from_secs(90 * 86_400), |s| {
                parse_duration_in(s, USER_STATE)
            })?,
            outbox_max_bytes: env.parse_or("OUTBOX_MAX_BYTES", None, |s| {
                parse_size_in(s, crate::outbox::MIN_MAX_BYTES as usize, None).map(|size| Some(size as u64))
            })?,
            body_timeout: Duration::from_secs(60),
            dedup_window: Some(
                env.parse_or("DEDUP_WINDOW", Duration::from_secs(900), |s| parse_duration_in(s, DEDUP))?,
            )
            .filter(|window| !window.is_zero()),
            fold_updates: env.parse_or("FOLD_UPDATES", true, parse_bool)?,
            reports,
            panel_api,
            node_watch,
            bot,
            warnings,
        })
    }

    /// Whether the relay only logs what it would send: no destination is configured at all.
    pub fn is_dry_run(&self) -> bool {
        self.discord_webhook_url.is_none()
            && self.discord_channel_id.is_none()
            && self.routes.as_ref().is_none_or(|r| r.destinations.is_empty())
    }
}

/// A warning when Marzban cannot send `secret`, set in `var`: its HTTP client encodes the header
/// as latin-1 and fails on any other character, so its notifications never reach the relay.
fn unsendable(secret: &Secret, var: &str) -> Option<String> {
    (!secret.has_latin1_form()).then(|| {
        format!(
            "{var} has characters outside latin-1 (ISO-8859-1). Marzban sends x-webhook-secret through Python's \
             HTTP client, which encodes it as latin-1 and fails on any other character, so Marzban cannot send \
             this secret and none of its notifications will arrive. Use ASCII letters and digits"
        )
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
        let path = self.get(&file_var);
        match inline_or_file(self.get(name), path.as_deref().map(Path::new)) {
            Ok(value) => Ok(value.filter(|v| !v.is_empty())),
            Err(InlineOrFileError::Both) => Err(invalid(name, format!("and {file_var} are both set; set one"))),
            Err(InlineOrFileError::Unreadable(err)) => {
                let path = path.unwrap_or_default();
                let hint = unreadable_file_hint(&err);
                Err(invalid(name, format!("cannot be read from {file_var}={path}: {err}{hint}")))
            }
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
