//! What the worker does with Discord's answer, one method per outcome: mark delivered, wait out a
//! 429 or a ban, retry later, isolate and dead-letter a refused message, or pause the destination.

use std::time::Duration;

use tokio::time::Instant;

use super::Worker;
use crate::deliver::{Sent, Step};
use crate::discord::{self, Outcome, Scope, Wait};
use crate::metrics::ScopeLabels;
use crate::outbox::{now_ms, HealthKind, OutboxError, RowMeta};

impl Worker {
    /// Records what Discord said about the message of `rows` (`embeds` embeds), which carried
    /// `sent`, and says what the task does next.
    pub(super) async fn settle(
        &mut self,
        rows: &[RowMeta],
        embeds: usize,
        outcome: Outcome,
        sent: Sent,
    ) -> Result<Step, OutboxError> {
        match outcome {
            Outcome::Delivered => self.delivered(rows, embeds, sent).await,
            Outcome::RateLimited { retry_after: Some(wait), scope } => {
                self.note_health(HealthKind::RateLimited).await;
                Ok(self.rate_limited(wait, scope))
            }
            Outcome::RateLimited { retry_after: None, .. } => {
                self.note_health(HealthKind::RateLimited).await;
                Ok(self.banned())
            }
            Outcome::Transient { detail, .. } => self.retry_later(rows, detail).await,
            Outcome::Rejected { status, detail } => self.rejected(rows, status, detail, sent).await,
            // A neutral title was blocked too, or the answer came where no post was being made.
            Outcome::TitleBlocked { detail } => self.rejected(rows, 400, detail, sent).await,
            Outcome::Gone { status, detail } => {
                self.note_health(HealthKind::Paused).await;
                Ok(self.gone(status, &detail))
            }
            Outcome::ThreadUnusable { status, locked, detail } => {
                self.note_health(HealthKind::Paused).await;
                let what = if locked { "is locked or archived for good" } else { "was deleted" };
                Ok(self.pause(&format!(
                    "Discord answered {status}: the thread this destination posts into {what} ({detail})"
                )))
            }
        }
    }

    /// 2xx: the rows are delivered.
    async fn delivered(&mut self, rows: &[RowMeta], embeds: usize, sent: Sent) -> Result<Step, OutboxError> {
        self.outbox.mark_delivered(ids(rows)).await?;
        Ok(self.after_delivery(rows, embeds, sent))
    }

    /// What follows a delivery once its rows are marked delivered: the burst moves on, metrics.
    pub(super) fn after_delivery(&mut self, rows: &[RowMeta], embeds: usize, sent: Sent) -> Step {
        self.failures = 0;
        if sent == Sent::Digest {
            if let Some(burst) = &mut self.burst {
                burst.delivered(embeds);
            }
            self.burst = self.burst.take().filter(|burst| !burst.is_done());
        }
        self.count_delivered(rows, embeds);
        self.note_recovery(rows.len());
        Step::Progress
    }

    /// 429 with a delay: wait it out; not counted as a failed attempt.
    fn rate_limited(&mut self, wait: Wait, scope: Scope) -> Step {
        self.count_rate_limited(scope.label());
        self.note_failure();
        let name = &self.destination.name;
        if scope == Scope::Shared {
            log::info!("{name}: Discord's shared rate limit applies; waiting {:?}", wait.duration);
        } else {
            log::warn!("{name}: Discord rate limited us ({scope:?} scope); waiting {:?}", wait.duration);
        }
        self.park(wait, &format!("Discord answered 429 ({} scope)", scope.label()));
        Step::Wait(wait.duration)
    }

    /// 429 without any delay: Discord's sign of a temporary ban of this IP; cool down long.
    fn banned(&mut self) -> Step {
        self.count_rate_limited("ban");
        self.note_failure();
        let wait = self.settings.ban_cooldown.min(discord::MAX_WAIT);
        log::error!(
            "{}: Discord answered 429 without a delay, which means this IP is temporarily banned; sending nothing \
             to this destination for {wait:?}",
            self.destination.name
        );
        self.park(Wait { duration: wait, capped: false }, "Discord answered 429 without a delay (a ban)");
        Step::Wait(wait)
    }

    /// 5xx, timeout or connection error: count an attempt and wait per the retry schedule; rows
    /// older than the retry horizon become dead letters.
    async fn retry_later(&mut self, rows: &[RowMeta], detail: String) -> Result<Step, OutboxError> {
        self.failures += 1;
        self.note_failure();
        let horizon = now_ms().saturating_sub(millis(self.settings.retry_max_age));
        let (expired, retry): (Vec<&RowMeta>, Vec<&RowMeta>) =
            rows.iter().partition(|row| row.received_at_ms < horizon);
        if !expired.is_empty() {
            log::error!(
                "{}: giving up on {} rows older than {:?}; kept as dead letters ({detail})",
                self.destination.name,
                expired.len(),
                self.settings.retry_max_age
            );
            let reason = format!("gave up after {:?} of retries: {detail}", self.settings.retry_max_age);
            self.outbox.mark_dead(expired.iter().map(|r| r.id).collect(), reason).await?;
            self.metrics.dead_letters.get_or_create(&self.labels).inc_by(expired.len() as u64);
        }
        if retry.is_empty() {
            return Ok(Step::Progress);
        }
        self.outbox.record_attempt(retry.iter().map(|r| r.id).collect(), detail.clone()).await?;
        self.metrics.retries.get_or_create(&self.labels).inc();
        let wait = self.settings.backoff(self.failures);
        log::warn!(
            "{}: delivery failed ({detail}); attempt {}, retrying in {wait:?}",
            self.destination.name,
            self.failures
        );
        // Never parked: the rows wait in the outbox as they would for any failure, and the retry
        // horizon decides when they become dead letters.
        self.show_wait(wait, false, &format!("retrying after a failed delivery (attempt {}): {detail}", self.failures));
        self.pacer.delay(wait);
        Ok(Step::Wait(wait))
    }

