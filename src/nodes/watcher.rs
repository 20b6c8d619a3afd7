//! The node watch task of one panel: every `NODE_POLL_INTERVAL` it asks the panel for its nodes
//! and core (within [`Watcher::round_budget`], whatever the panel does), tracks what changed,
//! and stores the new state with the rows of the events it caused in one outbox transaction,
//! then wakes delivery. It runs supervised as [`NODES_TASK`]: a watcher that dies is restarted and
//! shows in `/readyz`, and so does one whose round is late (stuck).
//!
//! It never blocks ingest or delivery: it holds no lock they take, and the panel's slowness only
//! delays its own next round.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::events::event;
use super::metrics::NodeMetrics;
use super::track::{Change, Kind, WatchState};
use super::NodeWatchSettings;
use crate::deliver::{node_post, node_posts, Dispatch};
use crate::destination::Destination;
use crate::event::Family;
use crate::metrics::Health;
use crate::outbox::{unix_ms, NewRow, OutageRecord, Outbox, OutboxError, PostKey};
use crate::panel::{CoreStatus, Node, PanelClient, PanelError};
use crate::render::Templates;
use crate::routing::Router;

/// The name node watch is supervised, counted and shown in `/readyz` under: this for the panel
/// without a label, and followed by `:<label>` for a labelled one ([`Watcher::task`]).
pub const NODES_TASK: &str = "task:nodes";

/// Calls one round makes at most in the usual case (a login, the nodes, the core), each within
/// the client's timeout: a round that takes longer is cut.
const CALLS_PER_ROUND: u32 = 4;

/// What a watcher works with.
#[derive(Clone)]
pub struct Watcher {
    pub client: Arc<PanelClient>,
    pub outbox: Outbox,
    pub templates: Arc<Templates>,
    pub router: Arc<Router>,
    /// Wakes delivery; none when only storing (tests, the benchmark).
    pub dispatch: Option<Dispatch>,
    pub metrics: NodeMetrics,
    pub health: Arc<Health>,
    pub settings: NodeWatchSettings,
    /// The per-call timeout of the client (`PANEL_API_TIMEOUT`).
    pub call_timeout: Duration,
    /// The panel's label, for events and the outbox.
    pub panel: Option<String>,
}

impl Watcher {
    /// The name this watcher is supervised and shown in `/readyz` under: `task:nodes:<label>`,
    /// or `task:nodes` for the panel without a label.
    pub fn task(&self) -> String {
        match &self.panel {
            Some(label) => format!("{NODES_TASK}:{label}"),
            None => NODES_TASK.to_owned(),
        }
    }

    /// The longest one round may take before it is cut and counts as the panel not answering.
    pub fn round_budget(&self) -> Duration {
        self.call_timeout.saturating_mul(CALLS_PER_ROUND)
    }

    /// The state stored for this panel (taken over from the label it had, when its label changed);
    /// an empty one on the first start, or when the stored one cannot be read (logged: the next
    /// poll only learns the nodes again).
    pub async fn load(&self) -> Result<WatchState, OutboxError> {
        let url = self.client.base_url().to_owned();
        if let Some(old) = self.outbox.adopt_watch(self.panel.clone(), url, node_posts).await? {
            let label = self.panel.as_deref().unwrap_or("-");
            log::info!("node watch: the panel's label changed from {old:?} to {label:?}: its nodes and outages go on");
        }
        let Some(json) = self.outbox.watch_state(self.panel.clone()).await? else {
            return Ok(WatchState::default());
        };
        Ok(serde_json::from_str(&json).unwrap_or_else(|err| {
            log::warn!("node watch: the stored state cannot be read ({err}); learning the nodes again");
            WatchState::default()
        }))
    }

    /// One round at `now`: ask, track, store. `state` becomes the new state only once it is
    /// stored (with its events); otherwise the next round starts again from the stored one.
    /// Returns the changes stored.
    pub async fn round(&self, state: &mut WatchState, now: OffsetDateTime) -> Result<Vec<Change>, OutboxError> {
        let answer = match tokio::time::timeout(self.round_budget(), self.ask()).await {
            Ok(answer) => answer,
            Err(_) => Err(PanelError::Unreachable(format!("no answer within {:?}", self.round_budget()))),
        };
        let now_ms = unix_ms(now);
        let timing = self.settings.timing();
        let mut next = state.clone();
        next.url = Some(self.client.base_url().to_owned());
        let changes = match &answer {
            Ok((nodes, core)) => next.observe(nodes, core.as_ref(), now_ms, timing),
            Err(err) => next.unreachable(&err.to_string(), now_ms, timing.down_after_ms),
        };
        if let Err(err) = &answer {
            log::debug!("node watch: {err}");
        }
        let panel = self.panel.as_deref().unwrap_or("-");
        self.metrics.polled(panel, state, &next, answer.is_ok());
        if next == *state && changes.is_empty() {
            return Ok(changes);
        }
        let family = self.client.family().await.unwrap_or(Family::Marzban);
        let (rows, destinations) = self.rows(&changes, family, now, now_ms);
        let json = serde_json::to_string(&next).expect("the watch state always serialises");
        let (outages, renamed) = (outage_records(&changes, now_ms), self.renamed(state, &next));
        self.outbox.store_watch(self.panel.clone(), json, rows, outages, renamed).await?;
        // Counted once stored: a round whose store failed is done again and finds them again.
        let kinds: Vec<Kind> = changes.iter().map(|change| change.kind).collect();
        self.metrics.reported(panel, &kinds);
        *state = next;
        for change in &changes {
            log::info!("node watch: {}", describe(change));
        }
        if let Some(dispatch) = &self.dispatch {
            destinations.values().for_each(|destination| dispatch.wake(destination));
        }
        Ok(changes)
    }

