//! Turning a body into rows to store: parse, fold, route and render each event. CPU work, run off
//! the async workers.
//!
//! Folding: one edit that changes a user's status (disables, enables, limits or expires them)
//! reaches the relay as `user_updated` followed by the status event, in the same request, by the
//! same admin. With folding on (`FOLD_UPDATES`, the default) the `user_updated` of such a pair is
//! not stored, so the change is one embed: the status event's, routed and mentioned as the status
//! event is. Both events carry the same user, so nothing the update showed is lost. Marzban's
//! `user_expired` and `user_limited` name no admin even when an edit caused them: such a status
//! event folds an update that already shows the user in that status, and names the update's admin.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use time::OffsetDateTime;

use super::IngestError;
use crate::destination::{Destination, Origin, Target};
use crate::event::{parse_batch, Event, Rejection, UserState};
use crate::outbox::{unix_ms, KeptStates, NewRow, Outbox, SeenState, StatesHeld, StoredDestination, Tallied, UserKey};
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
    /// The last state of each user the events showed (or that the user is gone) that the outbox
    /// is to write (see [`split_written`]); empty without states.
    pub states: Vec<SeenState>,
    /// The users whose states were read, held until `states` are stored (so another request
    /// about them reads what this one stores, not what both would have read).
    pub held: Option<StatesHeld>,
    /// The state each user is left in, for [`split_written`] to say which are written.
    latest: Vec<Latest>,
}

/// Parses, routes and renders a body: CPU work, run off the async workers. With `states`, each
/// event is rendered with what changed since the state of its user the outbox remembers.
pub fn prepare(
    body: &[u8],
    received_at: OffsetDateTime,
    panel: Option<&str>,
    (renderer, router): (&Renderer, &Router),
    fold_updates: bool,
    states: Option<&Outbox>,
) -> Result<Prepared, IngestError> {
    let batch = parse_batch(body, received_at, panel)?;
    let (stored, mut held) = match states {
        Some(outbox) => {
            let mut users: Vec<UserKey> = batch.events.iter().map(user_key).collect();
            users.sort_unstable();
            users.dedup();
            let (stored, held) = outbox.user_states_for_update(&users).map_err(|err| {
                log::error!("could not read the users' last states: {err}");
                IngestError::Unavailable
            })?;
            (stored, Some(held))
        }
        None => (HashMap::new(), None),
    };
    let known: Known = stored.iter().map(|(key, (state, _))| (key.clone(), state.clone())).collect();
    let mut prepared = prepare_events(&batch.events, received_at, renderer, router, fold_updates, &known);
    let latest = std::mem::take(&mut prepared.latest);
    if let Some(held) = &mut held {
        let (written, cached) = split_written(latest, unix_ms(received_at), &stored);
        held.remember(cached);
        prepared.states = written;
    }
    prepared.rejected = batch.rejected;
    prepared.rejected_total = batch.rejected_total;
    prepared.held = held;
    Ok(prepared)
}

/// Folds, routes and renders events received at `received_at`, as [`prepare`] does for a body's
/// events, each with what changed since the state of its user in `known` or earlier in `events`.
/// `render` previews through it.
pub fn prepare_events(
    events: &[Event],
    received_at: OffsetDateTime,
    renderer: &Renderer,
    router: &Router,
    fold_updates: bool,
    known: &Known,
) -> Prepared {
    let mut seen = Seen::new(known);
    let pairs = if fold_updates { folded_updates(events) } else { Vec::new() };
    let folded: Vec<usize> = pairs.iter().map(|(update, _)| *update).collect();
    let received_at_ms = unix_ms(received_at);
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
        states: Vec::new(),
        held: None,
        latest: Vec::new(),
    };
    for (index, event) in events.iter().enumerate() {
        if folded.contains(&index) {
            // The status event shows the same user, and what the edit changed since before it.
            log::debug!("{} of {:?} is folded into its status event", event.action, event.username);
            continue;
        }
        let previous = seen.replace(event);
        let routes = router.route(event);
        if routes.is_empty() {
            log::debug!("{} of {:?} goes nowhere (muted or no rule matches)", event.action, event.username);
            continue;
        }
        let part = match pairs.iter().find(|(_, status)| *status == index) {
            // The edit's admin, where the status event names none.
            Some((update, _)) if event.by.is_none() => {
                let by = events[*update].by.clone();
                renderer.render_after(&Event { by, ..event.clone() }, previous.as_deref())
            }
            _ => renderer.render_after(event, previous.as_deref()),
        };
        let part = serde_json::to_string(&part).expect("a rendered part always serialises");
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
    prepared.latest = seen.into_latest();
    prepared
}

