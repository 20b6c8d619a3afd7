//! Turning a body into rows to store: parse, route and render each event. CPU work, run off the
//! async workers.

use std::collections::BTreeMap;
use std::sync::Arc;

use time::OffsetDateTime;

use super::IngestError;
use crate::destination::{Destination, Origin, Target};
use crate::event::{parse_batch, Rejection};
use crate::outbox::{NewRow, StoredDestination};
use crate::render::Renderer;
use crate::routing::Router;

/// A parsed, routed and rendered batch, ready to store.
pub struct Prepared {
    pub accepted: usize,
    /// The action of each accepted event, for the metrics.
    pub actions: Vec<String>,
    pub rejected: Vec<Rejection>,
    pub rejected_total: usize,
    pub rows: Vec<NewRow>,
    /// Destinations the rows go to, by name, to wake (and start) their tasks.
    pub destinations: BTreeMap<String, Arc<Destination>>,
    /// Owner admins' webhooks to remember with the rows.
    pub remember: Vec<StoredDestination>,
}

/// Parses, routes and renders a body: CPU work, run off the async workers.
pub fn prepare(
    body: &[u8],
    received_at: OffsetDateTime,
    panel: Option<&str>,
    renderer: &Renderer,
    router: &Router,
) -> Result<Prepared, IngestError> {
    let batch = parse_batch(body, received_at, panel)?;
    let received_at_ms = (received_at.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut prepared = Prepared {
        accepted: batch.events.len(),
        actions: batch.events.iter().map(|e| e.action.to_string()).collect(),
        rejected: batch.rejected,
        rejected_total: batch.rejected_total,
        rows: Vec::with_capacity(batch.events.len()),
        destinations: BTreeMap::new(),
        remember: Vec::new(),
    };
    for event in &batch.events {
        let routes = router.route(event);
        if routes.is_empty() {
            log::debug!("{} of {:?} goes nowhere (muted or no rule matches)", event.action, event.username);
            continue;
        }
        let part = serde_json::to_string(&renderer.render(event)).expect("a rendered part always serialises");
        for route in routes {
            let destination = route.destination;
            if destination.origin() == Origin::Owner && !prepared.destinations.contains_key(&destination.name) {
                if let Target::Webhook(url) = &destination.target {
                    prepared.remember.push(StoredDestination {
                        name: destination.name.clone(),
                        url: url.expose().to_owned(),
                        thread_id: destination.thread_id,
                    });
                }
            }
            prepared.rows.push(NewRow {
                destination: destination.name.clone(),
                received_at_ms,
                action: event.action.to_string(),
                username: event.username.clone(),
                panel: event.panel.clone(),
                part: part.clone(),
                fingerprint: event.fingerprint.clone(),
                may_be_resend: event.may_be_resend,
                mentions: route.mentions,
            });
            prepared.destinations.entry(destination.name.clone()).or_insert(destination);
        }
    }
    Ok(prepared)
}
