//! Node watch: a producer inside the process that asks the panel's API for its nodes (and its
//! core) every `NODE_POLL_INTERVAL` and turns what changed into events (`node_down`,
//! `node_recovered`, `node_added`, `node_removed`, `node_disabled`, `node_enabled`,
//! `node_flapping`, `core_down`, `core_recovered`, `panel_unreachable`, `panel_recovered`) that
//! go through the same pipeline as the panel's own: routing rules, templates, forum mode,
//! digests, the outbox.
//!
//! * [`track`]: pure: the watched state of a panel and the changes a poll makes in it (the rules
//!   that keep it quiet are there).
//! * [`events`]: a change as an [`crate::event::Event`] (its `node` context).
//! * [`watcher`]: the task: poll, track, store the new state and the events' rows in one outbox
//!   transaction, wake delivery.
//!
//! Durable: the watched state (node states, open outages) is stored in the outbox with the rows
//! of the events it caused, in one transaction, so a restart neither repeats a `node_down` nor
//! forgets one (a node that recovered while the relay was stopped gets its `node_recovered`).

pub mod events;
pub mod metrics;
pub mod track;
pub mod watcher;

use std::time::Duration;

pub use metrics::NodeMetrics;
pub use track::{Change, Kind, Timing, WatchState};
pub use watcher::{Watcher, NODES_TASK};

/// The node watch settings.
#[derive(Debug, Clone)]
pub struct NodeWatchSettings {
    /// `NODE_POLL_INTERVAL`, default 30 s, 5 s to 1 h: how often the panel is asked.
    pub poll_interval: Duration,
    /// `NODE_DOWN_AFTER`, default 2 min, 0 to 1 day: how long a node must stay not connected (and
    /// the panel unanswered, the core stopped) before it is reported; also the flapping window
    /// (at least two polls long, see [`Timing`]).
    pub down_after: Duration,
}

impl NodeWatchSettings {
    /// The settings in ms, as the tracker takes them.
    pub fn timing(&self) -> Timing {
        let ms = |duration: Duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Timing::new(ms(self.down_after), ms(self.poll_interval))
    }
}

impl Default for NodeWatchSettings {
    fn default() -> Self {
        Self { poll_interval: Duration::from_secs(30), down_after: Duration::from_secs(120) }
    }
}