/// How long a kept state that did not change may go without being written again: its `seen_at`
/// only has to be right to the day for `USER_STATE_RETENTION`, and its usage is only shown when a
/// reset clears it.
const SEEN_AT_SLACK_MS: i64 = 86_400_000;

/// A user and the state a request leaves them in (`None`: deleted).
type Latest = (UserKey, Option<Arc<UserState>>);

/// The states a request seen at `seen_at_ms` leaves its users in, as stored: those to write, and
/// what the cache of states is to hold once they are. A state that differs from the one stored,
/// written less than a day ago, at most by more usage is not written: that would cost a page
/// write in the outbox for what no card shows (usage is shown as a change only when a reset
/// lowers it). The cache holds it, with the time the outbox has for it, so that it is written
/// within a day; each state is serialised once, for both.
fn split_written(latest: Vec<Latest>, seen_at_ms: i64, stored: &KeptStates) -> (Vec<SeenState>, Vec<SeenState>) {
    let mut written = Vec::with_capacity(latest.len());
    let mut cached = Vec::with_capacity(latest.len());
    for (key, state) in latest {
        let kept_since = stored.get(&key).and_then(|(kept, at)| {
            let recent = seen_at_ms.saturating_sub(*at) < SEEN_AT_SLACK_MS;
            (recent && state.as_ref().is_some_and(|now| now.only_more_usage_than(kept))).then_some(*at)
        });
        let (panel, username) = key;
        let state = state.map(|state| Arc::from(state.to_json()));
        let seen = SeenState { panel, username, state, seen_at_ms: kept_since.unwrap_or(seen_at_ms) };
        if kept_since.is_none() {
            written.push(seen.clone());
        }
        cached.push(seen);
    }
    (written, cached)
}

/// The state each user of `events` is left in, after those in `known`: what the relay would
/// remember once it received `events`. Deleted users are absent.
pub fn states_after(events: &[Event], known: &Known) -> Known {
    let mut seen = Seen::new(known);
    for event in events {
        seen.replace(event);
    }
    let mut states = known.clone();
    for (key, state) in seen.latest {
        match state {
            Some(state) => states.insert(key, state),
            None => states.remove(&key),
        };
    }
    states
}

/// Users' states as the relay knows them before a request: shared with the cache of states.
pub type Known = HashMap<UserKey, Arc<UserState>>;

/// The longest username whose state is remembered, in bytes.
const USERNAME_KEPT_BYTES: usize = 128;

/// A user's key in the remembered states: the panel label (`""` for none) and the username.
fn user_key(event: &Event) -> UserKey {
    (event.panel.clone().unwrap_or_default(), event.username.clone())
}

/// The users' states as a batch goes: what the outbox remembered, then what each event showed.
struct Seen<'a> {
    known: &'a Known,
    /// Users met in this batch, in order, with the state they were last seen in (`None`: deleted).
    latest: Vec<Latest>,
}

impl<'a> Seen<'a> {
    fn new(known: &'a Known) -> Self {
        Self { known, latest: Vec::new() }
    }

    /// The state `event`'s user was in before it, and records the state it shows. A deletion
    /// forgets the user; an event without a user changes nothing else.
    fn replace(&mut self, event: &Event) -> Option<Arc<UserState>> {
        let key = user_key(event);
        let now = if event.action.as_str() == "user_deleted" {
            Some(None)
        } else {
            UserState::of(event).map(|state| Some(Arc::new(state)))
        };
        let at = self.latest.iter().position(|(k, _)| *k == key);
        let before = match at {
            Some(i) => self.latest[i].1.clone(),
            None => self.known.get(&key).cloned(),
        };
        if let Some(now) = now {
            match at {
                Some(i) => self.latest[i].1 = now,
                None => self.latest.push((key, now)),
            }
        }
        before
    }

    /// The state each user met is left in, but users whose names are too long to remember.
    fn into_latest(self) -> Vec<Latest> {
        // Panels' usernames are at most 32 characters; a longer one is not remembered, so a key
        // takes at most this much room.
        let mut latest = self.latest;
        latest.retain(|((_, username), _)| username.len() <= USERNAME_KEPT_BYTES);
        latest
    }
}

/// Actions a panel raises right after the `user_updated` of an edit that changed the user's status.
const STATUS_ACTIONS: [&str; 4] = ["user_disabled", "user_enabled", "user_limited", "user_expired"];

/// Status events Marzban raises without naming an admin, even when an admin's edit caused them.
const NAMELESS_STATUS_ACTIONS: [&str; 2] = ["user_expired", "user_limited"];

