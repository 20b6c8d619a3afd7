//! What a poll means: the watched state of one panel, and the changes between what was known and
//! what the panel says now. Pure: time comes in as unix milliseconds, so tests (and the benchmark)
//! move it by hand.
//!
//! The rules that keep it quiet:
//! * A node is down only once it has not been `connected` for `down_after`: one `node_down` per
//!   outage, none while it stays down, one `node_recovered` when it is back (only if the down was
//!   sent).
//! * Shorter outages are blips. Blips are counted in a flap window of
//!   `max(down_after, 2 × poll interval)` from the first one's start; the window ends at the first
//!   poll that finds the node connected once it has lasted that long, with one `node_flapping` and
//!   the count when it held two or more blips. At most one `node_flapping` per window, and a window
//!   spans at least two polls, so a node that drops at every other poll is counted, not missed.
//! * A drop that starts less than a flap window after the node came back (from a blip or a reported
//!   outage) is the same trouble: it is a `node_down` only once it has lasted a whole flap window,
//!   otherwise a blip of the window. So a node flapping every poll with `down_after` 0 gives one
//!   `node_down`/`node_recovered` pair, then `node_flapping` at most once a window, not a pair per
//!   flap.
//! * A panel that does not answer freezes what is known of its nodes: one `panel_unreachable` once
//!   it has not answered for `down_after`, one `panel_recovered` when it answers again; never
//!   "every node down".
//! * Disabled (or PasarGuard's limited) nodes are off on purpose: `node_disabled` / `node_enabled`,
//!   never an outage.
//! * The first poll of a panel only learns its nodes: no `node_added` for each of them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::panel::{CoreStatus, Node, NodeStatus};

/// Blips within one window that make a node flapping.
pub const FLAPS_MIN: u32 = 2;

/// The times that rule the watch of one panel, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `NODE_DOWN_AFTER`: how long a node (the panel, the core) must stay down to be reported.
    pub down_after_ms: i64,
    /// How long a flap window lasts at least: `max(NODE_DOWN_AFTER, 2 × NODE_POLL_INTERVAL)`.
    /// Two polls at least, so a window can hold two blips however short `NODE_DOWN_AFTER` is.
    pub flap_window_ms: i64,
}

impl Timing {
    /// The timing for `down_after_ms` and a poll every `poll_ms`.
    pub const fn new(down_after_ms: i64, poll_ms: i64) -> Self {
        let two_polls = poll_ms.saturating_mul(2);
        let flap_window_ms = if down_after_ms > two_polls { down_after_ms } else { two_polls };
        Self { down_after_ms, flap_window_ms }
    }
}

/// What is known about one panel, kept in the outbox between polls and across restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    /// Whether a poll has answered once: until then, nodes are learnt without `node_added`.
    pub seeded: bool,
    pub nodes: BTreeMap<i64, Tracked>,
    /// Since when the panel has not answered, and why.
    pub unreachable: Option<Outage>,
    /// Since when the panel's core has not been started.
    pub core: Option<Outage>,
    /// The panel's API URL: a panel whose label changed finds its state by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// One node as last seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    pub name: String,
    pub address: String,
    pub port: Option<u16>,
    pub status: NodeStatus,
    pub message: Option<String>,
    /// The current outage: since when the node has not been connected.
    pub down: Option<Outage>,
    /// Blips counted in the current window, and when the window began.
    pub flaps: u32,
    pub flap_window_ms: Option<i64>,
    /// Missing from the last answer: removed if the next one lacks it too.
    #[serde(default)]
    pub missing: bool,
    /// When the node last came back from a drop (a blip or a reported outage): a drop that
    /// starts within a flap window of it is reported down only once it lasts a whole window.
    #[serde(default)]
    pub back_ms: Option<i64>,
}

/// Something that is not as it should be, since when, and whether its message was sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    pub since_ms: i64,
    pub sent: bool,
    pub reason: Option<String>,
}

impl Outage {
    fn new(since_ms: i64, reason: Option<String>) -> Self {
        Self { since_ms, sent: false, reason }
    }

    /// How long it has lasted at `now_ms`, never less than 0.
    fn lasted(&self, now_ms: i64) -> i64 {
        elapsed(self.since_ms, now_ms)
    }

    /// Whether it has lasted `down_after_ms` at `now_ms`. A start in the future (the clock was set
    /// back) moves to now, so the outage is timed from the jump instead of once the clock catches up.
    fn long_enough(&mut self, now_ms: i64, down_after_ms: i64) -> bool {
        self.since_ms = self.since_ms.min(now_ms);
        now_ms.saturating_sub(self.since_ms) >= down_after_ms
    }
}

/// The time from `since_ms` to `now_ms`, never less than 0 (the clock may have been set back).
fn elapsed(since_ms: i64, now_ms: i64) -> i64 {
    now_ms.saturating_sub(since_ms).max(0)
}

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    NodeDown,
    NodeRecovered,
    NodeAdded,
    NodeRemoved,
    NodeDisabled,
    NodeEnabled,
    NodeFlapping,
    CoreDown,
    CoreRecovered,
    PanelUnreachable,
    PanelRecovered,
}

