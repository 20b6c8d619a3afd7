use super::*;

const POLL: i64 = 30_000;
const DOWN_AFTER: i64 = 120_000;

fn node(id: i64, status: NodeStatus) -> Node {
    let message = (status != NodeStatus::Connected).then(|| "[Errno 111] Connection refused".to_owned());
    Node { id, name: format!("node-{id}"), address: format!("10.0.0.{id}"), port: Some(62050), status, message }
}

fn up(id: i64) -> Node {
    node(id, NodeStatus::Connected)
}

fn down(id: i64) -> Node {
    node(id, NodeStatus::Error)
}

fn actions(changes: &[Change]) -> Vec<&'static str> {
    changes.iter().map(|change| change.kind.action()).collect()
}

/// Polls `state` every [`POLL`] from `from` (ms) for `polls` polls with the nodes `at` gives for
/// each poll's time; returns every change with its time.
fn run(state: &mut WatchState, from: i64, polls: i64, at: impl Fn(i64) -> Option<Vec<Node>>) -> Vec<(i64, Change)> {
    let mut all = Vec::new();
    for poll in 0..polls {
        let now = from + poll * POLL;
        let changes = match at(now) {
            Some(nodes) => state.observe(&nodes, None, now, DOWN_AFTER),
            None => state.unreachable("timed out", now, DOWN_AFTER),
        };
        all.extend(changes.into_iter().map(|change| (now, change)));
    }
    all
}

#[test]
fn a_node_down_is_reported_once_after_down_after_and_its_recovery_with_the_downtime() {
    let mut state = WatchState::default();
    assert!(state.observe(&[up(1)], None, 0, DOWN_AFTER).is_empty(), "the first poll only learns");
    let changes = run(&mut state, POLL, 20, |_| Some(vec![down(1)]));
    assert_eq!(changes.len(), 1, "{changes:?}");
    let (at, change) = &changes[0];
    assert_eq!((change.kind, *at), (Kind::NodeDown, POLL + DOWN_AFTER));
    assert_eq!(change.since_ms, Some(POLL));
    assert_eq!(change.reason.as_deref(), Some("[Errno 111] Connection refused"));
    let back = state.observe(&[up(1)], None, 21 * POLL, DOWN_AFTER);
    assert_eq!(actions(&back), ["node_recovered"]);
    assert_eq!(back[0].duration_ms, Some(20 * POLL));
}

#[test]
fn a_flapping_node_is_reported_once_per_window_with_a_count_and_never_as_down() {
    let mut state = WatchState::default();
    state.observe(&[up(1)], None, 0, DOWN_AFTER);
    // Down on odd polls, up on even ones, for ten minutes.
    let changes = run(&mut state, POLL, 20, |now| Some(vec![if (now / POLL) % 2 == 1 { down(1) } else { up(1) }]));
    assert!(changes.iter().all(|(_, c)| c.kind == Kind::NodeFlapping), "{changes:?}");
    let windows = changes.len() as i64;
    assert!((3..=5).contains(&windows), "one report per {DOWN_AFTER} ms window over 10 min: {windows}");
    let first = &changes[0].1;
    assert!(first.flaps.unwrap() >= FLAPS_MIN && first.duration_ms.unwrap() >= DOWN_AFTER, "{first:?}");
}

#[test]
fn twenty_nodes_down_together_are_reported_in_one_poll() {
    let mut state = WatchState::default();
    let ids: Vec<i64> = (1..=20).collect();
    state.observe(&ids.iter().map(|id| up(*id)).collect::<Vec<_>>(), None, 0, DOWN_AFTER);
    let changes = run(&mut state, POLL, 10, |_| Some(ids.iter().map(|id| down(*id)).collect()));
    let times: std::collections::BTreeSet<i64> = changes.iter().map(|(at, _)| *at).collect();
    assert_eq!(changes.len(), 20);
    assert_eq!(times.len(), 1, "all in the same poll, so delivery sees one burst (a digest)");
}

