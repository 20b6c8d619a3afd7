use super::*;

const POLL: i64 = 30_000;
const DOWN_AFTER: i64 = 120_000;
const TIMING: Timing = Timing::new(DOWN_AFTER, POLL);

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
            Some(nodes) => state.observe(&nodes, None, now, TIMING),
            None => state.unreachable("timed out", now, DOWN_AFTER),
        };
        all.extend(changes.into_iter().map(|change| (now, change)));
    }
    all
}

#[test]
fn a_node_down_is_reported_once_after_down_after_and_its_recovery_with_the_downtime() {
    let mut state = WatchState::default();
    assert!(state.observe(&[up(1)], None, 0, TIMING).is_empty(), "the first poll only learns");
    let changes = run(&mut state, POLL, 20, |_| Some(vec![down(1)]));
    assert_eq!(changes.len(), 1, "{changes:?}");
    let (at, change) = &changes[0];
    assert_eq!((change.kind, *at), (Kind::NodeDown, POLL + DOWN_AFTER));
    assert_eq!(change.since_ms, Some(POLL));
    assert_eq!(change.reason.as_deref(), Some("[Errno 111] Connection refused"));
    let back = state.observe(&[up(1)], None, 21 * POLL, TIMING);
    assert_eq!(actions(&back), ["node_recovered"]);
    assert_eq!(back[0].duration_ms, Some(20 * POLL));
}

#[test]
fn a_flapping_node_is_reported_once_per_window_with_a_count_and_never_as_down() {
    let mut state = WatchState::default();
    state.observe(&[up(1)], None, 0, TIMING);
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
    state.observe(&ids.iter().map(|id| up(*id)).collect::<Vec<_>>(), None, 0, TIMING);
    let changes = run(&mut state, POLL, 10, |_| Some(ids.iter().map(|id| down(*id)).collect()));
    let times: std::collections::BTreeSet<i64> = changes.iter().map(|(at, _)| *at).collect();
    assert_eq!(changes.len(), 20);
    assert_eq!(times.len(), 1, "all in the same poll, so delivery sees one burst (a digest)");
}

#[test]
fn an_unreachable_panel_is_one_event_and_its_recovery_not_every_node_down() {
    let mut state = WatchState::default();
    state.observe(&[up(1), up(2)], None, 0, TIMING);
    let changes = run(&mut state, POLL, 12, |_| None);
    assert_eq!(changes.iter().map(|(_, c)| c.kind.action()).collect::<Vec<_>>(), ["panel_unreachable"]);
    assert_eq!(changes[0].1.reason.as_deref(), Some("timed out"));
    let back = state.observe(&[up(1), up(2)], None, 13 * POLL, TIMING);
    assert_eq!(actions(&back), ["panel_recovered"]);
    assert_eq!(back[0].duration_ms, Some(12 * POLL));
    let blip = run(&mut state, 14 * POLL, 2, |_| None);
    assert!(blip.is_empty(), "a minute without an answer is not reported");
    assert!(state.observe(&[up(1), up(2)], None, 16 * POLL, TIMING).is_empty());
}

#[test]
fn admin_changes_are_reported_and_a_disabled_node_is_no_outage() {
    let mut state = WatchState::default();
    state.observe(&[up(1)], None, 0, TIMING);
    assert_eq!(actions(&state.observe(&[up(1), down(2)], None, POLL, TIMING)), ["node_added"]);
    assert!(state.observe(&[down(2)], None, 2 * POLL, TIMING).is_empty(), "one answer without it");
    assert_eq!(actions(&state.observe(&[down(2)], None, 2 * POLL + 1, TIMING)), ["node_removed"]);
    let off = node(2, NodeStatus::Disabled);
    assert_eq!(actions(&state.observe(std::slice::from_ref(&off), None, 3 * POLL, TIMING)), ["node_disabled"]);
    assert!(run(&mut state, 4 * POLL, 10, |_| Some(vec![off.clone()])).is_empty());
    assert_eq!(actions(&state.observe(&[down(2)], None, 14 * POLL, TIMING)), ["node_enabled"]);
    let later = run(&mut state, 15 * POLL, 5, |_| Some(vec![down(2)]));
    assert_eq!(later.len(), 1);
    assert_eq!((later[0].1.kind, later[0].1.since_ms), (Kind::NodeDown, Some(14 * POLL)), "down since enabled");
}

#[test]
fn a_restart_neither_repeats_a_down_nor_forgets_one() {
    let mut state = WatchState::default();
    state.observe(&[up(1), up(2)], None, 0, TIMING);
    let downs = run(&mut state, POLL, 6, |_| Some(vec![down(1), down(2)]));
    assert_eq!(downs.len(), 2);
    // What the outbox keeps, read back after a restart.
    let mut restarted: WatchState = serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    assert_eq!(restarted, state);
    let changes = restarted.observe(&[down(1), up(2)], None, 100 * POLL, TIMING);
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
        seen.extend(state.observe(&[], Some(&stopped), poll * POLL, TIMING));
    }
    assert_eq!(actions(&seen), ["core_down"]);
    let back = state.observe(&[], Some(&started), 8 * POLL, TIMING);
    assert_eq!(actions(&back), ["core_recovered"]);
    assert_eq!(back[0].duration_ms, Some(8 * POLL));
}