    /// The forum posts to move for the nodes `next` knows under another name than `state` (a node
    /// renamed on the panel keeps its id): from the old name's post to the new name's.
    fn renamed(&self, state: &WatchState, next: &WatchState) -> Vec<(PostKey, PostKey)> {
        let panel = self.panel.as_deref();
        next.nodes
            .iter()
            .filter_map(|(id, node)| Some((state.nodes.get(id)?, node)))
            .filter(|(before, node)| before.name != node.name)
            .map(|(before, node)| (node_post(panel, &before.name), node_post(panel, &node.name)))
            .collect()
    }

    async fn ask(&self) -> Result<(Vec<Node>, Option<CoreStatus>), PanelError> {
        let nodes = self.client.nodes().await?;
        // A core status that cannot be read says nothing about the core: it is left as it was.
        let core = self.client.core().await.unwrap_or_else(|err| {
            log::debug!("node watch: the core's status: {err}");
            None
        });
        Ok((nodes, core))
    }

    /// Routes and renders the events of `changes` as the panel's own events are.
    fn rows(
        &self,
        changes: &[Change],
        family: Family,
        now: OffsetDateTime,
        now_ms: i64,
    ) -> (Vec<NewRow>, BTreeMap<String, Arc<Destination>>) {
        let renderer = self.templates.current();
        let (mut rows, mut destinations) = (Vec::new(), BTreeMap::new());
        for change in changes {
            let event = event(change, self.panel.as_deref(), family, now);
            let routes = self.router.route(&event);
            if routes.is_empty() {
                continue;
            }
            let part = serde_json::to_string(&renderer.render(&event)).expect("a rendered part always serialises");
            for route in routes {
                rows.push(NewRow {
                    destination: route.destination.name.clone(),
                    received_at_ms: now_ms,
                    action: event.action.to_string(),
                    username: event.username.clone(),
                    panel: event.panel.clone(),
                    part: part.clone(),
                    fingerprint: None,
                    may_be_resend: false,
                    mentions: route.mentions,
                });
                destinations.entry(route.destination.name.clone()).or_insert(route.destination);
            }
        }
        (rows, destinations)
    }

    /// Rounds until `shutdown`, one every `NODE_POLL_INTERVAL`. A round that cannot be stored
    /// (a full outbox) is logged and done again at the next.
    pub async fn run(self, shutdown: CancellationToken) {
        // Promised once, before the first try, and not again until a round: a load that hangs, or
        // keeps failing, makes the task late in /readyz.
        self.promise_next_round();
        let mut state = loop {
            match self.load().await {
                Ok(state) => break state,
                Err(err) => log::warn!("node watch: cannot read the stored state ({err}); trying again"),
            }
            if self.pause(&shutdown).await {
                return;
            }
        };
        loop {
            self.promise_next_round();
            if let Err(err) = self.round(&mut state, OffsetDateTime::now_utc()).await {
                log::warn!("node watch: cannot store what changed ({err}); trying again at the next poll");
            }
            self.promise_next_round();
            if self.pause(&shutdown).await {
                return;
            }
        }
    }

    /// Tells `/readyz` when the next round will be over at the latest: a poll interval, a round,
    /// and as much again for the outbox.
    fn promise_next_round(&self) {
        let late = self.settings.poll_interval.saturating_add(self.round_budget().saturating_mul(2));
        if let Some(by) = SystemTime::now().checked_add(late) {
            self.health.due_by(&self.task(), by);
        }
    }

    /// Waits a poll interval; `true` when `shutdown` came first.
    async fn pause(&self, shutdown: &CancellationToken) -> bool {
        tokio::select! {
            () = shutdown.cancelled() => true,
            () = tokio::time::sleep(self.settings.poll_interval) => false,
        }
    }
}

/// The outages to record for reports: opened by a `node_down`, closed when it recovers, or when
/// the node is removed or turned off during it (at `now_ms`).
fn outage_records(changes: &[Change], now_ms: i64) -> Vec<OutageRecord> {
    changes
        .iter()
        .filter_map(|change| {
            let (id, node) = change.node.as_ref()?;
            let (started_ms, ended_ms) = match change.kind {
                Kind::NodeDown => (change.since_ms?, None),
                Kind::NodeRecovered => {
                    let started = change.since_ms?;
                    (started, Some(started.saturating_add(change.duration_ms?)))
                }
                Kind::NodeRemoved | Kind::NodeDisabled => {
                    let open = node.down.as_ref().filter(|outage| outage.sent)?;
                    (open.since_ms, Some(now_ms))
                }
                _ => return None,
            };
            Some(OutageRecord { node_id: *id, name: node.name.clone(), started_ms, ended_ms })
        })
        .collect()
}

/// A line for the log: the action and the node's id (its name is the panel's text, in the message).
fn describe(change: &Change) -> String {
    match &change.node {
        Some((id, _)) => format!("{} (node id {id})", change.kind.action()),
        None => change.kind.action().to_owned(),
    }
}
