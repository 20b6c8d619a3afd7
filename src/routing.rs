//! Routing: which destinations receive an event.
//!
//! A destination is a named target (a Discord webhook, or the dry-run log). Every stored row
//! belongs to exactly one destination, and each destination is delivered by its own task.

use std::sync::Arc;

use crate::discord::WebhookUrl;
use crate::event::Event;

/// The name of the destination configured by `DISCORD_WEBHOOK_URL` (or the dry-run log).
pub const DEFAULT_DESTINATION: &str = "default";

/// Where a destination's messages go.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A Discord webhook.
    Webhook(WebhookUrl),
    /// No webhook configured: log each message as JSON instead of sending it.
    DryRun,
}

/// A named place messages are delivered to.
#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub name: String,
    pub target: Target,
}

/// Decides the destinations of each event.
#[derive(Debug, Clone)]
pub struct Router {
    destinations: Vec<Arc<Destination>>,
}

impl Router {
    /// Everything goes to one destination.
    pub fn single(target: Target) -> Self {
        Self { destinations: vec![Arc::new(Destination { name: DEFAULT_DESTINATION.to_owned(), target })] }
    }

    /// Every configured destination.
    pub fn destinations(&self) -> &[Arc<Destination>] {
        &self.destinations
    }

    /// The destinations `event` goes to, by name.
    pub fn route(&self, _event: &Event) -> Vec<&str> {
        self.destinations.iter().map(|d| d.name.as_str()).collect()
    }
}