/// The `user_updated` events in `events` that are folded into a status event, each with that
/// status event's index: the same user's next event in the request is a status event by the same
/// admin, or one that names no admin (Marzban's expiry and limit) of an update that shows the user
/// in that status already.
fn folded_updates(events: &[Event]) -> Vec<(usize, usize)> {
    fn actor(event: &Event) -> Option<Option<&str>> {
        event.by.as_ref().map(|by| by.username.as_deref())
    }
    fn status(event: &Event) -> Option<&str> {
        event.user.as_ref().and_then(|user| user.status.as_deref())
    }
    let one_edit = |update: &Event, event: &Event| {
        let action = event.action.as_str();
        STATUS_ACTIONS.contains(&action)
            && (actor(event) == actor(update)
                || (event.by.is_none() && NAMELESS_STATUS_ACTIONS.contains(&action) && status(update) == status(event)))
    };
    // Read from the end, so each user's next event is known when their update is reached.
    let mut next: HashMap<(&str, Option<&str>), usize> = HashMap::new();
    let mut folded = Vec::new();
    for (index, event) in events.iter().enumerate().rev() {
        let user = (event.username.as_str(), event.panel.as_deref());
        if event.action.as_str() == "user_updated" {
            if let Some(&later) = next.get(&user).filter(|&&later| one_edit(event, &events[later])) {
                folded.push((index, later));
            }
        }
        next.insert(user, index);
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

    /// `kept` with one field changed, for every field a card shows but usage.
    fn edits_of_each_field(kept: &UserState) -> Vec<(&'static str, UserState)> {
        let plan = crate::event::PlanState { data_limit: Some(1), ..Default::default() };
        let word = Some("other".to_owned());
        vec![
            ("status", UserState { status: word.clone(), ..kept.clone() }),
            ("data_limit", UserState { data_limit: Some(20), ..kept.clone() }),
            ("expire", UserState { expire: Some(1), ..kept.clone() }),
            ("on_hold_expire_duration", UserState { on_hold_expire_duration: Some(1), ..kept.clone() }),
            ("on_hold_timeout", UserState { on_hold_timeout: Some(1), ..kept.clone() }),
            ("reset_strategy", UserState { reset_strategy: word.clone(), ..kept.clone() }),
            ("protocols", UserState { protocols: vec!["trojan".into()], ..kept.clone() }),
            ("groups", UserState { groups: vec!["vip".into()], ..kept.clone() }),
            ("next_plan", UserState { next_plan: Some(plan), ..kept.clone() }),
            ("note", UserState { note: word.clone(), ..kept.clone() }),
            ("owner", UserState { owner: word, ..kept.clone() }),
        ]
    }

    #[test]
    fn a_state_with_only_more_usage_is_written_daily_and_an_edit_or_a_reset_at_once() {
        let kept = UserState { data_limit: Some(10), used_traffic: Some(5), ..UserState::default() };
        let key = (String::new(), "a".to_owned());
        let stored = HashMap::from([(key.clone(), (Arc::new(kept.clone()), 1_000))]);
        // What is written, and what is cached, of the state `now` seen at `at`.
        let split = |now: Option<UserState>, at: i64| {
            let (written, mut cached) = split_written(vec![(key.clone(), now.map(Arc::new))], at, &stored);
            assert_eq!(cached.len(), 1, "the cache always learns the state");
            (written, cached.remove(0))
        };
        let more_usage = UserState { used_traffic: Some(9), ..kept.clone() };
        let (written, cached) = split(Some(more_usage.clone()), 2_000);
        assert!(written.is_empty(), "more usage, within a day: not written");
        assert_eq!(cached.seen_at_ms, 1_000, "cached with the time the outbox has");
        assert_eq!(cached.state.as_deref(), Some(more_usage.to_json().as_str()), "and the new usage");
        let (written, _) = split(Some(more_usage), 1_000 + SEEN_AT_SLACK_MS);
        assert_eq!(written.len(), 1, "a day later it is written");
        let (written, cached) = split(Some(UserState { used_traffic: Some(0), ..kept.clone() }), 2_000);
        assert_eq!((written.len(), cached.seen_at_ms), (1, 2_000), "a reset is written at once");
        assert_eq!(written[0], cached, "as the cache holds it");
        for (field, edited) in edits_of_each_field(&kept) {
            assert_eq!(split(Some(edited), 2_000).0.len(), 1, "an edit of {field} is written at once");
        }
        let (written, cached) = split(None, 2_000);
        assert_eq!((written.len(), cached.state), (1, None), "a deletion is written, and the cache forgets the user");
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
        assert_eq!(folded_updates(&batch), [(0, 1), (2, 4)], "b's next event is its expiry, whatever comes between");
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
        assert!(folded_updates(&batch).is_empty(), "another admin, no status event, the last event");
        let disabled_first = events(&[("user_disabled", "a", Some("admin")), ("user_updated", "a", Some("admin"))]);
        assert!(folded_updates(&disabled_first).is_empty(), "a status event before the update is no pair");
    }
}
