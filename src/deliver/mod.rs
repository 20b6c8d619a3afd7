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

use crate::destination::{Destination, Mentions, Origin, OwnerDestinations, Target};
use crate::discord::{self, Outcome, RateLimit, Scope, Wait};
use crate::metrics::{self, Health, Metrics};
use crate::outbox::{now_ms, Outbox, OutboxError, Row, RowMeta};
use crate::render::{limits, Digest, DigestEntry, Part, Templates};
use crate::routing::Router;

/// How many pending rows are looked at to find a burst for a digest.
const DIGEST_LOOKAHEAD: usize = 2000;

/// Waits at least this long are logged and shown in `/readyz` as a parked destination.
const PARK_NOTICE: Duration = Duration::from_secs(300);

/// The wait before a stopped delivery task is started again the first time; it doubles with each
/// restart in a row, up to [`RESTART_DELAY_MAX`].
const RESTART_DELAY_FIRST: Duration = Duration::from_secs(1);
const RESTART_DELAY_MAX: Duration = Duration::from_secs(60);

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
        let spread = if self.jitter.is_finite() { self.jitter.clamp(0.0, 1.0) } else { 0.0 };
        let factor = 1.0 - spread + 2.0 * spread * fastrand::f64();
        Duration::try_from_secs_f64(base.as_secs_f64() * factor).unwrap_or(base)
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
    /// When the current run of failed requests began, if the last request failed.
    failing_since: Option<Instant>,
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
            failing_since: None,
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
        let isolating = self.isolate_through.is_some_and(|through| head.meta.id <= through);
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
        let with_mentions: Vec<(&Part, &Mentions)> =
            parts.iter().map(|(row, part)| (part, &row.meta.mentions)).collect();
        let (count, mentions) = next_message(&with_mentions, max_parts);
        let (rows, parts): (Vec<RowMeta>, Vec<Part>) =
            parts.into_iter().take(count).map(|(row, part)| (row.meta, part)).unzip();
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
            Some(oldest) if limit > 0 && self.sent.len() >= limit => oldest.checked_add(window),
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
            let wait = rate_limit.reset_after.unwrap_or(Wait { duration: Duration::from_secs(1), capped: false });
            self.park(wait, "its rate-limit bucket is empty");
        }
    }

    /// Waits `wait` because an answer asked for it; says so when that is long, or longer than the
    /// relay is willing to wait.
    fn park(&mut self, wait: Wait, why: &str) {
        let name = &self.destination.name;
        let Wait { duration, capped } = wait;
        if capped {
            log::error!(
                "{name}: {why} and the answer asked to wait longer than {:?}; waiting {:?} instead",
                discord::MAX_WAIT,
                discord::MAX_WAIT
            );
        } else if duration >= PARK_NOTICE {
            log::warn!("{name}: {why}; sending nothing for {duration:?}");
        }
        if capped || duration >= PARK_NOTICE {
            let until = std::time::SystemTime::now().checked_add(duration).unwrap_or(std::time::SystemTime::now());
            let asked = if capped { " (asked for longer, capped)" } else { "" };
            self.health.park(name, until, &format!("{why}: waiting {duration:?}{asked}"));
        }
        self.delay(duration);
    }

    fn delay(&mut self, wait: Duration) {
        let now = Instant::now();
        let at = now.checked_add(wait.min(discord::MAX_WAIT)).unwrap_or(now);
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
        let name = self.destination.name.clone();
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
                self.note_recovery(rows.len());
                Ok(Step::Progress)
            }
            Outcome::RateLimited { retry_after: Some(wait), scope } => {
                self.note_failure();
                if scope == Scope::Shared {
                    log::info!("{name}: Discord's shared rate limit applies; waiting {:?}", wait.duration);
                } else {
                    log::warn!("{name}: Discord rate limited us ({scope:?} scope); waiting {:?}", wait.duration);
                }
                self.park(wait, &format!("Discord answered 429 ({} scope)", scope.label()));
                Ok(Step::Wait(wait.duration))
            }
            Outcome::RateLimited { retry_after: None, .. } => {
                self.note_failure();
                let wait = self.settings.ban_cooldown.min(discord::MAX_WAIT);
                log::error!(
                    "{name}: Discord answered 429 without a delay, which means this IP is temporarily banned; \
                     sending nothing to this destination for {wait:?}"
                );
                self.park(Wait { duration: wait, capped: false }, "Discord answered 429 without a delay (a ban)");
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
                self.health.pause(&name, &reason);
                self.paused = Some(reason);
                Ok(Step::Paused)
            }
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

