//! How delivery retries, paces and gives up, and the retry schedule's jittered backoff.

use std::time::Duration;

use crate::discord;

/// How delivery retries, paces and gives up.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Waits after the 1st, 2nd, … consecutive transient failure; the last repeats.
    pub retry_schedule: Vec<Duration>,
    /// Each wait is randomly shortened or lengthened by up to this fraction.
    pub jitter: f64,
    /// A row that still fails transiently this long after it was received becomes a dead letter.
    pub retry_max_age: Duration,
    /// More pending events than this of one action go out as a digest; 0 turns digests off.
    pub digest_threshold: usize,
    /// Before a burst's first digest goes out, it is held until no event of it has arrived for
    /// this long (at most 10 such windows after its first event), so that a burst the panel sends
    /// over several requests reads as one. Zero sends each burst as soon as it is seen.
    pub digest_window: Duration,
    /// At most this many messages per `channel_window` (Discord's hidden per-channel limit); 0
    /// turns this pacing off.
    pub channel_messages: usize,
    pub channel_window: Duration,
    /// Cool-down after a 429 that gives no delay at all (Discord's sign of a temporary ban).
    pub ban_cooldown: Duration,
    /// A wait of at least this long (a 429, an empty rate-limit bucket, a retry after a failure)
    /// is listed in `/readyz`'s `notices` until it ends; the relay stays ready. Waits an answer
    /// imposed of five minutes or more make it not ready whatever this says.
    pub wait_notice: Duration,
    /// How often a paused destination is reported again.
    pub pause_reminder: Duration,
    /// How often an idle task looks for due rows even without a wake-up.
    pub idle_poll: Duration,
    /// How long the request in flight at shutdown may take before it is abandoned (its rows stay
    /// pending and are sent again after restart). By default a second longer than a request may
    /// take, so a graceful stop never abandons a request Discord may have acted on: a forum post
    /// made, its id not yet recorded, would be made again after the restart.
    pub shutdown_grace: Duration,
    pub timeouts: discord::Timeouts,
    /// Whether more than one panel posts to the relay (`PANELS`, the routes file's panels, and
    /// `POST /`): forum post titles then name the panel (`several_panels` in `forum/titles`).
    pub several_panels: bool,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        let s = Duration::from_secs;
        Self {
            retry_schedule: vec![s(1), s(5), s(30), s(120), s(600), s(1800)],
            jitter: 0.2,
            retry_max_age: s(72 * 3600),
            digest_threshold: 30,
            digest_window: s(5),
            channel_messages: 30,
            channel_window: s(60),
            ban_cooldown: s(600),
            wait_notice: s(60),
            pause_reminder: s(300),
            idle_poll: s(30),
            shutdown_grace: discord::Timeouts::default().request.saturating_add(s(1)),
            timeouts: discord::Timeouts::default(),
            several_panels: false,
        }
    }
}

impl DeliverySettings {
    /// The wait after `failures` consecutive transient failures (1 for the first), jittered.
    pub fn backoff(&self, failures: usize) -> Duration {
        let Some(last) = self.retry_schedule.len().checked_sub(1) else {
            return Duration::from_secs(1);
        };
        let base = self.retry_schedule[failures.saturating_sub(1).min(last)];
        let spread = if self.jitter.is_finite() { self.jitter.clamp(0.0, 1.0) } else { 0.0 };
        let factor = 1.0 - spread + 2.0 * spread * fastrand::f64();
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_never_panics_on_extreme_settings() {
        let settings =
            DeliverySettings { retry_schedule: vec![Duration::MAX], jitter: f64::NAN, ..DeliverySettings::default() };
        assert_eq!(settings.backoff(usize::MAX), Duration::MAX);
        let settings = DeliverySettings { retry_schedule: vec![Duration::MAX], jitter: 1.0, ..settings };
        let _ = settings.backoff(1);
    }

    #[test]
    fn backoff_follows_the_schedule_with_jitter() {
        let settings = DeliverySettings {
            retry_schedule: vec![Duration::from_secs(1), Duration::from_secs(10)],
            jitter: 0.2,
            ..DeliverySettings::default()
        };
        for _ in 0..100 {
            let first = settings.backoff(1);
            assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200), "{first:?}");
            let later = settings.backoff(7);
            assert!(later >= Duration::from_secs(8) && later <= Duration::from_secs(12), "{later:?}");
        }
    }
}
