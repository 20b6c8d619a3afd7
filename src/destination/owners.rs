//! The owner admins' webhooks the relay delivers to: bounded in number, each admin's problems
//! logged once.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;

use super::{Destination, Target};
use crate::discord::{WebhookUrl, WebhookUrlError};

/// `OWNER_DESTINATIONS_MAX` when unset.
pub const DEFAULT_OWNER_DESTINATIONS_MAX: usize = 100;

/// How many characters of an admin's username a log line shows.
const ADMIN_SHOWN_CHARS: usize = 64;

/// The metrics of owner-admin delivery, kept by [`OwnerDestinations`] and exported with the relay's
/// other metrics.
#[derive(Debug, Clone, Default)]
pub struct OwnerMetrics {
    /// Owner admins' webhooks the relay currently delivers to (at most `OWNER_DESTINATIONS_MAX`,
    /// plus ones restored with pending rows).
    pub in_use: Gauge,
    /// Events not copied to their owner admin's webhook because `OWNER_DESTINATIONS_MAX` was
    /// reached (the configured destinations still got them).
    pub skipped: Counter,
}

/// The owner admins' webhooks the relay delivers to, keyed by URL: admins who share one webhook
/// share one destination, so one task and one pace. At most `max` are taken on; past that an event
/// still goes to its configured destinations and only the copy for its owner admin is skipped
/// (counted in `relay_owner_copies_skipped_total`, logged once per admin). Nothing accepted is
/// dropped: destinations restored with pending rows (at start, or by a late wake) are kept even
/// beyond `max`. A destination leaves when delivery forgets it (no rows left for
/// `DELIVERED_RETENTION`), which frees its place.
#[derive(Debug)]
pub struct OwnerDestinations {
    max: usize,
    metrics: OwnerMetrics,
    state: Mutex<OwnerState>,
}

#[derive(Debug, Default)]
struct OwnerState {
    /// By destination name.
    in_use: HashMap<String, Arc<Destination>>,
    /// Admins whose webhook is not a Discord webhook URL.
    refused_log: AdminLog,
    /// Admins whose webhook found no room.
    skipped_log: AdminLog,
}

impl OwnerDestinations {
    /// Room for `max` webhooks (`OWNER_DESTINATIONS_MAX`), counted in `metrics`.
    pub fn new(max: usize, metrics: OwnerMetrics) -> Self {
        Self { max, metrics, state: Mutex::new(OwnerState::default()) }
    }

    /// The destination of `url` (the webhook of `admin`): the one in use, or a new one if there is
    /// room. `None` when there is none (the event's copy for this admin is skipped).
    pub fn admit(&self, url: WebhookUrl, admin: &str) -> Option<Arc<Destination>> {
        let destination = Destination::owner(url);
        let mut state = self.state.lock().ok()?;
        if let Some(destination) = state.in_use.get(&destination.name) {
            return Some(destination.clone());
        }
        if state.in_use.len() >= self.max {
            self.metrics.skipped.inc();
            if let Some(unlogged) = state.skipped_log.should_log(admin, Instant::now()) {
                log::warn!(
                    "admin {}: the relay already delivers to OWNER_DESTINATIONS_MAX ({}) owner webhooks, so this \
                     admin's events are not copied to their webhook (the configured destinations still get \
                     them){}",
                    shown(admin),
                    self.max,
                    and_more(unlogged)
                );
            }
            return None;
        }
        if let Target::Webhook(url) = &destination.target {
            log::info!("owner destination {}: the webhook {url} of admin {}", destination.name, shown(admin));
        }
        let destination = Arc::new(destination);
        state.in_use.insert(destination.name.clone(), destination.clone());
        self.metrics.in_use.set(state.in_use.len() as i64);
        Some(destination)
    }

    /// Takes on `destination` whatever the bound: it has rows to deliver.
    pub fn restore(&self, destination: &Arc<Destination>) {
        if let Ok(mut state) = self.state.lock() {
            state.in_use.entry(destination.name.clone()).or_insert_with(|| destination.clone());
            self.metrics.in_use.set(state.in_use.len() as i64);
        }
    }

    /// Lets go of the destination `name`, freeing its place.
    pub fn forget(&self, name: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.in_use.remove(name);
            self.metrics.in_use.set(state.in_use.len() as i64);
        }
    }

    /// The names of the destinations in use.
    pub fn names(&self) -> Vec<String> {
        self.state.lock().map(|state| state.in_use.keys().cloned().collect()).unwrap_or_default()
    }

    /// Logs, once per admin, that `admin`'s webhook is not a Discord webhook URL.
    pub fn refused(&self, admin: &str, err: &WebhookUrlError) {
        let Ok(mut state) = self.state.lock() else { return };
        if let Some(unlogged) = state.refused_log.should_log(admin, Instant::now()) {
            log::warn!(
                "admin {} has a discord_webhook that is not a Discord webhook URL ({err}); their events are not \
                 delivered there{}",
                shown(admin),
                and_more(unlogged)
            );
        }
    }
}

/// An admin's username as a log line shows it: quoted, escaped, and cut to a readable length.
fn shown(admin: &str) -> String {
    let mut chars = admin.chars();
    let head: String = chars.by_ref().take(ADMIN_SHOWN_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

fn and_more(unlogged: u64) -> String {
    if unlogged == 0 {
        String::new()
    } else {
        format!(" ({unlogged} more such lines were not logged)")
    }
}

/// Which per-admin warnings get logged: each admin once, and at most [`AdminLog::BURST`] lines a
/// minute in all, so a batch of thousands of admins cannot flood the log. Remembers a bounded
/// number of admins (by hash), however many there are and however long their names.
#[derive(Debug, Default)]
struct AdminLog {
    seen: HashSet<u64>,
    window_start: Option<Instant>,
    lines_in_window: usize,
    unlogged: u64,
}

impl AdminLog {
    const BURST: usize = 5;
    const WINDOW: Duration = Duration::from_secs(60);
    const REMEMBERED: usize = 4096;

    /// Whether to log about `admin` now; if so, how many lines were held back since the last one.
    fn should_log(&mut self, admin: &str, now: Instant) -> Option<u64> {
        let mut hasher = DefaultHasher::new();
        admin.hash(&mut hasher);
        if self.seen.len() >= Self::REMEMBERED {
            self.seen.clear();
        }
        if !self.seen.insert(hasher.finish()) {
            return None;
        }
        if self.window_start.is_none_or(|start| now.saturating_duration_since(start) >= Self::WINDOW) {
            self.window_start = Some(now);
            self.lines_in_window = 0;
        }
        if self.lines_in_window >= Self::BURST {
            self.unlogged = self.unlogged.saturating_add(1);
            return None;
        }
        self.lines_in_window += 1;
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_each_admin_once_and_few_lines_a_minute() {
        let mut log = AdminLog::default();
        let now = Instant::now();
        assert_eq!(log.should_log("a", now), Some(0));
        assert_eq!(log.should_log("a", now), None, "once per admin");
        let logged = (0..1000).filter(|i| log.should_log(&format!("admin{i}"), now).is_some()).count();
        assert_eq!(logged, AdminLog::BURST - 1);
        let later = now + AdminLog::WINDOW;
        assert_eq!(log.should_log("late", later), Some(1000 - (AdminLog::BURST as u64 - 1)), "how many were held back");
    }
}