/// `duration` in milliseconds, saturating at `i64::MAX`.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// What a message carried, which decides how a refusal is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Embeds,
    Digest,
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
            Err(_) => unreadable.push(row.meta.id),
        }
    }
    (parts, unreadable)
}

/// The running delivery tasks, one per destination, and the hourly pruning of delivered rows and
/// of owner admins' webhooks that are no longer used.
pub struct Delivery {
    dispatch: Dispatch,
}

/// Starts and wakes destination tasks. Cheap to clone. A destination named for the first time (an
/// owner admin's webhook) gets its task then; one that is forgotten loses it.
#[derive(Clone)]
pub struct Dispatch {
    inner: Arc<DispatchInner>,
}

struct DispatchInner {
    services: Services,
    /// The owner admins' webhooks in use, with `DELIVER_TO_OWNER_ADMIN`.
    owners: Option<Arc<OwnerDestinations>>,
    /// By destination name. A stopped task stays until it is replaced or has finished.
    tasks: Mutex<HashMap<String, Task>>,
    prune: Mutex<Option<JoinHandle<()>>>,
    shutdown: CancellationToken,
}

/// One destination's task.
struct Task {
    wake: Arc<Notify>,
    stop: CancellationToken,
    handle: JoinHandle<()>,
}

impl Dispatch {
    fn new(services: Services, owners: Option<Arc<OwnerDestinations>>) -> Self {
        let inner = DispatchInner {
            services,
            owners,
            tasks: Mutex::new(HashMap::new()),
            prune: Mutex::new(None),
            shutdown: CancellationToken::new(),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Tells `destination`'s task that new rows are waiting, starting the task if it has none.
    pub fn wake(&self, destination: &Arc<Destination>) {
        let inner = &self.inner;
        let Ok(mut tasks) = inner.tasks.lock() else { return };
        if inner.shutdown.is_cancelled() {
            return;
        }
        let stopped = match tasks.get(&destination.name) {
            Some(task) if !task.stop.is_cancelled() => {
                task.wake.notify_one();
                return;
            }
            Some(_) => tasks.remove(&destination.name).map(|task| task.handle),
            None => None,
        };
        if let Some(owners) = inner.owners.as_ref().filter(|_| destination.origin() == Origin::Owner) {
            // Rows were stored for it: it is in use, even if it was forgotten meanwhile.
            owners.restore(destination);
        }
        let wake = Arc::new(Notify::new());
        let stop = inner.shutdown.child_token();
        let run = supervise(destination.clone(), inner.services.clone(), wake.clone(), stop.clone());
        let handle = tokio::spawn(async move {
            // A stopped task of the same destination may still be finishing its last request; two
            // tasks never send for one destination at once.
            if let Some(stopped) = stopped {
                let _ = stopped.await;
            }
            run.await;
        });
        tasks.insert(destination.name.clone(), Task { wake, stop, handle });
    }

    /// The destinations that have a running task.
    pub fn running(&self) -> Vec<String> {
        let Ok(tasks) = self.inner.tasks.lock() else { return Vec::new() };
        tasks.iter().filter(|(_, task)| !task.stop.is_cancelled()).map(|(name, _)| name.clone()).collect()
    }

    /// Deletes delivered rows that were delivered before `before_ms`, then forgets every owner
    /// admin's webhook that has no rows left: its URL leaves the outbox, its task stops and its
    /// place under `OWNER_DESTINATIONS_MAX` is free. Returns how many rows and webhooks went.
    pub async fn prune(&self, before_ms: i64) -> Result<(usize, usize), OutboxError> {
        let outbox = &self.inner.services.outbox;
        let deleted = outbox.purge_delivered(before_ms).await?;
        let candidates = self.inner.owners.as_ref().map(|owners| owners.names()).unwrap_or_default();
        let dispatch = self.clone();
        let forgotten = outbox.forget_unused_destinations(candidates, move |names| dispatch.stop_tasks(names)).await?;
        Ok((deleted, forgotten.len()))
    }

    /// Stops the tasks of `names` (forgotten destinations) and frees their places.
    fn stop_tasks(&self, names: &[String]) {
        let inner = &self.inner;
        if let Ok(mut tasks) = inner.tasks.lock() {
            tasks.retain(|_, task| !(task.stop.is_cancelled() && task.handle.is_finished()));
            for task in names.iter().filter_map(|name| tasks.get(name)) {
                task.stop.cancel();
            }
        }
        for name in names {
            if let Some(owners) = &inner.owners {
                owners.forget(name);
            }
            inner.services.health.forget(name);
        }
    }
}

impl Delivery {
    /// Starts a task for every destination of `router` and for `stored` ones (owner admins' webhooks
    /// with rows still pending), and one that prunes what is older than `retention`.
    pub fn start(router: &Router, stored: Vec<Destination>, services: Services, retention: Duration) -> Self {
        let dispatch = Dispatch::new(services, router.owners().cloned());
        for destination in router.destinations().iter().cloned().chain(stored.into_iter().map(Arc::new)) {
            dispatch.wake(&destination);
        }
        let prune = tokio::spawn(prune(dispatch.clone(), retention, dispatch.inner.shutdown.child_token()));
        if let Ok(mut slot) = dispatch.inner.prune.lock() {
            *slot = Some(prune);
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
        let prune = inner.prune.lock().ok().and_then(|mut prune| prune.take());
        let tasks = inner.tasks.lock().map(|mut tasks| std::mem::take(&mut *tasks)).unwrap_or_default();
        for handle in prune.into_iter().chain(tasks.into_values().map(|task| task.handle)) {
            let _ = handle.await;
        }
    }
}

/// Runs `destination`'s delivery task until `shutdown`, starting it again whenever it ends any
/// other way.
async fn supervise(destination: Arc<Destination>, services: Services, wake: Arc<Notify>, shutdown: CancellationToken) {
    let (health, metrics) = (services.health.clone(), services.metrics.clone());
    keep_running(&destination.name.clone(), &health, &metrics, &shutdown, || {
        Worker::new(destination.clone(), services.clone(), wake.clone()).run(shutdown.clone())
    })
    .await;
}

/// Runs the task `start` makes until `shutdown`. A task that ends before that (it panicked) is
/// counted in `relay_delivery_task_restarts_total`, logged at error, shown in `/readyz` while it
/// is down, and started again after a backoff that doubles up to [`RESTART_DELAY_MAX`].
async fn keep_running<F, Fut>(
    name: &str,
    health: &Health,
    metrics: &Metrics,
    shutdown: &CancellationToken,
    mut start: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut restarts: u32 = 0;
    loop {
        let started = Instant::now();
        let ended = tokio::spawn(start()).await;
        if shutdown.is_cancelled() {
            return;
        }
        let reason = match ended {
            Ok(()) => "it returned".to_owned(),
            Err(err) if err.is_panic() => format!("it panicked: {}", panic_text(err.into_panic())),
            Err(_) => "it was cancelled".to_owned(),
        };
        if started.elapsed() >= RESTART_DELAY_MAX.saturating_mul(10) {
            restarts = 0;
        }
        restarts = restarts.saturating_add(1);
        let wait = RESTART_DELAY_FIRST.saturating_mul(1 << restarts.saturating_sub(1).min(16)).min(RESTART_DELAY_MAX);
        metrics.task_restarts.get_or_create(&metrics::destination(name)).inc();
        health.task_stopped(name, &reason);
        log::error!("{name}: the delivery task stopped unexpectedly ({reason}); starting it again in {wait:?}");
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        health.task_restarted(name, std::time::SystemTime::now());
    }
}

/// A panic's message, short and without tokens.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".to_owned());
    discord::redact(&text, None).chars().take(300).collect()
}

/// Prunes what is older than `retention`, now and every hour.
async fn prune(dispatch: Dispatch, retention: Duration, shutdown: CancellationToken) {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    loop {
        match dispatch.prune(now_ms().saturating_sub(retention_ms)).await {
            Ok((0, 0)) => {}
            Ok((rows, webhooks)) => log::info!(
                "deleted {rows} delivered rows older than {retention:?}, and forgot {webhooks} owner webhooks \
                 without rows"
            ),
            Err(err) => log::warn!("could not prune old delivered rows: {err}"),
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
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use crate::discord::WebhookUrl;
    use crate::metrics::OwnerMetrics;
    use crate::outbox::{NewRow, StoredDestination};
    use crate::render::Lang;

    fn services(dir: &std::path::Path) -> Services {
        Services {
            outbox: Outbox::open(dir).unwrap(),
            client: discord::Client::new(discord::Timeouts::default()).unwrap(),
            templates: Arc::new(Templates::load(dir.join("no-templates"), Lang::default()).0),
            settings: Arc::new(DeliverySettings::default()),
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::default()),
        }
    }

    fn webhook(id: u64) -> WebhookUrl {
        WebhookUrl::parse_discord_only(&format!("https://discord.com/api/webhooks/{id}/token")).unwrap()
    }

    /// Stores a row for `destination` and marks it delivered, as if Discord had it.
    async fn delivered_row(outbox: &Outbox, destination: &Destination) {
        let Target::Webhook(url) = &destination.target else { unreachable!() };
        let row = NewRow {
            destination: destination.name.clone(),
            received_at_ms: now_ms(),
            action: "user_created".into(),
            username: "u".into(),
            panel: None,
            part: "{}".into(),
            fingerprint: None,
            mentions: Mentions::default(),
        };
        let remember =
            StoredDestination { name: destination.name.clone(), url: url.expose().to_owned(), thread_id: None };
        outbox.enqueue_with(vec![row], vec![remember], None).await.unwrap();
        let ids = outbox.due(&destination.name, 10).await.unwrap().iter().map(|row| row.meta.id).collect();
        outbox.mark_delivered(ids).await.unwrap();
    }

    #[tokio::test]
    async fn forgets_an_owner_webhook_once_its_rows_are_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = OwnerMetrics::default();
        let owners = Arc::new(OwnerDestinations::new(1, metrics.clone()));
        let services = services(dir.path());
        let outbox = services.outbox.clone();
        let dispatch = Dispatch::new(services, Some(owners.clone()));
        let alice = owners.admit(webhook(1), "alice").unwrap();
        delivered_row(&outbox, &alice).await;
        dispatch.wake(&alice);
        let delivered_at = now_ms();

        // Delivered an hour ago, with a longer retention: kept, and its place stays taken.
        assert_eq!(dispatch.prune(delivered_at - 3_600_000).await.unwrap(), (0, 0));
        assert_eq!(dispatch.running(), [alice.name.as_str()]);
        assert!(owners.admit(webhook(2), "bob").is_none(), "OWNER_DESTINATIONS_MAX is 1");

        // The retention has passed: the row, the URL, the task and the place all go.
        assert_eq!(dispatch.prune(delivered_at + 1).await.unwrap(), (1, 1));
        assert!(dispatch.running().is_empty());
        assert_eq!((owners.names().len(), metrics.in_use.get()), (0, 0));
        assert!(outbox.forget_unused_destinations(Vec::new(), |_| {}).await.unwrap().is_empty(), "URL deleted");
        let bob = owners.admit(webhook(2), "bob").expect("the place is free again");

        // Rows stored for a forgotten webhook (routed just before it was forgotten) still get a task.
        dispatch.wake(&alice);
        assert_eq!(dispatch.running(), [alice.name.as_str()]);
        let names: BTreeSet<String> = owners.names().into_iter().collect();
        assert_eq!(names, BTreeSet::from([alice.name.clone(), bob.name.clone()]));
        Delivery { dispatch }.stop().await;
    }

    #[tokio::test]
    async fn a_task_that_panics_is_counted_shown_and_started_again() {
        let (health, metrics, shutdown) =
            (Arc::new(Health::default()), Arc::new(Metrics::new()), CancellationToken::new());
        let starts = Arc::new(AtomicUsize::new(0));
        let supervisor = {
            let (health, metrics, shutdown, starts) =
                (health.clone(), metrics.clone(), shutdown.clone(), starts.clone());
            tokio::spawn(async move {
                keep_running("default", &health, &metrics, &shutdown.clone(), || {
                    let (start, shutdown) = (starts.fetch_add(1, Ordering::SeqCst), shutdown.clone());
                    async move {
                        if start == 0 {
                            panic!("a delay out of range");
                        }
                        shutdown.cancelled().await;
                    }
                })
                .await
            })
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut saw_down = false;
        while starts.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "the task was not started again");
            saw_down |= health
                .problems(std::time::SystemTime::now())
                .iter()
                .any(|(name, problem)| name == "default" && problem.contains("a delay out of range"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(saw_down, "/readyz showed the stopped task while it was down");
        assert!(health.problems(std::time::SystemTime::now()).is_empty(), "up again after the restart");
        let text = metrics.render(&[], &health);
        assert!(text.contains(r#"relay_delivery_task_restarts_total{destination="default"} 1"#), "{text}");
        shutdown.cancel();
        supervisor.await.unwrap();
        assert_eq!(starts.load(Ordering::SeqCst), 2, "a task that ends at shutdown is not started again");
    }

    #[test]
    fn restarts_in_a_row_make_a_crash_loop_in_readiness() {
        let health = Health::default();
        let now = std::time::SystemTime::now();
        for _ in 0..metrics::CRASH_LOOP_RESTARTS {
            health.task_restarted("default", now);
        }
        let problems = health.problems(now);
        assert!(problems.iter().any(|(_, p)| p.contains("keeps losing its delivery task")), "{problems:?}");
        let later = now + metrics::CRASH_LOOP_WINDOW;
        assert!(health.problems(later).is_empty(), "old restarts are forgotten");
    }

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
