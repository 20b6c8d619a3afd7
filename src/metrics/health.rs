//! What is wrong with each destination and with the relay's own tasks, behind `/readyz`.
//!
//! Entries are keyed by name: a destination's, or a task's as `task:NAME` ([`TASK_PREFIX`]), so
//! `/readyz` can say which is which without knowing any task.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// The relay's own tasks (`task:prune`, `task:reports`) are kept in [`Health`] under their name
/// with this prefix, which no destination name has.
pub const TASK_PREFIX: &str = "task:";

/// Restarts of one destination's task within this window that make it a crash loop in `/readyz`.
pub const CRASH_LOOP_WINDOW: Duration = Duration::from_secs(900);

/// That many restarts within [`CRASH_LOOP_WINDOW`].
pub const CRASH_LOOP_RESTARTS: usize = 3;

/// What is wrong with each destination, behind `/readyz`: a webhook that is gone (paused), a long
/// wait an answer imposed (parked), a delivery task that stopped unexpectedly (down, or restarted
/// again and again), what Discord accepted that the outbox cannot record (unrecorded); and, as
/// notices that leave the relay ready, shorter waits worth knowing of.
#[derive(Debug, Default)]
pub struct Health {
    destinations: Mutex<BTreeMap<String, DestinationHealth>>,
}

#[derive(Debug, Default)]
struct DestinationHealth {
    paused: Option<String>,
    waiting: Option<Waiting>,
    down: Option<String>,
    restarts: VecDeque<SystemTime>,
    /// Since when, and what, Discord accepted that the outbox could not record yet.
    unrecorded: Option<(SystemTime, String)>,
    /// A task that works in rounds (node watch) promised to finish its next round by then.
    due: Option<SystemTime>,
    /// A connection the task keeps (the Discord gateway) is lost.
    outage: Option<Outage>,
}

/// A connection a task keeps, lost since `since` for `reason`: the relay is not ready once it has
/// lasted `grace` (a reconnect within it is routine).
#[derive(Debug, Clone, PartialEq)]
pub struct Outage {
    pub since: SystemTime,
    pub grace: Duration,
    pub reason: String,
}

/// A destination sending nothing until `until`, for `reason`, shown in `/readyz` until it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub until: SystemTime,
    pub reason: String,
    /// Whether the relay is not ready while it lasts (the destination is parked) or the wait is
    /// only a notice beside `"ready": true`.
    pub blocks: bool,
}

impl Waiting {
    /// `until 2026-12-07T14:30:00Z (another 240 s): reason`, as of `now`.
    fn describe(&self, now: SystemTime) -> String {
        let left = self.until.duration_since(now).unwrap_or_default().as_secs();
        let end = jiff::Timestamp::try_from(self.until)
            .and_then(|at| at.round(jiff::Unit::Second))
            .map_or_else(|_| String::new(), |at| format!("until {at} "));
        format!("{end}(another {left} s): {}", self.reason)
    }

    fn lasts(&self, now: SystemTime) -> bool {
        self.until > now
    }
}

impl Health {
    fn with(&self, destination: &str, change: impl FnOnce(&mut DestinationHealth)) {
        if let Ok(mut destinations) = self.destinations.lock() {
            change(destinations.entry(destination.to_owned()).or_default());
        }
    }

    /// The destination's webhook is gone: nothing is sent to it until restart.
    pub fn pause(&self, destination: &str, reason: &str) {
        self.with(destination, |health| health.paused = Some(reason.to_owned()));
    }

    /// The destination sends nothing until `wait.until`. A wait that ends later is kept: the
    /// destination's pacing keeps the longest wait too.
    pub fn wait(&self, destination: &str, wait: Waiting) {
        self.with(destination, |health| {
            if health.waiting.as_ref().is_none_or(|known| known.until <= wait.until) {
                health.waiting = Some(wait);
            }
        });
    }

    /// The destination's delivery task stopped unexpectedly, for `reason`; it will be restarted.
    pub fn task_stopped(&self, destination: &str, reason: &str) {
        self.with(destination, |health| health.down = Some(reason.to_owned()));
    }

    /// Discord accepted `what` at `since`, and the outbox could not record it yet; `None` once it
    /// is recorded.
    pub fn unrecorded(&self, destination: &str, unrecorded: Option<(SystemTime, String)>) {
        self.with(destination, |health| health.unrecorded = unrecorded);
    }

    /// The destination's delivery task was started again (with no wait pending).
    pub fn task_restarted(&self, destination: &str, at: SystemTime) {
        self.with(destination, |health| {
            health.down = None;
            health.waiting = None;
            // What the stopped task held unrecorded is pending again: the new task sends it.
            health.unrecorded = None;
            health.restarts.push_back(at);
            while health.restarts.len() > CRASH_LOOP_RESTARTS {
                health.restarts.pop_front();
            }
        });
    }

    /// The relay's task `name` will finish its next round by `by`; past it, `/readyz` shows it
    /// stuck.
    pub fn due_by(&self, name: &str, by: SystemTime) {
        self.with(name, |health| health.due = Some(by));
    }

    /// The task `name`'s connection is lost (`Some`), or back (`None`).
    pub fn outage(&self, name: &str, outage: Option<Outage>) {
        self.with(name, |health| health.outage = outage);
    }

