//! The Discord application: slash commands and buttons turned into panel calls.
//!
//! * [`gateway`]: the default transport, an outbound websocket to Discord's gateway (with
//!   `DISCORD_BOT_TOKEN`), which POSTs each answer to the interaction's callback.
//! * [`http`]: `POST /interactions`, Discord's HTTP interactions endpoint (Ed25519-verified by
//!   [`verify`] before anything is parsed), the alternative with `DISCORD_PUBLIC_KEY`.
//! * [`handle`]: the one handler both transports feed: an [`Interaction`] in, an [`Answer`] out: the response to give Discord within its
//!   3 s, and the work that edits it afterwards when the panel was slower.
//! * [`guard`]: who may act and how often; [`drawn`]: a click only on a button the relay drew;
//!   [`card`]: the user card and its buttons (pure); [`act`]: a click carried out at the panel;
//!   [`audit`]: every action logged and posted as a line to the channel, through the outbox;
//!   [`rest`]: Discord's REST API (editing a deferred response, registering the commands).
//! * [`stats`]: `/stats`; [`report`]: `/report`; [`autocomplete`]: `/user`'s username choices;
//!   [`panels`]: the panels asked when there are several, and which one a command means.
//!
//! The bot holds no panel credentials: it asks `panel`'s client. Nothing it answers or logs holds
//! the bot token, an interaction token, or a panel secret.

mod act;
pub mod audit;
mod autocomplete;
mod card;
mod drawn;
mod gateway;
mod guard;
mod handle;
mod http;
mod panels;
mod report;
mod rest;
pub mod settings;
mod stats;
mod verify;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::future::BoxFuture;
use serenity::builder::CreateInteractionResponse;
use tokio::sync::Semaphore;

use crate::ingest::Unverified;
use crate::panel::PanelClient;
use audit::Audit;
use guard::Guard;
use panels::BotPanel;
use rest::Rest;

pub use autocomplete::AUTOCOMPLETE_WITHIN;
pub use gateway::{Gateway, GatewayMetrics, GATEWAY_TASK};
pub use guard::{KEYSTROKES_PER_WINDOW, RATE_PER_WINDOW};
pub use http::routes;
pub use panels::{LABEL_MAX_CHARS, MAX_PANELS};
pub use report::ReportSource;
pub use rest::{commands, register_commands, register_commands_for};
pub use settings::{parse_actions, parse_actors, parse_extend_days, parse_ids, parse_public_key, Action, BotSettings};

/// The clock as unix seconds (0 before 1970).
fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
pub use verify::{verify, SignatureError, MAX_SKEW};

/// How long the handler waits for the panel before it defers: Discord drops a response after 3 s.
pub const DEFER_AFTER: Duration = Duration::from_millis(2000);

/// Interactions whose panel work may run at once; more are answered "busy".
pub const MAX_IN_FLIGHT: usize = 32;

/// The handler's state, shared by every transport.
pub struct Bot {
    settings: BotSettings,
    /// The panels asked, the default one (`PANEL_API_URL`) first; each label is the audit line's
    /// and the `panel` option's.
    panels: Vec<BotPanel>,
    /// What `/report` reads; none: `/report` says how to turn reports on.
    reports: Option<ReportSource>,
    rest: Arc<Rest>,
    guard: Arc<Guard>,
    in_flight: Arc<Semaphore>,
    defer_after: Duration,
    /// What bodies not yet verified may hold together ([`http::UNVERIFIED_BYTES`]).
    unverified: Unverified,
    /// Where the audit lines of actions are posted; none: only logged.
    audit: Option<Arc<Audit>>,
}

/// What to give Discord for one interaction.
pub struct Answer {
    /// The interaction's response: the HTTP endpoint's body, or what the gateway POSTs to the
    /// interaction's callback.
    pub response: CreateInteractionResponse,
    /// After a deferral: the work that ends by editing the response. The transport runs it once
    /// the response is on its way.
    pub follow_up: Option<BoxFuture<'static, ()>>,
}

impl Bot {
    /// The bot for `settings`, asking `panels` (label and client; the default first, its label
    /// `PANEL_NAME`'s or none; none at all: every command says the panel API is not set).
    pub fn new(settings: BotSettings, panels: Vec<(Option<String>, Arc<PanelClient>)>) -> Result<Self, String> {
        let rest = Rest::new(&settings)?;
        Ok(Self {
            guard: Arc::new(Guard::new(&settings)),
            settings,
            panels: panels::panel_list(panels),
            reports: None,
            rest: Arc::new(rest),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            defer_after: DEFER_AFTER,
            unverified: Unverified::new(http::UNVERIFIED_BYTES),
            audit: None,
        })
    }

    /// Posts an audit line for every action through `audit` (see [`audit`]).
    pub fn with_audit(mut self, audit: Audit) -> Self {
        self.audit = Some(Arc::new(audit));
        self
    }

    /// Waits this long for the panel before deferring (tests shorten it).
    pub fn with_defer_after(mut self, defer_after: Duration) -> Self {
        self.defer_after = defer_after;
        self
    }

    pub fn settings(&self) -> &BotSettings {
        &self.settings
    }
}