#[test]
fn a_clock_that_jumps_back_neither_delays_a_down_nor_gives_a_negative_downtime() {
    let hour = 3_600_000;
    let mut state = WatchState::default();
    state.observe(&[up(1), up(2)], None, 10 * hour, TIMING);
    state.observe(&[up(1), down(2)], None, 10 * hour + POLL, TIMING);
    assert_eq!(actions(&state.observe(&[down(1), down(2)], None, 10 * hour + 5 * POLL, TIMING)), ["node_down"]);
    // The host's clock is set back an hour (NTP, a VM restored): node 1's outage is still
    // reported after NODE_DOWN_AFTER, not an hour late, and node 2's recovery lasts no less than 0.
    let back = 9 * hour;
    let changes = run(&mut state, back, 5, |_| Some(vec![down(1), up(2)]));
    let found: Vec<_> = changes.iter().map(|(at, change)| (*at, change.kind.action())).collect();
    assert_eq!(found, [(back, "node_recovered"), (back + DOWN_AFTER, "node_down")]);
    assert!(changes.iter().all(|(_, change)| change.duration_ms.is_none_or(|d| d >= 0)), "{changes:?}");
}

#[test]
fn one_answer_missing_nodes_is_no_removal_and_no_addition() {
    // A thousand nodes, then one empty answer (the panel's database restarting), then all again.
    let all: Vec<Node> = (1..=1000).map(up).collect();
    let mut state = WatchState::default();
    state.observe(&all, None, 0, TIMING);
    assert!(state.observe(&[], None, POLL, TIMING).is_empty());
    assert!(state.observe(&all, None, 2 * POLL, TIMING).is_empty(), "nothing was removed, nothing is added");
    // A node down when it went missing keeps its outage; gone twice, it is removed (and closed).
    state.observe(&[down(1)], None, 3 * POLL, TIMING);
    let changes = run(&mut state, 4 * POLL, 4, |_| Some(vec![down(1)]));
    assert_eq!(changes.iter().filter(|(_, change)| change.kind == Kind::NodeRemoved).count(), 999);
    assert_eq!(actions(&state.observe(&[], None, 8 * POLL, TIMING)), Vec::<&str>::new());
    let gone = state.observe(&[], None, 9 * POLL, TIMING);
    assert_eq!(actions(&gone), ["node_removed"]);
    assert!(gone[0].node.as_ref().is_some_and(|(_, node)| node.down.as_ref().is_some_and(|d| d.sent)));
}

const HOUR: i64 = 3_600_000;

/// A node down at odd polls and up at even ones for an hour of polls, with `down_after_ms`.
fn flapping_every_poll_for_an_hour(down_after_ms: i64) -> Vec<Change> {
    let timing = Timing::new(down_after_ms, POLL);
    let mut state = WatchState::default();
    (0..HOUR / POLL)
        .flat_map(|poll| {
            let nodes = if poll % 2 == 0 { [up(1)] } else { [down(1)] };
            state.observe(&nodes, None, poll * POLL, timing)
        })
        .collect()
}

#[test]
fn a_node_flapping_every_poll_is_reported_as_flapping_and_a_bounded_number_of_times() {
    for down_after in [0, POLL, DOWN_AFTER] {
        let window = Timing::new(down_after, POLL).flap_window_ms;
        let changes = flapping_every_poll_for_an_hour(down_after);
        let count = |kind: Kind| changes.iter().filter(|change| change.kind == kind).count();
        // The bound: the first drop's node_down/node_recovered pair at most (it is a real outage
        // when NODE_DOWN_AFTER is 0), then at most one node_flapping per flap window:
        // 62 messages an hour for down_after 0 and 30 s (window 1 min), 32 for 2 min.
        let bound = 2 + HOUR / window;
        assert!(
            changes.len() as i64 <= bound,
            "down_after {down_after}: {} > {bound}: {:?}",
            changes.len(),
            actions(&changes)
        );
        assert!(
            count(Kind::NodeDown) <= 1 && count(Kind::NodeRecovered) <= 1,
            "down_after {down_after}: {:?}",
            actions(&changes)
        );
        assert!(count(Kind::NodeFlapping) >= 1, "down_after {down_after}: a flapping node is reported");
        let flapping = changes.iter().find(|change| change.kind == Kind::NodeFlapping).unwrap();
        assert!(flapping.flaps.unwrap() >= FLAPS_MIN && flapping.duration_ms.unwrap() >= window, "{flapping:?}");
    }
}

#[test]
fn one_real_outage_is_one_node_down_then_one_node_recovered_whatever_down_after() {
    for down_after in [0, POLL, DOWN_AFTER] {
        let timing = Timing::new(down_after, POLL);
        let mut state = WatchState::default();
        let changes: Vec<Change> = (0..40)
            .flat_map(|poll| {
                let nodes = if (1..=20).contains(&poll) { [down(1)] } else { [up(1)] };
                state.observe(&nodes, None, poll * POLL, timing)
            })
            .collect();
        assert_eq!(actions(&changes), ["node_down", "node_recovered"], "down_after {down_after}");
        assert_eq!((changes[0].since_ms, changes[1].duration_ms), (Some(POLL), Some(20 * POLL)));
    }
}

#[test]
fn an_outage_soon_after_a_recovery_is_still_reported_once_it_lasts_a_flap_window() {
    let timing = Timing::new(0, POLL);
    let mut state = WatchState::default();
    state.observe(&[up(1)], None, 0, timing);
    let mut found = Vec::new();
    for poll in 1..30 {
        let nodes = if poll == 6 { [up(1)] } else { [down(1)] };
        found.extend(state.observe(&nodes, None, poll * POLL, timing).iter().map(|c| (poll * POLL, c.kind.action())));
    }
    let again = 7 * POLL + timing.flap_window_ms;
    assert_eq!(found, [(POLL, "node_down"), (6 * POLL, "node_recovered"), (again, "node_down")]);
}