    /// Drops what is known about a destination that no longer exists (a forgotten owner webhook).
    pub fn forget(&self, destination: &str) {
        if let Ok(mut destinations) = self.destinations.lock() {
            destinations.remove(destination);
        }
    }

    /// `(destination, reason)` of every paused destination.
    pub fn paused(&self) -> Vec<(String, String)> {
        let Ok(destinations) = self.destinations.lock() else { return Vec::new() };
        destinations.iter().filter_map(|(name, h)| Some((name.clone(), h.paused.clone()?))).collect()
    }

    /// `(destination, problem)` for everything that makes the relay not ready at `now`.
    pub fn problems(&self, now: SystemTime) -> Vec<(String, String)> {
        let Ok(destinations) = self.destinations.lock() else { return Vec::new() };
        let mut problems = Vec::new();
        for (name, health) in destinations.iter() {
            let mut report = |problem: String| problems.push((name.clone(), problem));
            if let Some(reason) = &health.paused {
                report(format!("is paused: {reason}"));
            }
            if let Some(wait) = health.waiting.as_ref().filter(|wait| wait.blocks && wait.lasts(now)) {
                report(format!("is parked {}", wait.describe(now)));
            }
            if let Some((since, what)) = &health.unrecorded {
                let waiting = now.duration_since(*since).unwrap_or_default().as_secs();
                report(format!(
                    "cannot record what Discord accepted ({what}) for {waiting} s; nothing more is sent to it until \
                     that is recorded"
                ));
            }
            // The relay's own tasks (task:prune, task:reports) are tasks, not destinations.
            let task = name.starts_with(TASK_PREFIX);
            if let Some(reason) = &health.down {
                report(if task {
                    format!("stopped unexpectedly ({reason}) and is being restarted")
                } else {
                    format!("has no delivery task: it stopped unexpectedly ({reason}) and is being restarted")
                });
            }
            if let Some(outage) = &health.outage {
                let lasted = now.duration_since(outage.since).unwrap_or_default();
                if lasted >= outage.grace {
                    report(format!("{} (for {} s)", outage.reason, lasted.as_secs()));
                }
            }
            if let Some(late) = health.due.and_then(|due| now.duration_since(due).ok()) {
                report(format!("is stuck: its round is {} s late", late.as_secs()));
            }
            let recent = health
                .restarts
                .iter()
                .filter(|at| now.duration_since(**at).unwrap_or_default() < CRASH_LOOP_WINDOW)
                .count();
            if recent >= CRASH_LOOP_RESTARTS {
                let what = if task { "keeps stopping" } else { "keeps losing its delivery task" };
                report(format!(
                    "{what}: restarted {recent} times in the last {} minutes",
                    CRASH_LOOP_WINDOW.as_secs() / 60
                ));
            }
        }
        problems
    }

    /// The [`Health::problems`] of the names `shown` keeps, as `/readyz` says them: `destination
    /// NAME …`, or the relay's own task by its name (`task:prune stopped unexpectedly …`).
    pub fn reasons(&self, now: SystemTime, shown: impl Fn(&str) -> bool) -> Vec<String> {
        let task = |name: &str| name.starts_with(TASK_PREFIX);
        self.problems(now)
            .into_iter()
            .filter(|(name, _)| shown(name))
            .map(
                |(name, problem)| {
                    if task(&name) {
                        format!("{name} {problem}")
                    } else {
                        format!("destination {name} {problem}")
                    }
                },
            )
            .collect()
    }

    /// `destination NAME waits until …` for every wait that is only a notice, of the destinations
    /// `shown` keeps, at `now`.
    pub fn notices(&self, now: SystemTime, shown: impl Fn(&str) -> bool) -> Vec<String> {
        let Ok(destinations) = self.destinations.lock() else { return Vec::new() };
        destinations
            .iter()
            .filter(|(name, _)| shown(name))
            .filter_map(|(name, health)| {
                let wait = health.waiting.as_ref().filter(|wait| !wait.blocks && wait.lasts(now))?;
                Some(format!("destination {name} waits {}", wait.describe(now)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::{Health, Outage};

    #[test]
    fn a_lost_connection_shows_after_its_grace_and_goes_when_it_is_back() {
        let (health, now) = (Health::default(), SystemTime::now());
        let reason = "has no connection to Discord's gateway: refused".to_owned();
        health.outage("task:gateway", Some(Outage { since: now, grace: Duration::from_secs(60), reason }));
        assert!(health.reasons(now + Duration::from_secs(59), |_| true).is_empty(), "within the grace");
        let shown = health.reasons(now + Duration::from_secs(61), |_| true);
        assert_eq!(shown, ["task:gateway has no connection to Discord's gateway: refused (for 61 s)"]);
        health.outage("task:gateway", None);
        assert!(health.reasons(now + Duration::from_secs(61), |_| true).is_empty(), "back");
    }

    #[test]
    fn a_task_whose_round_is_late_shows_as_stuck_until_it_promises_again() {
        let (health, now) = (Health::default(), SystemTime::now());
        health.due_by("task:nodes", now + Duration::from_secs(90));
        assert!(health.reasons(now, |_| true).is_empty(), "on time");
        let late = now + Duration::from_secs(100);
        assert_eq!(health.reasons(late, |_| true), ["task:nodes is stuck: its round is 10 s late"]);
        health.due_by("task:nodes", late + Duration::from_secs(90));
        assert!(health.reasons(late, |_| true).is_empty(), "a round finished");
    }
}
