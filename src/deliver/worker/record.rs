//! Recording what Discord accepted. Once Discord answered 2xx, a message is never sent again
//! because a local step failed: when the outbox cannot write the outcome (a full disk, a write lock
//! held by another process past the busy timeout), the outcome is kept in memory and only its write
//! is retried, with a backoff, while the destination sends nothing else. Its next message must not
//! overtake this one, and in forum mode could need the post this one made.
//!
//! Meanwhile `/readyz` names the destination and the error, and
//! `relay_delivery_record_retries_total` counts the failed writes. A stop before the write
//! succeeds leaves the rows pending, so they are sent again after the restart: the window a crash
//! between Discord's answer and the commit leaves too.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::metrics::{DestinationLabels, Health, Metrics};
use crate::outbox::{Outbox, OutboxError, PostKey};

/// The wait before the first retry of a failed write; it doubles with each failure, up to
/// [`RETRY_MAX`]: a full disk can last, and retrying does not load Discord, only the disk.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// What Discord accepted, as the outbox records it.
#[derive(Debug, Clone)]
pub enum Accepted {
    /// The rows of a message are delivered.
    Rows(Vec<i64>),
    /// Forum mode: the rows are delivered into the post of `key`, which the message made when
    /// `created` is its id; the posts of `ended` (deleted users) are forgotten.
    InPost { ids: Vec<i64>, key: PostKey, created: Option<u64>, ended: Vec<PostKey> },
}

impl Accepted {
    fn events(&self) -> usize {
        match self {
            Accepted::Rows(ids) | Accepted::InPost { ids, .. } => ids.len(),
        }
    }

    async fn write(&self, outbox: &Outbox, destination: &str) -> Result<(), OutboxError> {
        match self {
            Accepted::Rows(ids) => outbox.mark_delivered(ids.clone()).await,
            Accepted::InPost { ids, key, created, ended } => {
                outbox.delivered_in_post(ids.clone(), destination, key, *created, ended.clone()).await
            }
        }
    }
}

/// An outcome the outbox has not recorded yet.
struct Held {
    accepted: Accepted,
    since: Instant,
    failures: u32,
    next_try: Instant,
}

/// Records what Discord accepted for one destination, holding it while the write fails.
pub struct Recorder {
    destination: String,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    labels: DestinationLabels,
    held: Option<Held>,
}

impl Recorder {
    pub fn new(destination: &str, outbox: Outbox, metrics: Arc<Metrics>, health: Arc<Health>) -> Self {
        let labels = DestinationLabels::of(destination);
        Self { destination: destination.to_owned(), outbox, metrics, health, labels, held: None }
    }

    /// Writes `accepted`, or holds it to write again when that fails. Returns how long the
    /// destination waits before its next step: `None` once written.
    pub async fn record(&mut self, accepted: Accepted) -> Option<Duration> {
        let err = accepted.write(&self.outbox, &self.destination).await.err()?;
        let now = Instant::now();
        self.held = Some(Held { accepted, since: now, failures: 0, next_try: now });
        Some(self.failed(&err))
    }

    /// Writes what is held, once its wait is over. `None`: nothing is held (any more); the
    /// destination goes on. `Some(wait)`: still held; look again after `wait`.
    pub async fn retry(&mut self) -> Option<Duration> {
        let held = self.held.as_ref()?;
        let left = held.next_try.saturating_duration_since(Instant::now());
        if !left.is_zero() {
            return Some(left);
        }
        match held.accepted.write(&self.outbox, &self.destination).await {
            Ok(()) => {
                self.recorded();
                None
            }
            Err(err) => Some(self.failed(&err)),
        }
    }

    /// At shutdown: one last write of what is held. Rows that still cannot be recorded stay
    /// pending and are sent again after the restart, which the log says.
    pub async fn last_chance(&mut self) {
        let Some(held) = &mut self.held else { return };
        held.next_try = Instant::now();
        if self.retry().await.is_some() {
            log::error!(
                "{}: stopping with {} events Discord accepted that the outbox could not record; they are sent again \
                 after the restart",
                self.destination,
                self.held.as_ref().map_or(0, |held| held.accepted.events())
            );
        }
    }

    /// Counts a failed write of what is held, says so, and schedules the next one.
    fn failed(&mut self, err: &OutboxError) -> Duration {
        let Some(held) = &mut self.held else { return Duration::ZERO };
        held.failures = held.failures.saturating_add(1);
        let wait = backoff(held.failures);
        held.next_try = Instant::now().checked_add(wait).unwrap_or_else(Instant::now);
        self.metrics.record_retries.get_or_create(&self.labels).inc();
        let (name, events) = (&self.destination, held.accepted.events());
        let what = format!("{events} events: {err}");
        let since = SystemTime::now().checked_sub(held.since.elapsed()).unwrap_or_else(SystemTime::now);
        self.health.unrecorded(name, Some((since, what)));
        if held.failures == 1 {
            log::error!(
                "{name}: Discord accepted {events} events but the outbox could not record them ({err}); they are not \
                 sent again: the write is retried in {wait:?}, and nothing more is sent to {name} until it succeeds"
            );
        } else {
            log::warn!("{name}: still cannot record {events} events Discord accepted ({err}); retrying in {wait:?}");
        }
        wait
    }

    /// What was held is written: the destination goes on.
    fn recorded(&mut self) {
        let Some(held) = self.held.take() else { return };
        self.health.unrecorded(&self.destination, None);
        log::info!(
            "{}: recorded the {} events Discord accepted {:.1} s ago, after {} failed writes; delivering again",
            self.destination,
            held.accepted.events(),
            held.since.elapsed().as_secs_f64(),
            held.failures
        );
    }
}

/// The wait after `failures` failed writes in a row.
fn backoff(failures: u32) -> Duration {
    RETRY_FIRST.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(RETRY_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_its_cap_and_never_overflows() {
        let waits: Vec<Duration> = (1..=8).map(backoff).collect();
        let ms: Vec<u128> = waits.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000]);
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
    }
}
