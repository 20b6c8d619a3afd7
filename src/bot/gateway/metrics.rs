//! The gateway's series in `/metrics`: whether it is connected, how often it had to reconnect
//! and resume, and the interactions it brought.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The gateway's metrics; clones share their values.
#[derive(Debug, Clone, Default)]
pub struct GatewayMetrics {
    /// 1 while a session is live (after READY or RESUMED), 0 otherwise.
    pub(super) connected: Gauge,
    /// Connections lost (or never made) and tried again.
    pub(super) reconnects: Counter,
    /// Sessions resumed after a reconnect (RESUMED), rather than started anew.
    pub(super) resumes: Counter,
    /// Sessions started (READY): the first, and each after Discord invalidated one.
    pub(super) identifies: Counter,
    /// INTERACTION_CREATE events received.
    pub(super) interactions: Counter,
    /// Interactions Discord did not take the answer of (the callback failed), or that were not
    /// answered because too many were being answered at once.
    pub(super) unanswered: Counter,
}

impl GatewayMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "discord_gateway_connected",
            "1 while the Discord gateway session is live",
            self.connected.clone(),
        );
        registry.register(
            "discord_gateway_reconnects",
            "Gateway connections lost and tried again",
            self.reconnects.clone(),
        );
        registry.register(
            "discord_gateway_resumes",
            "Gateway sessions resumed after a reconnect",
            self.resumes.clone(),
        );
        registry.register("discord_gateway_identifies", "Gateway sessions started (READY)", self.identifies.clone());
        registry.register("discord_interactions", "Interactions received over the gateway", self.interactions.clone());
        registry.register(
            "discord_interactions_unanswered",
            "Gateway interactions whose answer Discord did not take, or that found the relay busy",
            self.unanswered.clone(),
        );
    }
}
