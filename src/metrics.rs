//! Metrics in the Prometheus / OpenMetrics text format (prometheus-client), served at `/metrics`,
//! and the shared health state behind `/readyz`.
//!
//! Counters are updated where things happen (ingest, delivery); the outbox gauges (pending rows,
//! oldest pending age) are read from the outbox when scraped.
//!
//! Label values come from the configuration only (destination names of the routes file, panel
//! labels, fixed classes) or from short, validated panel input (action names): owner admins'
//! webhooks, which a panel's payload creates, all share the one label `destination="owner"`, so
//! the number of series does not grow with the number of admins.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

mod health;

pub use health::{Health, Outage, Waiting, CRASH_LOOP_RESTARTS, CRASH_LOOP_WINDOW, TASK_PREFIX};

use crate::destination::{DestinationStats, Origin, OwnerMetrics};

/// `destination="…"`: a destination's name, or `owner` for every owner admin's webhook (their
/// names come from panel payloads, so they would make series without bound).
#[derive(Debug, Clone, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct DestinationLabels {
    destination: String,
}

impl DestinationLabels {
    /// The labels of the destination named `name`.
    pub fn of(name: &str) -> Self {
        let destination = match Origin::of(name) {
            Origin::Owner => "owner",
            Origin::Configured => name,
        };
        Self { destination: destination.to_owned() }
    }
}

/// A destination's labels and the class of Discord's answer (`2xx`, `4xx`, `429`, `5xx`, `error`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    #[prometheus(flatten)]
    pub destination: DestinationLabels,
    pub class: &'static str,
}

/// A destination's labels and the scope of a 429 (`user`, `global`, `shared`, `ban`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    #[prometheus(flatten)]
    pub destination: DestinationLabels,
    pub scope: &'static str,
}

/// `panel="…"`: the panel's label, `-` when it has none.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PanelLabels {
    panel: String,
}

impl PanelLabels {
    pub fn of(label: Option<&str>) -> Self {
        Self { panel: label.unwrap_or("-").to_owned() }
    }
}

/// A panel's labels and an event's action.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    #[prometheus(flatten)]
    pub panel: PanelLabels,
    pub action: String,
}

/// Seconds from an event's arrival to Discord having it.
const LATENCY_BUCKETS: [f64; 13] = [0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0];

