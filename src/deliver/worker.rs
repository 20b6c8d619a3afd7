//! The delivery task of one destination: takes the oldest due rows, packs them into one message,
//! sends it, and hands Discord's answer to [`settle`]. [`Worker::try_deliver_once`] is one such
//! step; [`Worker::run`] repeats it until shutdown.
//!
//! The worker alone holds the task's state; its parts [`post`] (forum mode) and [`settle`] (what
//! an answer changes) are its own files. Digests ([`super::digest`]) and forum posts
//! ([`super::forum`]) are planned from the values the worker hands them and never see it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod app;
mod post;
mod record;
mod settle;

use super::app_webhook::AppWebhooks;
use super::digest::{plan_burst, Burst, Planned, DIGEST_LOOKAHEAD};
use super::forum::{new_post, post_key, same_post, Post};
use super::menu::user_menus;
use super::pacer::Pacer;
use super::{build_message, next_message, DeliverySettings, Sent, Services, Step};
use crate::destination::{Destination, Mentions, Target};
use crate::discord::{self, Outcome, RateLimit, Wait, WebhookUrl};
use crate::metrics::{ClassLabels, DestinationLabels, Health, Metrics, Waiting};
use crate::outbox::{now_ms, Outbox, OutboxError, Row, RowMeta};
use crate::render::{limits, Part, Templates};
use record::Recorder;

/// Waits an answer imposed that are at least this long are logged, and make `/readyz` answer 503
/// while they last (the destination is parked): five minutes and more is no pacing but a ban, a
/// misbehaving proxy or an absurd answer. Shorter waits of at least `wait_notice` are notices.
const PARK: Duration = Duration::from_secs(300);

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
    labels: DestinationLabels,
    wake: Arc<Notify>,
    /// Consecutive transient failures of the head of the queue.
    failures: usize,
    pacer: Pacer,
    /// Rows up to this id are sent one per message: a packed message with them was refused.
    isolate_through: Option<i64>,
    /// Rows up to this id are not digested: a digest with them was refused.
    no_digest_through: Option<i64>,
    /// The burst being sent as digests, part by part.
    burst: Option<Burst>,
    /// Until when (unix ms) the burst at the head is held while it may still be arriving.
    held_until_ms: Option<i64>,
    /// Why the destination is paused, if it is.
    paused: Option<String>,
    /// When the current run of failed requests began, if the last request failed.
    failing_since: Option<Instant>,
    /// Forum posts made in a row whose answer did not say the new post's id.
    posts_without_id: u32,
    /// The row whose new forum post goes without tags: Discord refused it with them.
    untagged: Option<i64>,
    /// Writes what Discord accepted, holding the destination while that fails.
    recorder: Recorder,
    /// The row whose new forum post gets a neutral title: AutoMod blocked the usual one.
    neutral_title: Option<i64>,
    /// Finds or makes the relay's own webhook of a channel destination.
    app_webhooks: Option<AppWebhooks>,
    /// A channel destination's webhook, once found or made.
    app_url: Option<WebhookUrl>,
}

impl Worker {
    pub fn new(destination: Arc<Destination>, services: Services, wake: Arc<Notify>) -> Self {
        let Services { outbox, client, templates, settings, metrics, health, app_webhooks } = services;
        Self {
            recorder: Recorder::new(&destination.name, outbox.clone(), metrics.clone(), health.clone()),
            labels: DestinationLabels::of(&destination.name),
            pacer: Pacer::new(&settings),
            destination,
            outbox,
            client,
            templates,
            settings,
            metrics,
            health,
            wake,
            failures: 0,
            isolate_through: None,
            no_digest_through: None,
            burst: None,
            held_until_ms: None,
            paused: None,
            failing_since: None,
            posts_without_id: 0,
            untagged: None,
            neutral_title: None,
            app_webhooks,
            app_url: None,
        }
    }

