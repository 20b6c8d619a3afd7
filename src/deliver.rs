//! Delivery: one task per destination takes the oldest pending rows, packs them into as few Discord
//! messages as the limits allow, sends, and records what Discord said.
//!
//! Order is the order received: the head of a destination's queue blocks the rows behind it while
//! it is retried, so nothing overtakes anything. What Discord's answer means is decided in
//! [`discord::classify`]; what to do about it is decided here, in [`Worker::try_deliver_once`]:
//!
//! * delivered: mark the rows delivered;
//! * 429: wait `retry_after` (a long cool-down if Discord gave none), not counted as a failure;
//! * 5xx / timeout / connection error: count an attempt and wait per the retry schedule, with
//!   jitter; rows older than the retry horizon become dead letters;
//! * 400: a packed message is re-sent one embed per message to find the refused one, which alone
//!   becomes a dead letter with Discord's answer;
//! * 401/403/404: the webhook is gone; pause the destination, keep its rows, say so loudly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serenity::builder::{CreateAllowedMentions, CreateEmbed, ExecuteWebhook};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::discord::{self, Outcome, RateLimit, Scope};
use crate::outbox::{now_ms, Outbox, OutboxError, Row};
use crate::render::{limits, Part};
use crate::routing::{Destination, Router, Target};

/// How delivery retries, paces and gives up.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Waits after the 1st, 2nd, … consecutive transient failure; the last repeats.
    pub retry_schedule: Vec<Duration>,
    /// Each wait is randomly shortened or lengthened by up to this fraction.
    pub jitter: f64,
    /// A row that still fails transiently this long after it was received becomes a dead letter.
    pub retry_max_age: Duration,
    /// Cool-down after a 429 that gives no delay at all (Discord's sign of a temporary ban).
    pub ban_cooldown: Duration,
    /// How often a paused destination is reported again.
    pub pause_reminder: Duration,
    /// How often an idle task looks for due rows even without a wake-up.
    pub idle_poll: Duration,
    /// How long the request in flight at shutdown may take before it is abandoned (its rows stay
    /// pending and are sent again after restart).
    pub shutdown_grace: Duration,
    pub timeouts: discord::Timeouts,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        let s = Duration::from_secs;
        Self {
            retry_schedule: vec![s(1), s(5), s(30), s(120), s(600), s(1800)],
            jitter: 0.2,
            retry_max_age: s(72 * 3600),
            ban_cooldown: s(600),
            pause_reminder: s(300),
            idle_poll: s(30),
            shutdown_grace: s(5),
            timeouts: discord::Timeouts::default(),
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
        let spread = self.jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 - spread + 2.0 * spread * fastrand::f64())
    }
}

/// What one delivery step did, and so what the task does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing is pending.
    Idle,
    /// A message went out (or rows were settled); look for more right away.
    Progress,
    /// Try again after this long.
    Wait(Duration),
    /// The destination is paused (webhook gone); nothing is sent until restart.
    Paused,
}

/// Delivers one destination's rows.
pub struct Worker {
    destination: Arc<Destination>,
    outbox: Outbox,
    client: discord::Client,
    settings: Arc<DeliverySettings>,
    wake: Arc<Notify>,
    /// Consecutive transient failures of the head of the queue.
    failures: usize,
    /// No request before this instant (rate-limit bucket empty, 429, backoff).
    not_before: Option<Instant>,
    /// Rows up to this id are sent one per message: a packed message with them was refused.
    isolate_through: Option<i64>,
    /// Why the destination is paused, if it is.
    paused: Option<String>,
}