    /// 400 and other 4xx: a refused digest is sent again as single events, a refused packed
    /// message one embed per message, and a refused single embed becomes a dead letter.
    async fn rejected(
        &mut self,
        rows: &[RowMeta],
        status: u16,
        detail: String,
        sent: Sent,
    ) -> Result<Step, OutboxError> {
        let name = &self.destination.name;
        if sent == Sent::Digest {
            log::warn!("{name}: Discord refused a digest ({status}: {detail}); sending those events one by one");
            self.no_digest_through = rows.iter().map(|row| row.id).max();
            self.burst = None;
            return Ok(Step::Progress);
        }
        if rows.len() > 1 {
            log::warn!(
                "{name}: Discord refused a message of {} embeds ({status}); re-sending them one per message to find \
                 the refused one",
                rows.len()
            );
            self.isolate_through = rows.last().map(|row| row.id);
            return Ok(Step::Progress);
        }
        self.dead_letter(rows, detail).await
    }

    /// Keeps the refused message's row as a dead letter with Discord's answer.
    async fn dead_letter(&mut self, rows: &[RowMeta], detail: String) -> Result<Step, OutboxError> {
        let row = &rows[0];
        log::error!(
            "{}: Discord refused the message for {} of {:?} (row {}) for good: {detail}. It is kept as a dead letter",
            self.destination.name,
            row.action,
            row.username,
            row.id
        );
        self.failures = 0;
        self.outbox.mark_dead(ids(rows), detail).await?;
        self.metrics.dead_letters.get_or_create(&self.labels).inc();
        Ok(Step::Progress)
    }

    /// 401/403/404: the webhook is gone (or, 400, refuses every message alike); pause the
    /// destination and keep its rows.
    fn gone(&mut self, status: u16, detail: &str) -> Step {
        let why = if status == 400 {
            "every message to this webhook would be refused"
        } else {
            "the webhook was deleted or its token is wrong"
        };
        self.pause(&format!("Discord answered {status}: {why} ({detail})"))
    }

    /// Pauses the destination for `reason`, keeping its rows.
    pub(super) fn pause(&mut self, reason: &str) -> Step {
        let name = &self.destination.name;
        let reason = reason.to_owned();
        log::error!(
            "{name}: {reason}. Nothing more is sent to it; its pending rows are kept. Fix the webhook URL and restart \
             the relay"
        );
        self.health.pause(name, &reason);
        self.paused = Some(reason);
        Step::Paused
    }

    /// Counts an outcome that changes no row in the relay's health, for reports. A failure to count
    /// it is logged, and delivery goes on.
    async fn note_health(&self, kind: HealthKind) {
        if let Err(err) = self.outbox.note_health(kind, 1).await {
            log::warn!("{}: could not count {} for reports: {err}", self.destination.name, kind.name());
        }
    }

    /// Remembers when the current run of failures (5xx, timeouts, 429s) began.
    fn note_failure(&mut self) {
        self.failing_since.get_or_insert_with(Instant::now);
    }

    /// Says once, at info, that a destination delivers again after a run of failures.
    fn note_recovery(&mut self, events: usize) {
        if let Some(since) = self.failing_since.take() {
            log::info!(
                "{}: delivered {events} events after {:.1} s of failures; delivering normally again",
                self.destination.name,
                since.elapsed().as_secs_f64()
            );
        }
    }

    fn count_rate_limited(&self, scope: &'static str) {
        let labels = ScopeLabels { destination: self.labels.clone(), scope };
        self.metrics.rate_limited.get_or_create(&labels).inc();
    }

    fn count_delivered(&self, rows: &[RowMeta], embeds: usize) {
        self.metrics.messages_delivered.get_or_create(&self.labels).inc();
        self.metrics.embeds_delivered.get_or_create(&self.labels).inc_by(embeds as u64);
        self.metrics.events_delivered.get_or_create(&self.labels).inc_by(rows.len() as u64);
        let now = now_ms();
        let latency = self.metrics.delivery_latency.get_or_create(&self.labels);
        for row in rows {
            latency.observe((now - row.received_at_ms).max(0) as f64 / 1000.0);
        }
    }
}

fn ids(rows: &[RowMeta]) -> Vec<i64> {
    rows.iter().map(|row| row.id).collect()
}

/// `duration` in milliseconds, saturating at `i64::MAX`.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