impl Kind {
    /// The event's action (and template name).
    pub fn action(self) -> &'static str {
        match self {
            Kind::NodeDown => "node_down",
            Kind::NodeRecovered => "node_recovered",
            Kind::NodeAdded => "node_added",
            Kind::NodeRemoved => "node_removed",
            Kind::NodeDisabled => "node_disabled",
            Kind::NodeEnabled => "node_enabled",
            Kind::NodeFlapping => "node_flapping",
            Kind::CoreDown => "core_down",
            Kind::CoreRecovered => "core_recovered",
            Kind::PanelUnreachable => "panel_unreachable",
            Kind::PanelRecovered => "panel_recovered",
        }
    }
}

/// One change worth a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub kind: Kind,
    /// The node (for node changes), as it is now or was last seen.
    pub node: Option<(i64, Tracked)>,
    /// The panel's reason: the node's message, or why the panel did not answer.
    pub reason: Option<String>,
    /// Since when (unix ms): the outage's start, or the flapping window's.
    pub since_ms: Option<i64>,
    /// How long it lasted (ms): a recovered outage, or the flapping window.
    pub duration_ms: Option<i64>,
    /// Blips counted (`node_flapping`).
    pub flaps: Option<u32>,
}

impl Change {
    fn of(kind: Kind) -> Self {
        Self { kind, node: None, reason: None, since_ms: None, duration_ms: None, flaps: None }
    }

    fn node(kind: Kind, id: i64, node: &Tracked) -> Self {
        Self { node: Some((id, node.clone())), reason: node.message.clone(), ..Self::of(kind) }
    }
}

impl WatchState {
    /// The panel did not answer at `now_ms`, for `reason`.
    pub fn unreachable(&mut self, reason: &str, now_ms: i64, down_after_ms: i64) -> Vec<Change> {
        let outage = self.unreachable.get_or_insert_with(|| Outage::new(now_ms, None));
        outage.reason = Some(reason.to_owned());
        if outage.sent || !outage.long_enough(now_ms, down_after_ms) {
            return Vec::new();
        }
        outage.sent = true;
        vec![Change {
            reason: outage.reason.clone(),
            since_ms: Some(outage.since_ms),
            ..Change::of(Kind::PanelUnreachable)
        }]
    }

    /// The panel answered `nodes` (and its core's status, where it has one) at `now_ms`.
    pub fn observe(&mut self, nodes: &[Node], core: Option<&CoreStatus>, now_ms: i64, timing: Timing) -> Vec<Change> {
        let mut changes = Vec::new();
        if let Some(outage) = self.unreachable.take().filter(|outage| outage.sent) {
            let duration = outage.lasted(now_ms);
            changes.push(Change {
                since_ms: Some(outage.since_ms),
                duration_ms: Some(duration),
                ..Change::of(Kind::PanelRecovered)
            });
        }
        let seen: BTreeMap<i64, &Node> = nodes.iter().map(|node| (node.id, node)).collect();
        let gone: Vec<i64> = self.nodes.keys().filter(|id| !seen.contains_key(id)).copied().collect();
        for id in gone {
            // One answer without a node may be the panel's hiccup (an empty list while its
            // database restarts, a page boundary that moved between two pages): a node is removed
            // once two answers in a row lack it, not removed and added back.
            match self.nodes.get_mut(&id) {
                Some(tracked) if !tracked.missing => tracked.missing = true,
                _ => {
                    if let Some(node) = self.nodes.remove(&id) {
                        changes.push(Change::node(Kind::NodeRemoved, id, &node));
                    }
                }
            }
        }
        for (id, node) in seen {
            match self.nodes.get_mut(&id) {
                Some(tracked) => changes.extend(step(id, tracked, node, now_ms, timing)),
                None => {
                    let tracked = first_sight(node, now_ms);
                    if self.seeded {
                        changes.push(Change::node(Kind::NodeAdded, id, &tracked));
                    }
                    self.nodes.insert(id, tracked);
                }
            }
        }
        if let Some(core) = core {
            changes.extend(self.core_step(core, now_ms, timing.down_after_ms));
        }
        self.seeded = true;
        changes
    }

    fn core_step(&mut self, core: &CoreStatus, now_ms: i64, down_after_ms: i64) -> Option<Change> {
        if core.started {
            let outage = self.core.take().filter(|outage| outage.sent)?;
            let duration = outage.lasted(now_ms);
            return Some(Change {
                since_ms: Some(outage.since_ms),
                duration_ms: Some(duration),
                ..Change::of(Kind::CoreRecovered)
            });
        }
        let outage = self.core.get_or_insert_with(|| Outage::new(now_ms, None));
        if outage.sent || !outage.long_enough(now_ms, down_after_ms) {
            return None;
        }
        outage.sent = true;
        Some(Change { since_ms: Some(outage.since_ms), ..Change::of(Kind::CoreDown) })
    }

