//! Sample events shipped with the binary, for `check` and `render --action`: one per known action,
//! taken from real Marzban 0.8.4 and Marzneshin 0.7.4 payloads with the secrets removed and the names
//! changed.

use serde_json::Value;
use time::OffsetDateTime;

use super::{Digest, DigestEntry};
use crate::event::{parse_batch, Action, Event, Family, NodeContext, PlanState, UserState, WATCH_ACTIONS};

const SAMPLES: &str = include_str!("samples.json");

/// The action used to try the `default` template.
pub const UNKNOWN_ACTION: &str = "user_hwid_added";

/// One sample event per known action, received at `received_at`.
pub fn events(received_at: OffsetDateTime) -> Vec<Event> {
    let batch = parse_batch(SAMPLES.as_bytes(), received_at, None).expect("the samples are a JSON array");
    debug_assert!(batch.rejected.is_empty(), "every sample is an event");
    let mut events = batch.events;
    events.extend(WATCH_ACTIONS.iter().map(|action| watch_sample(action, received_at)));
    events
}

/// The sample of a node watch action: a Marzban node that lost its connection ten minutes ago,
/// as marzban-live reports one whose address nothing listens on.
fn watch_sample(action: &str, at: OffsetDateTime) -> Event {
    let now = at.unix_timestamp();
    let (core, panel) = (action.starts_with("core_"), action.starts_with("panel_"));
    let node = NodeContext {
        id: (!core && !panel).then_some(3),
        name: if core {
            "core".into()
        } else if panel {
            "eu-1".into()
        } else {
            "de-fra-2".into()
        },
        address: (!core && !panel).then(|| "203.0.113.7".into()),
        port: (!core && !panel).then_some(62050),
        status: Some(
            if action.ends_with("_recovered") || action == "node_added" { "connected" } else { "error" }.into(),
        ),
        since: Some(now - 600),
        duration: Some(600),
        flaps: (action == "node_flapping").then_some(7),
    };
    let reason = match action {
        "panel_unreachable" | "panel_recovered" => "the panel did not answer: timed out",
        _ => "[Errno 111] Connection refused",
    };
    let action = Action::parse(action).expect("watch actions are valid names");
    Event::watch(action, Some("eu-1".into()), Family::Marzban, at, node, Some(reason.into()))
}

/// The sample for `action`. Actions without a sample of their own (`default`, or a custom one)
/// get the `user_updated` sample under their name.
pub fn event_for(action: &str, received_at: OffsetDateTime) -> Result<Event, String> {
    let samples = events(received_at);
    if let Some(event) = samples.iter().find(|e| e.action.as_str() == action) {
        return Ok(event.clone());
    }
    let name = if action == super::DEFAULT_TEMPLATE { UNKNOWN_ACTION } else { action };
    let mut event = samples.into_iter().find(|e| e.action.as_str() == "user_updated").expect("a user_updated sample");
    event.action = Action::parse(name)?;
    Ok(event)
}

/// A state of `event`'s user before it that differs in every field a change line shows, so
/// `check` renders each of them; `None` for an event without a user.
pub fn earlier_state(event: &Event) -> Option<UserState> {
    let now = UserState::of(event)?;
    let other = |text: &Option<String>, instead: &str| match text.as_deref() {
        Some(text) if text == instead => Some(format!("{instead} (earlier)")),
        _ => Some(instead.to_owned()),
    };
    Some(UserState {
        status: other(&now.status, "disabled"),
        data_limit: Some(now.data_limit.unwrap_or(0).saturating_add(1 << 30)),
        used_traffic: Some(now.used_traffic.unwrap_or(0).saturating_add(1 << 30)),
        expire: Some(now.expire.unwrap_or(event.event_time.unix_timestamp()).saturating_sub(30 * 86_400)),
        on_hold_expire_duration: Some(now.on_hold_expire_duration.unwrap_or(0).saturating_add(86_400)),
        on_hold_timeout: Some(now.on_hold_timeout.unwrap_or(0).saturating_add(86_400)),
        reset_strategy: other(&now.reset_strategy, "month"),
        protocols: vec!["removed protocol".into()],
        groups: vec!["removed group".into()],
        next_plan: Some(PlanState { data_limit: Some(1 << 30), ..PlanState::default() })
            .filter(|_| now.next_plan.is_none()),
        note: other(&now.note, "an earlier note"),
        owner: other(&now.owner, "an earlier owner"),
    })
}

/// The known actions, in the order of the samples.
pub fn actions() -> Vec<String> {
    events(OffsetDateTime::UNIX_EPOCH).into_iter().map(|e| e.action.to_string()).collect()
}

/// `event` with every free-text value made as long and awkward as the panels allow: multi-byte,
/// right-to-left, markdown and mentions. Renders of it show whether clamping holds.
pub fn stressed(event: &Event) -> Event {
    let long_name = format!("{}*_@everyone", "ü".repeat(300));
    let mut event = event.clone();
    event.username = long_name.clone();
    event.reason = Some("دلیل ".repeat(300));
    if let Some(user) = &mut event.user {
        user.username = Some(long_name.clone());
        user.note = Some(format!("{} <@&1> **bold** {}", "یادداشت ".repeat(60), "汉字".repeat(200)));
        user.status = Some("on_hold".into());
        user.extra.insert("group_names".into(), Value::from(vec!["g".repeat(500); 3]));
    }
    for admin in [&mut event.by, &mut event.admin].into_iter().flatten() {
        admin.username = Some("管理员".repeat(200));
    }
    event
}

/// Digest contexts for `action` (`default`: an action without a digest template of its own): a
/// message of two embeds with 40 users, and one with 150 long, multi-byte names.
pub fn digests(action: &str, received_at: OffsetDateTime) -> Vec<Digest> {
    let action = if action == super::DEFAULT_TEMPLATE { UNKNOWN_ACTION } else { action };
    let at = received_at.unix_timestamp() as f64;
    let digest = |names: Vec<String>, part: usize, parts: usize, total: usize| Digest {
        action: action.to_owned(),
        total,
        count: names.len(),
        part,
        parts,
        events: names
            .iter()
            .map(|n| DigestEntry { username: n.clone(), panel: Some("eu-1".into()), event_time: at })
            .collect(),
        usernames: names,
        panel: Some("eu-1".into()),
        event_time: at,
    };
    let users = |n: usize, name: &dyn Fn(usize) -> String| (0..n).map(name).collect::<Vec<_>>();
    vec![
        digest(users(20, &|i| format!("user_{i:03}")), 1, 2, 40),
        digest(users(20, &|i| format!("user_{:03}", i + 20)), 2, 2, 40),
        digest(users(150, &|i| format!("کاربر_{i}_{}", "ü".repeat(20))), 1, 1, 150),
    ]
}
