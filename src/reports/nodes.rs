//! A report's nodes section: per panel, each node that was down during the period (node watch's
//! recorded outages), how many outages and how long it was down within the period.
//!
//! Outages are the reported ones (a `node_down` was sent): blips and flapping are not outages. An
//! outage that began before the period counts from the period's start, and one still open at the
//! period's end (or that ended later) counts up to the end and is marked open. The section is
//! left out when no node was down during the period, so a panel without node watch, or a quiet
//! one, shows no nodes section at all.

use std::collections::BTreeMap;

use crate::outbox::PastOutage;
use crate::render::{listed_chars, NodeOutages};

/// Nodes listed per panel at most; the rest are counted ("and 3 more").
pub const NODES_SHOWN: usize = 15;

/// Characters the listed node names may take: a field holds 1,024, and each line adds its
/// counts and words (about 60 characters in any language), and "and K more" must fit after them.
const NODES_CHARS: usize = 900;

/// What each line costs besides the node's name, in the longest language.
const LINE_CHARS: usize = 60;

/// The nodes of `panel` (`""`: without a label) down during `from_ms..to_ms`, the longest down
/// first, and how many more were down than are listed.
pub fn node_outages(outages: &[PastOutage], panel: &str, from_ms: i64, to_ms: i64) -> (Vec<NodeOutages>, i64) {
    // By id and name: Marzban on SQLite gives a new node the id of one deleted, so an id alone
    // could merge two nodes (a renamed node shows as two lines instead).
    let mut by_node: BTreeMap<(i64, &str), NodeOutages> = BTreeMap::new();
    for outage in outages.iter().filter(|outage| outage.panel.as_deref().unwrap_or_default() == panel) {
        let end = outage.ended_ms.map_or(to_ms, |ended| ended.min(to_ms));
        let down_ms = end.saturating_sub(outage.started_ms.max(from_ms)).max(0);
        let node = by_node.entry((outage.node_id, &outage.name)).or_insert_with(|| NodeOutages {
            name: outage.name.clone(),
            outages: 0,
            down: 0,
            open: false,
        });
        node.outages = node.outages.saturating_add(1);
        node.down = node.down.saturating_add(down_ms.div_euclid(1000));
        node.open |= outage.ended_ms.is_none_or(|ended| ended >= to_ms);
    }
    let mut nodes: Vec<NodeOutages> = by_node.into_values().collect();
    nodes.sort_by(|a, b| b.down.cmp(&a.down).then_with(|| a.name.cmp(&b.name)));
    let total = nodes.len();
    let mut used = 0;
    let shown = nodes
        .iter()
        .take(NODES_SHOWN)
        .take_while(|node| {
            used += listed_chars(&node.name) + LINE_CHARS;
            used <= NODES_CHARS
        })
        .count();
    nodes.truncate(shown);
    (nodes, (total - shown) as i64)
}

/// The panels with an outage during the period, as the tally keys them (`""`: without a label).
pub fn panels(outages: &[PastOutage]) -> impl Iterator<Item = &str> {
    outages.iter().map(|outage| outage.panel.as_deref().unwrap_or_default())
}