    /// How many nodes are in an outage that was reported, and how many are watched.
    pub fn counts(&self) -> (usize, usize) {
        let down = self.nodes.values().filter(|node| node.down.as_ref().is_some_and(|d| d.sent)).count();
        (down, self.nodes.len())
    }
}

/// A node seen for the first time: an outage starts now if it is neither connected nor off.
fn first_sight(node: &Node, now_ms: i64) -> Tracked {
    let down = (node.status != NodeStatus::Connected && !node.status.is_off())
        .then(|| Outage::new(now_ms, node.message.clone()));
    Tracked {
        name: node.name.clone(),
        address: node.address.clone(),
        port: node.port,
        status: node.status.clone(),
        message: node.message.clone(),
        down,
        flaps: 0,
        flap_window_ms: None,
        missing: false,
        back_ms: None,
    }
}

/// One known node's step from `tracked` to `node`, at `now_ms`.
fn step(id: i64, tracked: &mut Tracked, node: &Node, now_ms: i64, timing: Timing) -> Vec<Change> {
    let was_off = tracked.status.is_off();
    tracked.missing = false;
    tracked.name.clone_from(&node.name);
    tracked.address.clone_from(&node.address);
    tracked.port = node.port;
    tracked.status = node.status.clone();
    tracked.message.clone_from(&node.message);
    let mut changes = Vec::new();
    match (was_off, node.status.is_off()) {
        (false, true) => {
            // Turned off on purpose: whatever outage was open ends without a recovery message
            // (the change still carries it, so its record is closed).
            changes.push(Change::node(Kind::NodeDisabled, id, tracked));
            tracked.down = None;
            (tracked.flaps, tracked.flap_window_ms, tracked.back_ms) = (0, None, None);
            return changes;
        }
        (true, true) => return changes,
        (true, false) => changes.push(Change::node(Kind::NodeEnabled, id, tracked)),
        (false, false) => {}
    }
    if node.status == NodeStatus::Connected {
        changes.extend(back_up(id, tracked, now_ms));
        // A window ends only while the node is up: a drop still open at its end would otherwise
        // be counted in the next window, and a window of two polls would never hold two blips.
        changes.extend(flapping(id, tracked, now_ms, timing.flap_window_ms));
    } else {
        changes.extend(still_down(id, tracked, now_ms, timing));
    }
    changes
}

/// The node is connected at `now_ms`: a reported outage recovers; a short one counts as a blip.
fn back_up(id: i64, tracked: &mut Tracked, now_ms: i64) -> Option<Change> {
    let outage = tracked.down.take()?;
    tracked.back_ms = Some(now_ms);
    if outage.sent {
        let mut change = Change::node(Kind::NodeRecovered, id, tracked);
        change.duration_ms = Some(outage.lasted(now_ms));
        change.since_ms = Some(outage.since_ms);
        change.reason = outage.reason;
        return Some(change);
    }
    tracked.flaps = tracked.flaps.saturating_add(1);
    tracked.flap_window_ms.get_or_insert(outage.since_ms);
    None
}

/// The node is not connected at `now_ms`: an outage starts, or is reported once it is long enough:
/// `down_after`, or a whole flap window when it started within one of the node coming back.
fn still_down(id: i64, tracked: &mut Tracked, now_ms: i64, timing: Timing) -> Option<Change> {
    let message = tracked.message.clone();
    let back_ms = tracked.back_ms;
    let outage = tracked.down.get_or_insert_with(|| Outage::new(now_ms, message.clone()));
    if message.is_some() {
        outage.reason = message;
    }
    let restless = back_ms.is_some_and(|back| outage.since_ms.saturating_sub(back) < timing.flap_window_ms);
    let needed = if restless { timing.flap_window_ms } else { timing.down_after_ms };
    if outage.sent || !outage.long_enough(now_ms, needed) {
        return None;
    }
    outage.sent = true;
    let since = outage.since_ms;
    // A real outage is reported as such; the blips before it are part of its story, not a flap.
    (tracked.flaps, tracked.flap_window_ms) = (0, None);
    let mut change = Change::node(Kind::NodeDown, id, tracked);
    change.reason = tracked.down.as_ref().and_then(|outage| outage.reason.clone());
    change.since_ms = Some(since);
    Some(change)
}

/// Once the flapping window has lasted `window_ms`: one `node_flapping` when it held
/// [`FLAPS_MIN`] blips or more, and a new window.
fn flapping(id: i64, tracked: &mut Tracked, now_ms: i64, window_ms: i64) -> Option<Change> {
    let start = tracked.flap_window_ms?.min(now_ms);
    let length = elapsed(start, now_ms);
    if length < window_ms {
        return None;
    }
    let flaps = std::mem::take(&mut tracked.flaps);
    tracked.flap_window_ms = None;
    (flaps >= FLAPS_MIN).then(|| Change {
        since_ms: Some(start),
        duration_ms: Some(length),
        flaps: Some(flaps),
        ..Change::node(Kind::NodeFlapping, id, tracked)
    })
}

#[cfg(test)]
#[path = "track_tests.rs"]
mod tests;