#[test]
fn an_unreachable_panel_is_one_event_and_its_recovery_not_every_node_down() {
    let mut state = WatchState::default();
    state.observe(&[up(1), up(2)], None, 0, DOWN_AFTER);
    let changes = run(&mut state, POLL, 12, |_| None);
    assert_eq!(changes.iter().map(|(_, c)| c.kind.action()).collect::<Vec<_>>(), ["panel_unreachable"]);
    assert_eq!(changes[0].1.reason.as_deref(), Some("timed out"));
    let back = state.observe(&[up(1), up(2)], None, 13 * POLL, DOWN_AFTER);
    assert_eq!(actions(&back), ["panel_recovered"]);
    assert_eq!(back[0].duration_ms, Some(12 * POLL));
    let blip = run(&mut state, 14 * POLL, 2, |_| None);
    assert!(blip.is_empty(), "a minute without an answer is not reported");
    assert!(state.observe(&[up(1), up(2)], None, 16 * POLL, DOWN_AFTER).is_empty());
}

#[test]
fn admin_changes_are_reported_and_a_disabled_node_is_no_outage() {
    let mut state = WatchState::default();
    state.observe(&[up(1)], None, 0, DOWN_AFTER);
    assert_eq!(actions(&state.observe(&[up(1), down(2)], None, POLL, DOWN_AFTER)), ["node_added"]);
    assert_eq!(actions(&state.observe(&[down(2)], None, 2 * POLL, DOWN_AFTER)), ["node_removed"]);
    let off = node(2, NodeStatus::Disabled);
    assert_eq!(actions(&state.observe(std::slice::from_ref(&off), None, 3 * POLL, DOWN_AFTER)), ["node_disabled"]);
    assert!(run(&mut state, 4 * POLL, 10, |_| Some(vec![off.clone()])).is_empty());
    assert_eq!(actions(&state.observe(&[down(2)], None, 14 * POLL, DOWN_AFTER)), ["node_enabled"]);
    let later = run(&mut state, 15 * POLL, 5, |_| Some(vec![down(2)]));
    assert_eq!(later.len(), 1);
    assert_eq!((later[0].1.kind, later[0].1.since_ms), (Kind::NodeDown, Some(14 * POLL)), "down since enabled");
}

#[test]
fn a_restart_neither_repeats_a_down_nor_forgets_one() {
    let mut state = WatchState::default();
    state.observe(&[up(1), up(2)], None, 0, DOWN_AFTER);
    let downs = run(&mut state, POLL, 6, |_| Some(vec![down(1), down(2)]));
    assert_eq!(downs.len(), 2);
    // What the outbox keeps, read back after a restart.
    let mut restarted: WatchState = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(restarted, state);
    let changes = restarted.observe(&[down(1), up(2)], None, 100 * POLL, DOWN_AFTER);
    assert_eq!(actions(&changes), ["node_recovered"], "node 2 recovered while the relay was stopped");
    assert_eq!(changes[0].node.as_ref().unwrap().0, 2);
    assert_eq!(changes[0].duration_ms, Some(99 * POLL));
}

#[test]
fn the_core_is_reported_down_once_and_recovered() {
    let mut state = WatchState::default();
    let stopped = CoreStatus { started: false, version: None };
    let started = CoreStatus { started: true, version: Some("1.8.24".into()) };
    let mut seen = Vec::new();
    for poll in 0..8 {
        seen.extend(state.observe(&[], Some(&stopped), poll * POLL, DOWN_AFTER));
    }
    assert_eq!(actions(&seen), ["core_down"]);
    let back = state.observe(&[], Some(&started), 8 * POLL, DOWN_AFTER);
    assert_eq!(actions(&back), ["core_recovered"]);
    assert_eq!(back[0].duration_ms, Some(8 * POLL));
}