    /// Sends at most one message and records the outcome.
    pub async fn try_deliver_once(&mut self) -> Result<Step, OutboxError> {
        // Nothing is sent while what Discord accepted last is not recorded.
        if let Some(wait) = self.recorder.retry().await {
            return Ok(Step::Wait(wait));
        }
        if self.paused.is_some() {
            return Ok(Step::Paused);
        }
        if let Some(wait) = self.pacer.wait() {
            return Ok(Step::Wait(wait));
        }
        // Before anything is due: a channel destination says at start when it cannot have a webhook.
        if let Some(step) = self.ensure_app_webhook().await {
            return Ok(step);
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
        let parts = if self.destination.forum.is_some() { same_post(parts) } else { parts };
        let max_parts = if isolating { 1 } else { limits::EMBEDS_PER_MESSAGE };
        let with_mentions: Vec<(&Part, &Mentions)> =
            parts.iter().map(|(row, part)| (part, &row.meta.mentions)).collect();
        let (count, mentions) = next_message(&with_mentions, max_parts);
        let (rows, parts): (Vec<RowMeta>, Vec<Part>) =
            parts.into_iter().take(count).map(|(row, part)| (row.meta, part)).unzip();
        if self.destination.forum.is_some() {
            let key = post_key(&rows, false);
            let creator = rows[0].action.clone();
            return self.send_in_post(key, &creator, &rows, &parts, &mentions, Sent::Embeds).await;
        }
        let (outcome, _) = self.send(&rows, &parts, &mentions, None).await;
        self.settle(&rows, parts.len(), outcome, Sent::Embeds).await
    }

    /// Sends the next message of the burst in progress, or starts one if the head of the queue
    /// starts a burst (waiting first while it may still be arriving).
    async fn try_digest(&mut self) -> Result<Option<Step>, OutboxError> {
        if self.settings.digest_threshold == 0 {
            return Ok(None);
        }
        // New events only make a held burst's quiet time later, never earlier: until the hold ends,
        // a wake (every POST makes one) need not read and plan the lookahead again.
        if let Some(left) = self.held_until_ms.and_then(|until| until.checked_sub(now_ms())).filter(|ms| *ms > 0) {
            return Ok(Some(Step::Wait(Duration::from_millis(u64::try_from(left).unwrap_or(0)))));
        }
        self.held_until_ms = None;
        let window = self.outbox.pending_meta(&self.destination.name, DIGEST_LOOKAHEAD).await?;
        self.burst = self.burst.take().and_then(|burst| burst.keep_pending(&window));
        if self.burst.is_none() {
            match plan_burst(&window, self.no_digest_through, &self.settings) {
                Planned::Nothing => return Ok(None),
                Planned::Hold(wait) => {
                    let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                    self.held_until_ms = Some(now_ms().saturating_add(wait_ms));
                    return Ok(Some(Step::Wait(wait)));
                }
                Planned::Burst(burst) => self.burst = Some(burst),
            }
        }
        let Some(burst) = &self.burst else {
            return Ok(None);
        };
        let (rows, parts) = burst.next_message(&self.templates.current());
        log::info!(
            "{}: sending {} of {} {} events as a digest",
            self.destination.name,
            rows.len(),
            burst.total(),
            burst.action()
        );
        let mentions = Mentions::union(rows.iter().map(|row| &row.mentions));
        if self.destination.forum.is_some() {
            let (key, action) = (burst.post(), burst.action().to_owned());
            return self.send_in_post(key, &action, &rows, &parts, &mentions, Sent::Digest).await.map(Some);
        }
        let (outcome, _) = self.send(&rows, &parts, &mentions, None).await;
        self.settle(&rows, parts.len(), outcome, Sent::Digest).await.map(Some)
    }

    /// Sends one message of `rows` (into the forum post `post`, if given) and counts the answer.
    /// Also returns the created message's `channel_id`, if the answer had one.
    async fn send(
        &mut self,
        rows: &[RowMeta],
        parts: &[Part],
        mentions: &Mentions,
        post: Option<&Post>,
    ) -> (Outcome, Option<u64>) {
        let mut message = build_message(parts, mentions, &self.destination);
        let mut thread_id = self.destination.thread_id;
        match post {
            Some(Post::Existing(id)) => thread_id = Some(*id),
            Some(Post::New { name, tags }) => message = new_post(message, name, tags),
            None => {}
        }
        let (outcome, channel_id) = match &self.destination.target {
            Target::DryRun => {
                let body = serde_json::to_string(&message).unwrap_or_default();
                log::info!(target: "dry_run", "{}: would send {body}", self.destination.name);
                (Outcome::Delivered, None)
            }
            Target::Webhook(url) => {
                let reply = self.client.execute(url, thread_id, &message).await;
                self.pace(&reply.rate_limit);
                (reply.outcome, reply.channel_id)
            }
            Target::Channel(channel) => {
                // Only the relay's own webhook keeps a message's components; a plain URL gets none.
                let menus = user_menus(rows);
                if !menus.is_empty() {
                    message = message.components(menus);
                }
                let reply = self.execute_own(*channel, thread_id, &message).await;
                self.pace(&reply.rate_limit);
                (reply.outcome, reply.channel_id)
            }
        };
        let class = match &outcome {
            Outcome::Delivered => "2xx",
            Outcome::RateLimited { .. } => "429",
            Outcome::Rejected { .. }
            | Outcome::Gone { .. }
            | Outcome::ThreadUnusable { .. }
            | Outcome::TitleBlocked { .. } => "4xx",
            Outcome::Transient { status: Some(_), .. } => "5xx",
            Outcome::Transient { status: None, .. } => "error",
        };
        let labels = ClassLabels { destination: self.labels.clone(), class };
        self.metrics.discord_responses.get_or_create(&labels).inc();
        if outcome == Outcome::Delivered {
            self.pacer.sent();
        }
        (outcome, channel_id)
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
        } else if duration >= PARK {
            log::warn!("{name}: {why}; sending nothing for {duration:?}");
        }
        let asked = if capped { " (asked for longer, capped)" } else { "" };
        self.show_wait(duration, capped || duration >= PARK, &format!("{why}: waiting {duration:?}{asked}"));
        self.pacer.delay(duration);
    }

    /// Shows a wait in `/readyz` until it ends: as a reason the relay is not ready when it
    /// `blocks`, otherwise as a notice if it is at least `wait_notice` long.
    pub(super) fn show_wait(&self, duration: Duration, blocks: bool, reason: &str) {
        if !blocks && duration < self.settings.wait_notice {
            return;
        }
        let now = std::time::SystemTime::now();
        let until = now.checked_add(duration).unwrap_or(now);
        self.health.wait(&self.destination.name, Waiting { until, reason: reason.to_owned(), blocks });
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
        let _ = tokio::time::timeout(self.settings.shutdown_grace, self.recorder.last_chance()).await;
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
