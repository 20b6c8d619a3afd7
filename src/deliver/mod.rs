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
//!
//! Pacing: the task waits when the rate-limit headers say the bucket is empty, and keeps to
//! Discord's hidden per-channel limit (about 30 messages a minute) on its own. A burst of one action
//! (more than `digest_threshold` pending) goes out as digest embeds listing the users.

mod pack;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use pack::{
    build_message, digest_chunks, digest_members, fitting_parts, mention_chars, next_message, DIGEST_EMBED_BUDGET,
};

use crate::discord::{self, Outcome, RateLimit, Scope};
use crate::metrics::{self, Health, Metrics};
use crate::outbox::{now_ms, Outbox, OutboxError, Row, RowMeta};
use crate::render::{limits, Digest, DigestEntry, Part, Templates};
use crate::routing::{Destination, Mentions, OwnerDestinations, Router, Target, OWNER_PREFIX};

/// How many pending rows are looked at to find a burst for a digest.
const DIGEST_LOOKAHEAD: usize = 2000;

/// How often delivered rows past their retention are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

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
    /// At most this many messages per `channel_window` (Discord's hidden per-channel limit); 0
    /// turns this pacing off.
    pub channel_messages: usize,
    pub channel_window: Duration,
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
            digest_threshold: 30,
            channel_messages: 30,
            channel_window: s(60),
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

/// What every delivery task shares.
#[derive(Clone)]
pub struct Services {
    pub outbox: Outbox,
    pub client: discord::Client,
    pub templates: Arc<Templates>,
    pub settings: Arc<DeliverySettings>,
    pub metrics: Arc<Metrics>,
    pub health: Arc<Health>,
}

/// Delivers one destination's rows.
pub struct Worker {
    destination: Arc<Destination>,
    outbox: Outbox,
    client: discord::Client,
    templates: Arc<Templates>,
    settings: Arc<DeliverySettings>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// Labels of this destination's metrics.
    labels: metrics::Labels,
    wake: Arc<Notify>,
    /// Consecutive transient failures of the head of the queue.
    failures: usize,
    /// No request before this instant (rate-limit bucket empty, 429, backoff).
    not_before: Option<Instant>,
    /// When the last messages were accepted, for the per-channel limit.
    sent: VecDeque<Instant>,
    /// Rows up to this id are sent one per message: a packed message with them was refused.
    isolate_through: Option<i64>,
    /// Rows up to this id are not digested: a digest with them was refused.
    no_digest_through: Option<i64>,
    /// The action of the digest sent last, if the last message was a digest: the rest of that
    /// burst is digested too once it would fill more than one message.
    digesting: Option<String>,
    /// Why the destination is paused, if it is.
    paused: Option<String>,
}

impl Worker {
    pub fn new(destination: Arc<Destination>, services: Services, wake: Arc<Notify>) -> Self {
        let Services { outbox, client, templates, settings, metrics, health } = services;
        Self {
            labels: metrics::destination(&destination.name),
            destination,
            outbox,
            client,
            templates,
            settings,
            metrics,
            health,
            wake,
            failures: 0,
            not_before: None,
            sent: VecDeque::new(),
            isolate_through: None,
            no_digest_through: None,
            digesting: None,
            paused: None,
        }
    }

