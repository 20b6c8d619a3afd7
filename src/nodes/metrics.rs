//! Node watch's metrics, registered with the relay's (`relay_` prefix). Labels come from the
//! configuration (the panel's label) and from node ids (numbers, at most [`NODE_SERIES_MAX`] per
//! panel), never from node names, which the panel's admins choose and change.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::track::{Kind, WatchState};
use crate::panel::NodeStatus;

/// The most nodes of one panel with a `relay_node_up` series of their own.
pub const NODE_SERIES_MAX: usize = 200;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PanelLabel {
    panel: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    panel: String,
    node: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    panel: String,
    action: &'static str,
}

/// Every node watch metric.
#[derive(Debug, Default, Clone)]
pub struct NodeMetrics {
    node_up: Family<NodeLabels, Gauge>,
    nodes_down: Family<PanelLabel, Gauge>,
    outages: Family<PanelLabel, Counter>,
    events: Family<ActionLabel, Counter>,
    api_up: Family<PanelLabel, Gauge>,
    poll_failures: Family<PanelLabel, Counter>,
}

impl NodeMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "node_up",
            "1 while the node is connected, 0 otherwise (-1: turned off), by panel and node id",
            self.node_up.clone(),
        );
        registry.register("nodes_down", "Nodes in a reported outage, by panel", self.nodes_down.clone());
        registry.register("node_outages", "Node outages reported (node_down), by panel", self.outages.clone());
        registry.register("node_events", "Node watch events stored, by panel and action", self.events.clone());
        registry.register("panel_api_up", "1 while the panel's API answered the last poll", self.api_up.clone());
        registry.register("panel_poll_failures", "Polls of the panel's API that failed", self.poll_failures.clone());
    }

    /// Events of `kinds` stored for `panel` (counted once stored, so a retried round counts
    /// them once).
    pub fn reported(&self, panel: &str, kinds: &[Kind]) {
        let label = PanelLabel { panel: panel.to_owned() };
        for kind in kinds {
            self.events.get_or_create(&ActionLabel { panel: panel.to_owned(), action: kind.action() }).inc();
            if *kind == Kind::NodeDown {
                self.outages.get_or_create(&label).inc();
            }
        }
    }

    /// After a poll: `state` is what is known now, `before` what was known, `answered` whether
    /// the panel answered.
    pub fn polled(&self, panel: &str, before: &WatchState, state: &WatchState, answered: bool) {
        let label = PanelLabel { panel: panel.to_owned() };
        self.api_up.get_or_create(&label).set(i64::from(answered));
        if !answered {
            self.poll_failures.get_or_create(&label).inc();
        }
        self.nodes_down.get_or_create(&label).set(state.counts().0 as i64);
        let labels = |id: &i64| NodeLabels { panel: panel.to_owned(), node: id.to_string() };
        for id in before.nodes.keys().filter(|id| !state.nodes.contains_key(id)) {
            self.node_up.remove(&labels(id));
        }
        // Past the first NODE_SERIES_MAX ids a node has no series, even one it had while it was
        // among them (nodes with lower ids were added since): left, it would stay frozen.
        for (id, _) in state.nodes.iter().skip(NODE_SERIES_MAX) {
            self.node_up.remove(&labels(id));
        }
        for (id, node) in state.nodes.iter().take(NODE_SERIES_MAX) {
            let up = match &node.status {
                NodeStatus::Connected => 1,
                status if status.is_off() => -1,
                _ => 0,
            };
            self.node_up.get_or_create(&labels(id)).set(up);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::Node;

    fn state(ids: std::ops::Range<i64>) -> WatchState {
        let nodes: Vec<Node> = ids
            .map(|id| Node {
                id,
                name: format!("n{id}"),
                address: String::new(),
                port: None,
                status: NodeStatus::Connected,
                message: None,
            })
            .collect();
        let mut state = WatchState::default();
        state.observe(&nodes, None, 0, crate::nodes::track::Timing::new(120_000, 30_000));
        state
    }

    fn node_series(metrics: &NodeMetrics) -> usize {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        text.lines().filter(|line| line.starts_with("node_up{")).count()
    }

    #[test]
    fn node_series_stay_at_most_node_series_max_when_lower_ids_are_added() {
        let metrics = NodeMetrics::default();
        let (before, after) = (state(300..600), state(0..600));
        metrics.polled("eu", &WatchState::default(), &before, true);
        assert_eq!(node_series(&metrics), NODE_SERIES_MAX);
        metrics.polled("eu", &before, &after, true);
        assert_eq!(node_series(&metrics), NODE_SERIES_MAX);
    }
}
