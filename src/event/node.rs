//! The events the relay raises itself by watching the panel's API (see `nodes`), rather than
//! receiving them: the context their templates get, and their names.

use serde::Serialize;
use time::OffsetDateTime;

use super::{Action, Event, Family};

/// The actions of node watch, in the order `check` lists them.
pub const WATCH_ACTIONS: &[&str] = &[
    "node_down",
    "node_recovered",
    "node_flapping",
    "node_added",
    "node_removed",
    "node_disabled",
    "node_enabled",
    "core_down",
    "core_recovered",
    "panel_unreachable",
    "panel_recovered",
];

/// Whether `action` is one the relay knows: one the panels send, or one node watch raises.
pub fn is_known_action(action: &str) -> bool {
    super::KNOWN_ACTIONS.contains(&action) || is_watch_action(action)
}

/// Every action the relay knows: the panels' and node watch's.
pub fn known_actions() -> impl Iterator<Item = &'static str> + Clone {
    super::KNOWN_ACTIONS.iter().chain(WATCH_ACTIONS).copied()
}

/// Every action the relay knows, for a message that lists them.
pub fn known_actions_list() -> String {
    known_actions().collect::<Vec<_>>().join(", ")
}

/// Whether `action` is one node watch raises.
pub fn is_watch_action(action: &str) -> bool {
    WATCH_ACTIONS.contains(&action)
}

/// What a node watch event is about: a node, or (for `core_*` and `panel_*`) the panel's core or
/// the panel itself, named by the panel's label (`core`, `panel` when it has none).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeContext {
    /// The panel's id of the node; `None` for the core and the panel.
    pub id: Option<i64>,
    /// The node's name as the panel gives it (cut to 100 characters); escaped like a username.
    pub name: String,
    pub address: Option<String>,
    pub port: Option<u16>,
    /// The node's status as the panel reports it now (`connected`, `connecting`, `error`,
    /// `disabled`, `limited`…).
    pub status: Option<String>,
    /// Since when (unix seconds): the outage's start, or the flapping window's.
    pub since: Option<i64>,
    /// How long, in seconds: the outage that ended (`*_recovered`), or the flapping window.
    pub duration: Option<i64>,
    /// `node_flapping`: how many short outages in the window.
    pub flaps: Option<u32>,
}

impl Event {
    /// A node watch event of `action` about `node`, on `panel`, at `at`, with the panel's `reason`
    /// (the node's message, or why the panel did not answer). `username` is the node's name, so
    /// digests list the nodes and rules' `users` can match them.
    pub fn watch(
        action: Action,
        panel: Option<String>,
        family: Family,
        at: OffsetDateTime,
        node: NodeContext,
        reason: Option<String>,
    ) -> Self {
        Self {
            action,
            original_action: None,
            username: node.name.clone(),
            panel,
            event_time: at,
            received_at: at,
            user: None,
            by: None,
            admin: None,
            used_percent: None,
            days_left: None,
            remaining: None,
            reason,
            owner_webhook: None,
            family,
            fingerprint: None,
            may_be_resend: false,
            node: Some(node),
        }
    }
}