    /// Sends at most one message and records the outcome.
    pub async fn try_deliver_once(&mut self) -> Result<Step, OutboxError> {
        if self.paused.is_some() {
            return Ok(Step::Paused);
        }
        if let Some(wait) = self.wait_before_sending() {
            return Ok(Step::Wait(wait));
        }
        if let Some(step) = self.try_digest().await? {
            return Ok(step);
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
        let with_mentions: Vec<(&Part, &Mentions)> = parts.iter().map(|(row, part)| (part, &row.mentions)).collect();
        let (count, mentions) = next_message(&with_mentions, max_parts);
        let (rows, parts): (Vec<RowMeta>, Vec<Part>) =
            parts.into_iter().take(count).map(|(row, part)| (meta(&row), part)).unzip();
        let outcome = self.send(&parts, &mentions).await;
        self.settle(&rows, parts.len(), outcome, Sent::Embeds).await
    }

    /// How long to wait before the next request, if at all: a backoff or rate-limit wait, or the
    /// per-channel message limit.
    fn wait_before_sending(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let window = self.settings.channel_window;
        while self.sent.front().is_some_and(|at| now.duration_since(*at) >= window) {
            self.sent.pop_front();
        }
        let limit = self.settings.channel_messages;
        let channel = match self.sent.front() {
            Some(oldest) if limit > 0 && self.sent.len() >= limit => Some(*oldest + window),
            _ => None,
        };
        let until = self.not_before.into_iter().chain(channel).max()?;
        Some(until.checked_duration_since(now)?).filter(|wait| !wait.is_zero())
    }

    /// Sends a digest if the head of the queue starts a burst.
    async fn try_digest(&mut self) -> Result<Option<Step>, OutboxError> {
        if self.settings.digest_threshold == 0 {
            return Ok(None);
        }
        let window = self.outbox.pending_meta(&self.destination.name, DIGEST_LOOKAHEAD).await?;
        let Some(head) = window.first() else {
            return Ok(None);
        };
        if self.no_digest_through.is_some_and(|through| head.id <= through) {
            return Ok(None);
        }
        let threshold = match &self.digesting {
            Some(action) if *action == head.action => self.settings.digest_threshold.min(limits::EMBEDS_PER_MESSAGE),
            _ => self.settings.digest_threshold,
        };
        let Some(members) = digest_members(&window, threshold) else {
            return Ok(None);
        };
        let (rows, parts) = self.render_digest(&digest_chunks(&members, DIGEST_EMBED_BUDGET));
        log::info!("{}: sending {} {} events as a digest", self.destination.name, rows.len(), rows[0].action);
        let outcome = self.send(&parts, &Mentions::union(rows.iter().map(|row| &row.mentions))).await;
        self.settle(&rows, parts.len(), outcome, Sent::Digest).await.map(Some)
    }

    /// Renders as many digest chunks as fit in one message; returns their rows and embeds.
    fn render_digest(&self, chunks: &[Vec<&RowMeta>]) -> (Vec<RowMeta>, Vec<Part>) {
        let renderer = self.templates.current();
        let render = |chunks: &[Vec<&RowMeta>]| -> Vec<Part> {
            let total = chunks.iter().map(Vec::len).sum();
            let parts = chunks.len();
            chunks
                .iter()
                .enumerate()
                .map(|(i, chunk)| renderer.render_digest(&digest(chunk, total, i + 1, parts)))
                .collect()
        };
        let mut taken = chunks.len().min(limits::EMBEDS_PER_MESSAGE);
        let mut parts = render(&chunks[..taken]);
        let mentions = Mentions::union(chunks[..taken].iter().flatten().map(|row| &row.mentions));
        let fitting = fitting_parts(&parts, taken, mention_chars(&mentions));
        if fitting < taken {
            taken = fitting;
            parts = render(&chunks[..taken]);
        }
        let rows = chunks[..taken].iter().flatten().map(|row| (*row).clone()).collect();
        (rows, parts)
    }

    async fn send(&mut self, parts: &[Part], mentions: &Mentions) -> Outcome {
        let message = build_message(parts, mentions, &self.destination);
        let outcome = match &self.destination.target {
            Target::DryRun => {
                let body = serde_json::to_string(&message).unwrap_or_default();
                log::info!(target: "dry_run", "{}: would send {body}", self.destination.name);
                Outcome::Delivered
            }
            Target::Webhook(url) => {
                let reply = self.client.execute(url, self.destination.thread_id, &message).await;
                self.pace(&reply.rate_limit);
                reply.outcome
            }
        };
        let class = match &outcome {
            Outcome::Delivered => "2xx",
            Outcome::RateLimited { .. } => "429",
            Outcome::Rejected { .. } | Outcome::Gone { .. } => "4xx",
            Outcome::Transient { status: Some(_), .. } => "5xx",
            Outcome::Transient { status: None, .. } => "error",
        };
        let mut labels = self.labels.clone();
        labels.push(("class", class.to_owned()));
        self.metrics.discord_responses.get_or_create(&labels).inc();
        if outcome == Outcome::Delivered && self.settings.channel_messages > 0 {
            self.sent.push_back(Instant::now());
        }
        outcome
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

    async fn settle(
        &mut self,
        rows: &[RowMeta],
        embeds: usize,
        outcome: Outcome,
        sent: Sent,
    ) -> Result<Step, OutboxError> {
        let ids: Vec<i64> = rows.iter().map(|row| row.id).collect();
        let name = &self.destination.name;
        if let Outcome::RateLimited { retry_after, scope } = &outcome {
            let scope = if retry_after.is_none() { "ban" } else { scope.label() };
            let mut labels = self.labels.clone();
            labels.push(("scope", scope.to_owned()));
            self.metrics.rate_limited.get_or_create(&labels).inc();
        }
        match outcome {
            Outcome::Delivered => {
                self.failures = 0;
                self.digesting = (sent == Sent::Digest).then(|| rows[0].action.clone());
                self.outbox.mark_delivered(ids).await?;
                self.count_delivered(rows, embeds);
                Ok(Step::Progress)
            }
            Outcome::RateLimited { retry_after: Some(wait), scope } => {
                if scope == Scope::Shared {
                    log::info!("{name}: Discord's shared rate limit applies; waiting {wait:?}");
                } else {
                    log::warn!("{name}: Discord rate limited us ({scope:?} scope); waiting {wait:?}");
                }
                self.delay(wait);
                Ok(Step::Wait(wait))
            }
            Outcome::RateLimited { retry_after: None, .. } => {
                let wait = self.settings.ban_cooldown;
                log::error!(
                    "{name}: Discord answered 429 without a delay, which means this IP is temporarily banned; \
                     sending nothing to this destination for {wait:?}"
                );
                self.delay(wait);
                Ok(Step::Wait(wait))
            }
            Outcome::Transient { detail, .. } => self.retry_later(rows, detail).await,
            Outcome::Rejected { status, detail } if sent == Sent::Digest => {
                log::warn!("{name}: Discord refused a digest ({status}: {detail}); sending those events one by one");
                self.no_digest_through = ids.iter().max().copied();
                Ok(Step::Progress)
            }
            Outcome::Rejected { status, .. } if rows.len() > 1 => {
                log::warn!(
                    "{name}: Discord refused a message of {} embeds ({status}); re-sending them one per message to \
                     find the refused one",
                    rows.len()
                );
                self.isolate_through = ids.last().copied();
                Ok(Step::Progress)
            }
            Outcome::Rejected { detail, .. } => {
                let row = &rows[0];
                log::error!(
                    "{name}: Discord refused the message for {} of {:?} (row {}) for good: {detail}. It is kept as a \
                     dead letter",
                    row.action,
                    row.username,
                    row.id
                );
                self.failures = 0;
                self.outbox.mark_dead(ids, detail).await?;
                self.metrics.dead_letters.get_or_create(&self.labels).inc();
                Ok(Step::Progress)
            }
            Outcome::Gone { status, detail } => {
                let reason =
                    format!("Discord answered {status}: the webhook was deleted or its token is wrong ({detail})");
                log::error!(
                    "{name}: {reason}. Nothing more is sent to it; its pending rows are kept. Fix the webhook URL and \
                     restart the relay"
                );
                self.health.pause(name, &reason);
                self.paused = Some(reason);
                Ok(Step::Paused)
            }
        }
    }

    async fn retry_later(&mut self, rows: &[RowMeta], detail: String) -> Result<Step, OutboxError> {
        self.failures += 1;
        let horizon = now_ms() - self.settings.retry_max_age.as_millis() as i64;
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
        self.delay(wait);
        Ok(Step::Wait(wait))
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
                    if last_reminder.is_some_and(|at| at.elapsed() >= self.settings.pause_reminder) {
                        log::error!(
                            "{}: still paused, rows are waiting: {}",
                            self.destination.name,
                            self.paused.as_deref().unwrap_or_default()
                        );
                        last_reminder = Some(Instant::now());
                    }
                    last_reminder.get_or_insert_with(Instant::now);
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

/// What a message carried, which decides how a refusal is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Embeds,
    Digest,
}

fn meta(row: &Row) -> RowMeta {
    RowMeta {
        id: row.id,
        action: row.action.clone(),
        username: row.username.clone(),
        panel: row.panel.clone(),
        received_at_ms: row.received_at_ms,
        mentions: row.mentions.clone(),
    }
}

/// The context of one digest embed.
fn digest(chunk: &[&RowMeta], total: usize, part: usize, parts: usize) -> Digest {
    let seconds = |ms: i64| ms as f64 / 1000.0;
    Digest {
        action: chunk[0].action.clone(),
        total,
        count: chunk.len(),
        part,
        parts,
        usernames: chunk.iter().map(|row| row.username.clone()).collect(),
        events: chunk
            .iter()
            .map(|row| DigestEntry {
                username: row.username.clone(),
                panel: row.panel.clone(),
                event_time: seconds(row.received_at_ms),
            })
            .collect(),
        panel: chunk[0].panel.clone(),
        event_time: seconds(chunk.iter().map(|row| row.received_at_ms).max().unwrap_or_default()),
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

/// The running delivery tasks, one per destination, and the hourly pruning of delivered rows.
pub struct Delivery {
    dispatch: Dispatch,
}

/// Starts and wakes destination tasks. Cheap to clone. A destination named for the first time (an
/// owner admin's webhook) gets its task then.
#[derive(Clone)]
pub struct Dispatch {
    inner: Arc<DispatchInner>,
}

struct DispatchInner {
    services: Services,
    /// The owner admins' webhooks in use, with `DELIVER_TO_OWNER_ADMIN`.
    owners: Option<Arc<OwnerDestinations>>,
    wakes: Mutex<HashMap<String, Arc<Notify>>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    shutdown: CancellationToken,
}

impl Dispatch {
    /// Tells `destination`'s task that new rows are waiting, starting the task if it has none.
    pub fn wake(&self, destination: &Arc<Destination>) {
        let inner = &self.inner;
        let Ok(mut wakes) = inner.wakes.lock() else { return };
        if let Some(wake) = wakes.get(&destination.name) {
            wake.notify_one();
            return;
        }
        if inner.shutdown.is_cancelled() {
            return;
        }
        if let Some(owners) = inner.owners.as_ref().filter(|_| destination.name.starts_with(OWNER_PREFIX)) {
            // Rows were stored for it (restored at start, say): it is in use, whatever the bound.
            owners.restore(destination);
        }
        let wake = Arc::new(Notify::new());
        let worker = Worker::new(destination.clone(), inner.services.clone(), wake.clone());
        let task = tokio::spawn(worker.run(inner.shutdown.child_token()));
        wakes.insert(destination.name.clone(), wake);
        if let Ok(mut tasks) = inner.tasks.lock() {
            tasks.push(task);
        }
    }
}

impl Delivery {
    /// Starts a task for every destination of `router` and for `stored` ones (owner admins' webhooks
    /// with rows still pending), and one that deletes delivered rows older than `retention`.
    pub fn start(router: &Router, stored: Vec<Destination>, services: Services, retention: Duration) -> Self {
        let shutdown = CancellationToken::new();
        let prune = tokio::spawn(prune(services.outbox.clone(), retention, shutdown.child_token()));
        let dispatch = Dispatch {
            inner: Arc::new(DispatchInner {
                services,
                owners: router.owners().cloned(),
                wakes: Mutex::new(HashMap::new()),
                tasks: Mutex::new(vec![prune]),
                shutdown,
            }),
        };
        for destination in router.destinations().iter().cloned().chain(stored.into_iter().map(Arc::new)) {
            dispatch.wake(&destination);
        }
        Self { dispatch }
    }

    /// A handle that wakes (and starts) destination tasks.
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch.clone()
    }

    /// Stops every task and waits for them.
    pub async fn stop(self) {
        let inner = &self.dispatch.inner;
        inner.shutdown.cancel();
        let tasks = inner.tasks.lock().map(|mut tasks| std::mem::take(&mut *tasks)).unwrap_or_default();
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Deletes delivered rows older than `retention`, now and every hour.
async fn prune(outbox: Outbox, retention: Duration, shutdown: CancellationToken) {
    loop {
        let before = now_ms() - retention.as_millis() as i64;
        match outbox.purge_delivered(before).await {
            Ok(0) => {}
            Ok(deleted) => log::info!("deleted {deleted} delivered rows older than {retention:?}"),
            Err(err) => log::warn!("could not delete old delivered rows: {err}"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(PRUNE_INTERVAL) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