/// Every metric the relay exports.
pub struct Metrics {
    registry: Registry,
    /// Elements of request bodies, by panel.
    pub events_received: Family<PanelLabels, Counter>,
    /// Events stored, by action and panel.
    pub events_accepted: Family<ActionLabels, Counter>,
    /// Elements refused (not an event), by panel.
    pub events_rejected: Family<PanelLabels, Counter>,
    /// Events recognised as re-sends and stored once, by panel.
    pub events_duplicate: Family<PanelLabels, Counter>,
    /// Requests refused for a missing or wrong secret, by panel.
    pub auth_failures: Family<PanelLabels, Counter>,
    /// Requests with an HMAC-shaped header refused before their body was in: no place or no room
    /// left for unverified bodies, too slow, too large.
    pub unverified_refused: Counter,
    /// Requests with a panel's secret refused before their body was in: the panel's places
    /// (`PANEL_REQUESTS_MAX`), its half or all of `PANEL_BODY_BYTES` were taken. By panel.
    pub bodies_refused: Family<PanelLabels, Counter>,
    /// Messages and embeds Discord accepted, by destination.
    pub messages_delivered: Family<DestinationLabels, Counter>,
    pub embeds_delivered: Family<DestinationLabels, Counter>,
    /// Events delivered (an event in a digest counts once), by destination.
    pub events_delivered: Family<DestinationLabels, Counter>,
    /// Discord's answers by destination and class (`2xx`, `4xx`, `429`, `5xx`, `error`).
    pub discord_responses: Family<ClassLabels, Counter>,
    /// 429 answers by destination and scope (`user`, `global`, `shared`, `ban`).
    pub rate_limited: Family<ScopeLabels, Counter>,
    /// Failed attempts that will be retried, by destination.
    pub retries: Family<DestinationLabels, Counter>,
    /// Rows that became dead letters, by destination.
    pub dead_letters: Family<DestinationLabels, Counter>,
    /// Delivery tasks that stopped unexpectedly and were started again, by destination.
    pub task_restarts: Family<DestinationLabels, Counter>,
    /// Failed writes of what Discord accepted, retried without sending again, by destination.
    pub record_retries: Family<DestinationLabels, Counter>,
    /// Forum mode: posts created, and known posts Discord refused (deleted or locked), by destination.
    pub forum_posts_created: Family<DestinationLabels, Counter>,
    pub forum_posts_lost: Family<DestinationLabels, Counter>,
    /// Forum mode: users' posts forgotten to make room in a full outbox (read from the outbox).
    forum_posts_forgotten: Counter,
    /// Time from receipt to delivery, by destination.
    pub delivery_latency: Family<DestinationLabels, Histogram>,
    /// Owner admins' webhooks in use, and events whose owner copy was skipped at the bound.
    pub owners: OwnerMetrics,
    pending_rows: Family<DestinationLabels, Gauge>,
    oldest_pending_age: Family<DestinationLabels, Gauge<f64, AtomicU64>>,
    paused: Family<DestinationLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("relay");
        let latency = Family::<DestinationLabels, Histogram>::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        let metrics = Self {
            registry: Registry::default(),
            events_received: Family::default(),
            events_accepted: Family::default(),
            events_rejected: Family::default(),
            events_duplicate: Family::default(),
            auth_failures: Family::default(),
            unverified_refused: Counter::default(),
            bodies_refused: Family::default(),
            messages_delivered: Family::default(),
            embeds_delivered: Family::default(),
            events_delivered: Family::default(),
            discord_responses: Family::default(),
            rate_limited: Family::default(),
            retries: Family::default(),
            dead_letters: Family::default(),
            task_restarts: Family::default(),
            record_retries: Family::default(),
            forum_posts_created: Family::default(),
            forum_posts_lost: Family::default(),
            forum_posts_forgotten: Counter::default(),
            delivery_latency: latency,
            owners: OwnerMetrics::default(),
            pending_rows: Family::default(),
            oldest_pending_age: Family::default(),
            paused: Family::default(),
        };
        let m = &metrics;
        registry.register("events_received", "Elements of webhook bodies received", m.events_received.clone());
        registry.register("events_accepted", "Events stored for delivery", m.events_accepted.clone());
        registry.register("events_rejected", "Elements refused because they are not events", m.events_rejected.clone());
        registry.register(
            "events_duplicate",
            "Events recognised as re-sends and stored once",
            m.events_duplicate.clone(),
        );
        registry.register("auth_failures", "Requests refused for a missing or wrong secret", m.auth_failures.clone());
        registry.register(
            "unverified_refused",
            "HMAC-signed requests refused before their body was in (busy, too slow or too large)",
            m.unverified_refused.clone(),
        );
        registry.register(
            "bodies_refused",
            "Requests with a panel's secret refused 503 before their body was in (too many at once)",
            m.bodies_refused.clone(),
        );
        registry.register("messages_delivered", "Discord messages delivered", m.messages_delivered.clone());
        registry.register("embeds_delivered", "Embeds delivered", m.embeds_delivered.clone());
        registry.register(
            "events_delivered",
            "Events delivered (one per event in a digest)",
            m.events_delivered.clone(),
        );
        registry.register("discord_responses", "Discord's answers by class", m.discord_responses.clone());
        registry.register("rate_limited", "429 answers from Discord by scope", m.rate_limited.clone());
        registry.register("retries", "Failed attempts that will be retried", m.retries.clone());
        registry.register("dead_letters", "Rows kept as dead letters", m.dead_letters.clone());
        registry.register("forum_posts_created", "Forum posts created (forum mode)", m.forum_posts_created.clone());
        registry.register(
            "forum_posts_lost",
            "Known forum posts Discord refused as deleted or locked (a new post is made)",
            m.forum_posts_lost.clone(),
        );
        registry.register(
            "forum_posts_forgotten",
            "Users' forum posts forgotten to make room in a full outbox (their next events start new posts)",
            m.forum_posts_forgotten.clone(),
        );
        registry.register(
            "delivery_task_restarts",
            "Delivery tasks that stopped unexpectedly and were started again",
            m.task_restarts.clone(),
        );
        registry.register(
            "delivery_record_retries",
            "Writes of what Discord accepted that failed and are retried (the message is not sent again)",
            m.record_retries.clone(),
        );
        registry.register(
            "delivery_latency_seconds",
            "Time from an event's arrival to Discord having it",
            m.delivery_latency.clone(),
        );
        registry.register("pending_rows", "Rows waiting for delivery", m.pending_rows.clone());
        registry.register(
            "oldest_pending_age_seconds",
            "Age of the oldest row waiting for delivery",
            m.oldest_pending_age.clone(),
        );
        registry.register(
            "destination_paused",
            "1 while a destination's webhook is gone; for owner, how many owner webhooks are gone",
            m.paused.clone(),
        );
        registry.register("owner_destinations", "Owner admins' webhooks in use", m.owners.in_use.clone());
        registry.register(
            "owner_copies_skipped",
            "Events not copied to their owner admin's webhook because OWNER_DESTINATIONS_MAX was reached",
            m.owners.skipped.clone(),
        );
        Self { registry, ..metrics }
    }

    /// The registry, for a stage that registers metrics of its own (node watch) before the
    /// metrics are shared.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Sets the count of forum posts forgotten to make room: the outbox counts them, as it
    /// forgets them while storing events.
    pub fn set_forum_posts_forgotten(&self, total: u64) {
        self.forum_posts_forgotten.inner().store(total, std::sync::atomic::Ordering::Relaxed);
    }

    /// The text exposition, after refreshing the gauges from `stats` and `health` as of `now`
    /// (unix ms).
    pub fn render(&self, stats: &[DestinationStats], health: &Health, now: i64) -> String {
        let paused = health.paused();
        for (labels, gauges) in by_label(stats, &paused) {
            self.pending_rows.get_or_create(&labels).set(gauges.pending);
            let age = gauges.oldest_pending_ms.map_or(0.0, |at| now.saturating_sub(at).max(0) as f64 / 1000.0);
            self.oldest_pending_age.get_or_create(&labels).set(age);
            self.paused.get_or_create(&labels).set(gauges.paused);
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// The outbox gauges of one label value.
#[derive(Default)]
struct LabelGauges {
    pending: i64,
    oldest_pending_ms: Option<i64>,
    paused: i64,
}

/// Sums the destinations' stats per label value: every owner admin's webhook into `owner`.
fn by_label(stats: &[DestinationStats], paused: &[(String, String)]) -> BTreeMap<DestinationLabels, LabelGauges> {
    let paused: HashSet<&str> = paused.iter().map(|(name, _)| name.as_str()).collect();
    let mut gauges: BTreeMap<DestinationLabels, LabelGauges> = BTreeMap::new();
    for stat in stats {
        let entry = gauges.entry(DestinationLabels::of(&stat.destination)).or_default();
        entry.pending = entry.pending.saturating_add(stat.pending);
        entry.oldest_pending_ms = entry.oldest_pending_ms.into_iter().chain(stat.oldest_pending_ms).min();
        entry.paused += i64::from(paused.contains(stat.destination.as_str()));
    }
    gauges
}
