//! A tracked change as an event of the pipeline: the node's name in `username` (so digests list
//! nodes), the panel's label in `panel`, the panel's reason in `reason`, the rest in `node`.

use time::OffsetDateTime;

use super::track::{Change, Kind};
use crate::event::{Action, Event, Family, NodeContext};

/// What `node.name` is for the panel's core, and for a panel without a label.
pub const CORE_NAME: &str = "core";
pub const PANEL_NAME: &str = "panel";

/// The event of `change` on `panel` (of `family`) at `at`.
pub fn event(change: &Change, panel: Option<&str>, family: Family, at: OffsetDateTime) -> Event {
    let seconds = |ms: i64| ms.div_euclid(1000);
    let mut node = match (&change.node, change.kind) {
        (Some((id, tracked)), _) => NodeContext {
            id: Some(*id),
            name: tracked.name.clone(),
            address: Some(tracked.address.clone()).filter(|a| !a.is_empty()),
            port: tracked.port,
            status: Some(tracked.status.as_str().to_owned()),
            ..NodeContext::default()
        },
        (None, Kind::CoreDown | Kind::CoreRecovered) => NodeContext { name: CORE_NAME.into(), ..Default::default() },
        (None, _) => NodeContext { name: panel.unwrap_or(PANEL_NAME).to_owned(), ..Default::default() },
    };
    node.since = change.since_ms.map(seconds);
    node.duration = change.duration_ms.map(seconds);
    node.flaps = change.flaps;
    let action = Action::parse(change.kind.action()).expect("watch actions are valid action names");
    Event::watch(action, panel.map(str::to_owned), family, at, node, change.reason.clone())
}
