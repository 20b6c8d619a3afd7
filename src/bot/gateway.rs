//! The gateway transport: an outbound websocket to Discord, so the relay needs no public URL.
//!
//! One task keeps one session (shard 0 of 1, no intents: interactions come without any). It
//! asks `GET {DISCORD_API_BASE}/gateway/bot` where to connect, IDENTIFYs, heartbeats, and on a
//! lost connection RESUMEs at the `resume_gateway_url` READY gave (session id and last sequence
//! number), or IDENTIFYs again when Discord says the session is gone; between attempts it backs
//! off with jitter. Each INTERACTION_CREATE goes to [`Bot::handle`], the handler the HTTP endpoint
//! feeds, and its answer is POSTed to the interaction's callback ([`answer`]).
//!
//! serenity's own `Shard` is not used: in serenity 0.12 it cannot receive outside serenity's
//! client (its `recv_json` is crate-private), it ignores `resume_gateway_url`, and it reads
//! messages of any size. The payloads are serenity's model types all the same.
//!
//! A lost gateway stops nothing else: ingest and delivery do not wait on it. It shows in
//! `/readyz` (as `task:gateway`) once it has lasted `DISCORD_GATEWAY_GRACE`, and in `/metrics`.
//! A refused token or refused intents end the retries (a restart with a fixed setting is needed)
//! and say so there and in the log, never with the token.

mod answer;
mod connection;
mod metrics;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::settings::GatewaySettings;
use super::Bot;
use crate::metrics::{Health, Outage};
use crate::panel::Redacted;
pub use metrics::GatewayMetrics;

/// The name the gateway task is supervised, counted and shown in `/readyz` under.
pub const GATEWAY_TASK: &str = "task:gateway";

/// The first wait before connecting again after a failed attempt; it doubles with each failure in
/// a row up to [`RECONNECT_MAX`], and a random part of it is taken off (jitter) so that relays
/// cut off together do not come back together.
pub const RECONNECT_FIRST: Duration = Duration::from_secs(1);
pub const RECONNECT_MAX: Duration = Duration::from_secs(60);

/// Interactions being answered at once over the gateway (the panel work has its own, smaller
/// bound, [`super::MAX_IN_FLIGHT`]); past it an interaction is left unanswered and counted.
pub const MAX_ANSWERING: usize = 64;

/// The gateway task: clones share the bot, the health and the metrics.
#[derive(Clone)]
pub struct Gateway {
    bot: Arc<Bot>,
    health: Arc<Health>,
    metrics: GatewayMetrics,
    grace: Duration,
    token: Redacted,
    answering: Arc<Semaphore>,
}

/// How one connection ended.
#[derive(Debug)]
enum Ended {
    /// The relay is stopping.
    Shutdown,
    /// Lost; try again. `was_live`: a session was live on it (the backoff starts over).
    Lost { reason: String, was_live: bool },
    /// Discord refused what only a changed setting fixes (the token, the intents).
    Fatal(String),
}

impl Gateway {
    /// The gateway for `bot`, whose settings hold the token (`None` without one).
    pub fn new(
        bot: Arc<Bot>,
        settings: &GatewaySettings,
        health: Arc<Health>,
        metrics: GatewayMetrics,
    ) -> Option<Self> {
        let token = bot.settings().bot_token.clone()?;
        Some(Self {
            bot,
            health,
            metrics,
            grace: settings.grace,
            token,
            answering: Arc::new(Semaphore::new(MAX_ANSWERING)),
        })
    }

    /// Keeps a session until `shutdown`; returns only then.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut session = None;
        let mut failures: u32 = 0;
        let mut lost_since = SystemTime::now();
        self.lost(lost_since, "is connecting to Discord's gateway");
        loop {
            let ended = tokio::select! {
                () = shutdown.cancelled() => Ended::Shutdown,
                ended = self.connect(&mut session, &shutdown) => ended,
            };
            self.metrics.connected.set(0);
            match ended {
                Ended::Shutdown => return,
                Ended::Fatal(reason) => {
                    log::error!("gateway: {reason}; not trying again until the relay is restarted");
                    let outage = Outage { since: SystemTime::now(), grace: Duration::ZERO, reason: reason.clone() };
                    self.health.outage(GATEWAY_TASK, Some(outage));
                    shutdown.cancelled().await;
                    return;
                }
                Ended::Lost { reason, was_live } => {
                    if was_live {
                        (failures, lost_since) = (0, SystemTime::now());
                    }
                    failures = failures.saturating_add(1);
                    self.metrics.reconnects.inc();
                    self.lost(lost_since, &format!("has no connection to Discord's gateway ({reason})"));
                    let wait = backoff(failures);
                    log::warn!("gateway: connection lost ({reason}); connecting again in {} ms", wait.as_millis());
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// The session is live again: ready, as far as the gateway goes.
    fn live(&self) {
        self.metrics.connected.set(1);
        self.health.outage(GATEWAY_TASK, None);
    }

    fn lost(&self, since: SystemTime, reason: &str) {
        let outage = Outage { since, grace: self.grace, reason: reason.to_owned() };
        self.health.outage(GATEWAY_TASK, Some(outage));
    }
}

/// The wait before attempt `failures` (1, 2, …) in a row: [`RECONNECT_FIRST`] doubling up to
/// [`RECONNECT_MAX`], of which a random half at most is taken off.
fn backoff(failures: u32) -> Duration {
    let full = RECONNECT_FIRST.saturating_mul(1 << failures.saturating_sub(1).min(16)).min(RECONNECT_MAX);
    full.mul_f64(1.0 - fastrand::f64() / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_with_jitter_up_to_its_cap() {
        for failures in 1..40 {
            let full = RECONNECT_FIRST.saturating_mul(1 << (failures - 1).min(16)).min(RECONNECT_MAX);
            let wait = backoff(failures);
            assert!(wait <= full && wait >= full / 2, "{failures}: {wait:?}");
        }
        assert!(backoff(u32::MAX) <= RECONNECT_MAX);
    }
}
