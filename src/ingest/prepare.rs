//! Turning a body into rows to store: parse, fold, route and render each event. CPU work, run off
//! the async workers.
//!
//! Folding: one edit that changes a user's status (disables, enables, limits or expires them)
//! reaches the relay as `user_updated` followed by the status event, in the same request, by the
//! same admin. With folding on (`FOLD_UPDATES`, the default) the `user_updated` of such a pair is
//! not stored, so the change is one embed: the status event's, routed and mentioned as the status
//! event is. Both events carry the same user, so nothing the update showed is lost.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use time::OffsetDateTime;

use super::IngestError;
use crate::destination::{Destination, Origin, Target};
use crate::event::{parse_batch, Event, Rejection};
use crate::outbox::{NewRow, StoredDestination, Tallied};
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
    /// Every accepted event (folded, muted and unrouted ones too), for scheduled reports.
    pub tally: Vec<Tallied>,
}

/// Parses, routes and renders a body: CPU work, run off the async workers.
pub fn prepare(
    body: &[u8],
    received_at: OffsetDateTime,
    panel: Option<&str>,
    renderer: &Renderer,
    router: &Router,
    fold_updates: bool,
) -> Result<Prepared, IngestError> {
    let batch = parse_batch(body, received_at, panel)?;
    let mut prepared = prepare_events(&batch.events, received_at, renderer, router, fold_updates);
    prepared.rejected = batch.rejected;
    prepared.rejected_total = batch.rejected_total;
    Ok(prepared)
}

/// Folds, routes and renders events received at `received_at`, as [`prepare`] does for a body's
/// events. `render` previews through it.
pub fn prepare_events(
    events: &[Event],
    received_at: OffsetDateTime,
    renderer: &Renderer,
    router: &Router,
    fold_updates: bool,
) -> Prepared {
    let folded = if fold_updates { folded_updates(events) } else { Vec::new() };
    let received_at_ms = (received_at.unix_timestamp_nanos() / 1_000_000) as i64;
    let mut prepared = Prepared {
        accepted: events.len(),
        actions: events.iter().map(|e| e.action.to_string()).collect(),
        rejected: Vec::new(),
        rejected_total: 0,
        rows: Vec::with_capacity(events.len()),
        destinations: BTreeMap::new(),
        remember: Vec::new(),
        tally: events
            .iter()
            .map(|event| Tallied {
                action: event.action.to_string(),
                panel: event.panel.clone(),
                username: event.username.clone(),
                received_at_ms,
                fingerprint: event.fingerprint.clone(),
                may_be_resend: event.may_be_resend,
            })
            .collect(),
    };
    for (index, event) in events.iter().enumerate() {
        if folded.contains(&index) {
            log::debug!("{} of {:?} is folded into its status event", event.action, event.username);
            continue;
        }
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
    prepared
}

/// Actions a panel raises right after the `user_updated` of an edit that changed the user's status.
const STATUS_ACTIONS: [&str; 4] = ["user_disabled", "user_enabled", "user_limited", "user_expired"];

/// The indexes of the `user_updated` events in `events` that are folded into a status event: the
/// same user's next event in the request is a status event by the same admin.
fn folded_updates(events: &[Event]) -> Vec<usize> {
    fn actor(event: &Event) -> Option<Option<&str>> {
        event.by.as_ref().map(|by| by.username.as_deref())
    }
    // Read from the end, so each user's next event is known when their update is reached.
    let mut next: HashMap<(&str, Option<&str>), &Event> = HashMap::new();
    let mut folded = Vec::new();
    for (index, event) in events.iter().enumerate().rev() {
        let user = (event.username.as_str(), event.panel.as_deref());
        if event.action.as_str() == "user_updated" {
            let status = next.get(&user).filter(|status| STATUS_ACTIONS.contains(&status.action.as_str()));
            if status.is_some_and(|status| actor(status) == actor(event)) {
                folded.push(index);
            }
        }
        next.insert(user, event);
    }
    folded.reverse();
    folded
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events of a JSON array of `(action, username, by)`.
    fn events(list: &[(&str, &str, Option<&str>)]) -> Vec<Event> {
        let body: Vec<serde_json::Value> = list
            .iter()
            .map(|(action, username, by)| {
                serde_json::json!({
                    "action": action,
                    "username": username,
                    "by": by.map(|name| serde_json::json!({"username": name, "is_sudo": true})),
                    "user": {"username": username, "status": "active"},
                    "enqueued_at": 1795801155.0,
                    "send_at": 1795801155.0,
                    "tries": 0,
                })
            })
            .collect();
        let body = serde_json::to_vec(&body).unwrap();
        parse_batch(&body, OffsetDateTime::now_utc(), None).unwrap().events
    }

    #[test]
    fn folds_an_update_into_the_status_event_of_the_same_edit() {
        let batch = events(&[
            ("user_updated", "a", Some("admin")),
            ("user_disabled", "a", Some("admin")),
            ("user_updated", "b", Some("admin")),
            ("user_created", "c", Some("admin")),
            ("user_expired", "b", Some("admin")),
        ]);
        assert_eq!(folded_updates(&batch), [0, 2], "b's next event is its expiry, whatever comes between");
    }

    #[test]
    fn keeps_updates_that_are_not_one_edit_with_a_status_change() {
        let batch = events(&[
            ("user_updated", "a", Some("admin")),
            ("user_disabled", "a", Some("other")),
            ("user_updated", "b", Some("admin")),
            ("user_updated", "b", Some("admin")),
            ("user_updated", "c", Some("admin")),
            ("user_deleted", "c", Some("admin")),
            ("user_updated", "d", Some("admin")),
        ]);
        assert_eq!(folded_updates(&batch), Vec::<usize>::new(), "another admin, no status event, the last event");
        let disabled_first = events(&[("user_disabled", "a", Some("admin")), ("user_updated", "a", Some("admin"))]);
        assert!(folded_updates(&disabled_first).is_empty(), "a status event before the update is no pair");
    }
}