impl Worker {
    pub fn new(
        destination: Arc<Destination>,
        outbox: Outbox,
        client: discord::Client,
        settings: Arc<DeliverySettings>,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            destination,
            outbox,
            client,
            settings,
            wake,
            failures: 0,
            not_before: None,
            isolate_through: None,
            paused: None,
        }
    }

    /// Whether the destination is paused because its webhook is gone.
    pub fn paused(&self) -> Option<&str> {
        self.paused.as_deref()
    }

    /// Sends at most one message and records the outcome.
    pub async fn try_deliver_once(&mut self) -> Result<Step, OutboxError> {
        if self.paused.is_some() {
            return Ok(Step::Paused);
        }
        if let Some(wait) = self.not_before.and_then(|at| at.checked_duration_since(Instant::now())) {
            if !wait.is_zero() {
                return Ok(Step::Wait(wait));
            }
        }
        let rows = self.outbox.due(&self.destination.name, limits::EMBEDS_PER_MESSAGE).await?;
        let Some(head) = rows.first() else {
            return Ok(Step::Idle);
        };
        let isolating = self.isolate_through.is_some_and(|through| head.id <= through);
        let (parts, unreadable) = decode(rows);
        if !unreadable.is_empty() {
            log::error!(
                "{}: {} stored rows cannot be read; keeping them as dead letters",
                self.destination.name,
                unreadable.len()
            );
            self.outbox.mark_dead(unreadable, "the stored message could not be read".into()).await?;
            return Ok(Step::Progress);
        }
        let max_parts = if isolating { 1 } else { limits::EMBEDS_PER_MESSAGE };
        let count = fitting_parts(parts.iter().map(|(_, part)| part), max_parts);
        let batch = &parts[..count];
        let outcome = self.send(batch).await;
        self.settle(batch, outcome).await
    }

    async fn send(&mut self, batch: &[(Row, Part)]) -> Outcome {
        let message = build_message(batch.iter().map(|(_, part)| part));
        match &self.destination.target {
            Target::DryRun => {
                let body = serde_json::to_string(&message).unwrap_or_default();
                log::info!(target: "dry_run", "{}: would send {body}", self.destination.name);
                Outcome::Delivered
            }
            Target::Webhook(url) => {
                let reply = self.client.execute(url, None, &message).await;
                self.pace(&reply.rate_limit);
                reply.outcome
            }
        }
    }

    /// Waits before the next request when the bucket is empty.
    fn pace(&mut self, rate_limit: &RateLimit) {
        if rate_limit.remaining == Some(0) {
            let wait = rate_limit.reset_after.unwrap_or(Duration::from_secs(1));
            self.delay(wait);
        }
    }

    fn delay(&mut self, wait: Duration) {
        let at = Instant::now() + wait;
        self.not_before = Some(self.not_before.map_or(at, |current| current.max(at)));
    }

    async fn settle(&mut self, batch: &[(Row, Part)], outcome: Outcome) -> Result<Step, OutboxError> {
        let ids: Vec<i64> = batch.iter().map(|(row, _)| row.id).collect();
        let name = &self.destination.name;
        match outcome {
            Outcome::Delivered => {
                self.failures = 0;
                self.outbox.mark_delivered(ids).await?;
                Ok(Step::Progress)
            }
            Outcome::RateLimited { retry_after: Some(wait), scope } => {
                if scope != Scope::Shared {
                    log::warn!("{name}: Discord rate limited us ({scope:?} scope); waiting {wait:?}");
                } else {
                    log::info!("{name}: Discord's shared rate limit applies; waiting {wait:?}");
                }
                self.delay(wait);
                Ok(Step::Wait(wait))
            }
            Outcome::RateLimited { retry_after: None, .. } => {
                let wait = self.settings.ban_cooldown;
                log::error!(
                    "{name}: Discord answered 429 without a delay, which means this IP is temporarily banned; \
                     pausing this destination for {wait:?}"
                );
                self.delay(wait);
                Ok(Step::Wait(wait))
            }
            Outcome::Transient { detail } => self.retry_later(batch, detail).await,
            Outcome::Rejected { status, .. } if batch.len() > 1 => {
                log::warn!(
                    "{name}: Discord refused a message of {} embeds ({status}); re-sending them one per message to \
                     find the refused one",
                    batch.len()
                );
                self.isolate_through = ids.last().copied();
                Ok(Step::Progress)
            }
            Outcome::Rejected { detail, .. } => {
                let (row, _) = &batch[0];
                log::error!(
                    "{name}: Discord refused the message for {} of {:?} (row {}) for good: {detail}. It is kept as a \
                     dead letter",
                    row.action,
                    row.username,
                    row.id
                );
                self.failures = 0;
                self.outbox.mark_dead(ids, detail).await?;
                Ok(Step::Progress)
            }
            Outcome::Gone { status, detail } => {
                let reason =
                    format!("Discord answered {status}: the webhook was deleted or its token is wrong ({detail})");
                log::error!(
                    "{name}: {reason}. Nothing more is sent to it; its {} pending rows are kept. Fix the webhook URL \
                     and restart the relay",
                    batch.len()
                );
                self.paused = Some(reason);
                Ok(Step::Paused)
            }
        }
    }

    async fn retry_later(&mut self, batch: &[(Row, Part)], detail: String) -> Result<Step, OutboxError> {
        self.failures += 1;
        let horizon = now_ms() - self.settings.retry_max_age.as_millis() as i64;
        let (expired, retry): (Vec<&Row>, Vec<&Row>) =
            batch.iter().map(|(row, _)| row).partition(|row| row.received_at_ms < horizon);
        if !expired.is_empty() {
            log::error!(
                "{}: giving up on {} rows older than {:?}; kept as dead letters ({detail})",
                self.destination.name,
                expired.len(),
                self.settings.retry_max_age
            );
            let reason = format!("gave up after {:?} of retries: {detail}", self.settings.retry_max_age);
            self.outbox.mark_dead(expired.iter().map(|r| r.id).collect(), reason).await?;
        }
        if retry.is_empty() {
            return Ok(Step::Progress);
        }
        self.outbox.record_attempt(retry.iter().map(|r| r.id).collect(), detail.clone()).await?;
        let wait = self.settings.backoff(self.failures);
        log::warn!(
            "{}: delivery failed ({detail}); attempt {}, retrying in {wait:?}",
            self.destination.name,
            self.failures
        );
        self.delay(wait);
        Ok(Step::Wait(wait))
    }

    /// Delivers until `shutdown` is cancelled. The request in flight then gets
    /// `settings.shutdown_grace` to finish; rows it does not settle stay pending.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut last_reminder: Option<Instant> = None;
        while !shutdown.is_cancelled() {
            let grace = self.settings.shutdown_grace;
            let step = {
                let attempt = self.try_deliver_once();
                tokio::pin!(attempt);
                tokio::select! {
                    step = &mut attempt => step,
                    () = shutdown.cancelled() => match tokio::time::timeout(grace, attempt).await {
                        Ok(step) => step,
                        Err(_) => break,
                    },
                }
            };
            let wait = match step {
                Ok(Step::Progress) => continue,
                Ok(Step::Idle) => self.settings.idle_poll,
                Ok(Step::Wait(wait)) => wait,
                Ok(Step::Paused) => {
                    let due = last_reminder.is_none_or(|at| at.elapsed() >= self.settings.pause_reminder);
                    if due && last_reminder.is_some() {
                        log::error!(
                            "{}: still paused, rows are waiting: {}",
                            self.destination.name,
                            self.paused.as_deref().unwrap_or_default()
                        );
                    }
                    if due {
                        last_reminder = Some(Instant::now());
                    }
                    self.settings.pause_reminder
                }
                Err(err) => {
                    log::error!("{}: {err}; trying again in 1s", self.destination.name);
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// Parses stored parts; rows whose part cannot be read are returned by id.
fn decode(rows: Vec<Row>) -> (Vec<(Row, Part)>, Vec<i64>) {
    let mut parts = Vec::with_capacity(rows.len());
    let mut unreadable = Vec::new();
    for row in rows {
        match serde_json::from_str::<Part>(&row.part) {
            Ok(part) => parts.push((row, part)),
            Err(_) => unreadable.push(row.id),
        }
    }
    (parts, unreadable)
}

/// How many of the leading `parts` fit in one message: at most `max_parts` (and 10) embeds, 6000
/// embed characters and 2000 content characters. Always at least one: each part fits alone.
pub fn fitting_parts<'a>(parts: impl IntoIterator<Item = &'a Part>, max_parts: usize) -> usize {
    let max_parts = max_parts.clamp(1, limits::EMBEDS_PER_MESSAGE);
    let (mut count, mut embed_chars, mut content_chars) = (0, 0, 0);
    for part in parts.into_iter().take(max_parts) {
        let separator = usize::from(content_chars > 0 && part.content.is_some());
        let next_embed = embed_chars + part.embed_chars();
        let next_content = content_chars + separator + part.content_chars();
        if count > 0 && (next_embed > limits::MESSAGE_EMBED_CHARS || next_content > limits::CONTENT) {
            break;
        }
        (count, embed_chars, content_chars) = (count + 1, next_embed, next_content);
    }
    count.max(1)
}

/// The Discord message for `parts`. It never lets anything ping: `allowed_mentions` is always
/// present and empty.
pub fn build_message<'a>(parts: impl IntoIterator<Item = &'a Part>) -> ExecuteWebhook {
    let mut embeds = Vec::new();
    let mut contents = Vec::new();
    for part in parts {
        embeds.push(CreateEmbed::from(part.embed.clone()));
        contents.extend(part.content.as_deref());
    }
    let message = ExecuteWebhook::new().embeds(embeds).allowed_mentions(CreateAllowedMentions::new());
    if contents.is_empty() {
        message
    } else {
        message.content(contents.join("\n"))
    }
}

/// The running delivery tasks, one per destination.
pub struct Delivery {
    waker: Waker,
    tasks: Vec<JoinHandle<()>>,
    shutdown: CancellationToken,
}

/// Wakes destination tasks when new rows are stored. Cheap to clone.
#[derive(Clone, Default)]
pub struct Waker {
    wakes: Arc<HashMap<String, Arc<Notify>>>,
}

impl Waker {
    /// Tells a destination's task that new rows are waiting.
    pub fn wake(&self, destination: &str) {
        if let Some(wake) = self.wakes.get(destination) {
            wake.notify_one();
        }
    }
}

impl Delivery {
    /// Starts a task for every destination of `router`.
    pub fn start(router: &Router, outbox: &Outbox, client: &discord::Client, settings: DeliverySettings) -> Self {
        let settings = Arc::new(settings);
        let shutdown = CancellationToken::new();
        let mut wakes = HashMap::new();
        let mut tasks = Vec::new();
        for destination in router.destinations() {
            let wake = Arc::new(Notify::new());
            let worker =
                Worker::new(destination.clone(), outbox.clone(), client.clone(), settings.clone(), wake.clone());
            tasks.push(tokio::spawn(worker.run(shutdown.child_token())));
            wakes.insert(destination.name.clone(), wake);
        }
        Self { waker: Waker { wakes: Arc::new(wakes) }, tasks, shutdown }
    }

    /// A handle that wakes these tasks.
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Stops every task and waits for them.
    pub async fn stop(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Draft;

    fn part(description_chars: usize, content: Option<&str>) -> Part {
        let mut draft = Draft {
            title: "t".into(),
            description: "é".repeat(description_chars),
            content: content.unwrap_or_default().into(),
            ..Draft::default()
        };
        draft.clamp();
        draft.into_part()
    }

    #[test]
    fn packs_up_to_ten_embeds() {
        let parts: Vec<Part> = (0..12).map(|_| part(10, None)).collect();
        assert_eq!(fitting_parts(&parts, 10), 10);
        assert_eq!(fitting_parts(&parts, 1), 1);
    }

    #[test]
    fn packs_up_to_6000_characters() {
        // Each embed is 1 + 1999 = 2000 characters: three fit exactly, a fourth does not.
        let parts: Vec<Part> = (0..5).map(|_| part(1999, None)).collect();
        assert_eq!(fitting_parts(&parts, 10), 3);
        let parts: Vec<Part> = (0..5).map(|_| part(2000, None)).collect();
        assert_eq!(fitting_parts(&parts, 10), 2);
        let parts = vec![part(4096, None), part(4096, None)];
        assert_eq!(fitting_parts(&parts, 10), 1);
    }

    #[test]
    fn packs_content_up_to_2000_characters() {
        let content = "c".repeat(1000);
        let parts: Vec<Part> = (0..3).map(|_| part(1, Some(&content))).collect();
        // 1000 + 1 (newline) + 1000 > 2000.
        assert_eq!(fitting_parts(&parts, 10), 1);
    }

    #[test]
    fn messages_never_allow_mentions() {
        let parts = vec![part(5, Some("<@&1> @everyone"))];
        let body = serde_json::to_value(build_message(&parts)).unwrap();
        assert_eq!(body["allowed_mentions"]["parse"], serde_json::json!([]));
        assert_eq!(body["content"], "<@&1> @everyone");
        assert_eq!(body["embeds"].as_array().unwrap().len(), 1);
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
