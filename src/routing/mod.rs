//! Routing: which destinations (see [`crate::destination`]) receive an event, and whom they
//! mention.
//!
//! Without a routes file everything goes to `DISCORD_WEBHOOK_URL` (the destination `default`). A
//! routes file (`ROUTES_FILE`, TOML; see `routes.example.toml`) names destinations and rules: which
//! actions (and panels, owning admins, usage or days-left thresholds) go where, with which role
//! and user mentions, and which actions are muted. With `DELIVER_TO_OWNER_ADMIN=true` an event also
//! goes to the Discord webhook of the admin who owns the user, if that URL is on Discord's own host.
//! Those destinations are named after their URL (admins sharing a webhook share its destination)
//! and are bounded in number by [`OwnerDestinations`].

mod file;
mod report_kind;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::destination::OwnerDestinations;
use crate::discord::WebhookUrl;
use crate::event::Event;
use crate::panel::Redacted;
use crate::secret::Secret;

pub use file::is_panel_label;
pub use report_kind::ReportKind;

/// Destinations were defined here before they had their own module.
pub use crate::destination::{Destination, Mentions, Target};

/// One destination an event goes to, with the mentions its rules asked for.
#[derive(Debug, Clone)]
pub struct Route {
    pub destination: Arc<Destination>,
    pub mentions: Mentions,
}

/// A rule of the routes file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `None`: every action.
    pub actions: Option<HashSet<String>>,
    pub panels: Option<HashSet<String>>,
    /// Usernames of the admins owning the user.
    pub admins: Option<HashSet<String>>,
    pub min_used_percent: Option<f64>,
    pub max_days_left: Option<i64>,
    /// Destination names.
    pub to: Vec<String>,
    pub mentions: Mentions,
}

impl Rule {
    fn matches(&self, event: &Event) -> bool {
        let within = |set: &Option<HashSet<String>>, value: Option<&str>| {
            set.as_ref().is_none_or(|set| value.is_some_and(|v| set.contains(v)))
        };
        self.actions.as_ref().is_none_or(|actions| event.action_names().any(|name| actions.contains(name)))
            && within(&self.panels, event.panel.as_deref())
            && within(&self.admins, event.admin.as_ref().and_then(|a| a.username.as_deref()))
            && self.min_used_percent.is_none_or(|min| event.used_percent.is_some_and(|p| p >= min))
            && self.max_days_left.is_none_or(|max| event.days_left.is_some_and(|d| d <= max))
    }
}

/// A panel's REST API as the routes file gives it (`api_*` keys of `[panels.<label>]`), read but
/// not yet checked: the configuration checks it as it checks `PANEL_API_*`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PanelApiSpec {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<Redacted>,
    pub key: Option<Redacted>,
    pub family: Option<String>,
    pub insecure_tls: Option<bool>,
    pub timeout: Option<String>,
}

/// A validated routes file.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    /// The panels with a secret of their own (`/webhook/<label>`).
    pub panels: Vec<(String, Secret)>,
    /// The panels with a REST API (`api_url`): label and settings, in label order.
    pub panel_apis: Vec<(String, PanelApiSpec)>,
    pub destinations: Vec<Destination>,
    pub rules: Vec<Rule>,
    pub mute: HashSet<String>,
    /// Scheduled reports: destination name → the reports it gets (`reports = ["daily"]`).
    pub reports: std::collections::BTreeMap<String, Vec<ReportKind>>,
}

/// Decides the destinations of each event.
#[derive(Debug)]
pub struct Router {
    destinations: Vec<Arc<Destination>>,
    rules: Vec<Rule>,
    mute: HashSet<String>,
    /// With `DELIVER_TO_OWNER_ADMIN`: the owner admins' webhooks.
    owners: Option<Arc<OwnerDestinations>>,
}

impl Router {
    /// `default` (if given) and the routes file's destinations, with its rules; without a routes
    /// file, everything goes to `default`. With `owners`, events also go to their owner admin's
    /// webhook.
    pub fn new(
        mut destinations: Vec<Destination>,
        routes: Option<&Routes>,
        owners: Option<Arc<OwnerDestinations>>,
    ) -> Self {
        let (rules, mute) = match routes {
            Some(routes) => {
                destinations.extend(routes.destinations.iter().cloned());
                (routes.rules.clone(), routes.mute.clone())
            }
            None => {
                let to = destinations.iter().map(|d| d.name.clone()).collect();
                let everything = Rule {
                    actions: None,
                    panels: None,
                    admins: None,
                    min_used_percent: None,
                    max_days_left: None,
                    to,
                    mentions: Mentions::default(),
                };
                (vec![everything], HashSet::new())
            }
        };
        Self { destinations: destinations.into_iter().map(Arc::new).collect(), rules, mute, owners }
    }

    /// Every configured destination (owner-admin destinations are made as events name them).
    pub fn destinations(&self) -> &[Arc<Destination>] {
        &self.destinations
    }

    /// The owner admins' webhooks, when events are delivered to them.
    pub fn owners(&self) -> Option<&Arc<OwnerDestinations>> {
        self.owners.as_ref()
    }

    /// Where `event` goes: each destination once, with the union of its matching rules' mentions.
    pub fn route(&self, event: &Event) -> Vec<Route> {
        // Only the action the event is presented as: muting `user_deactivated` (admins' own
        // deactivations) must not silence the cut-offs the relay presents as limited or expired.
        if self.mute.contains(event.action.as_str()) {
            return Vec::new();
        }
        let mut routes: BTreeMap<&str, Mentions> = BTreeMap::new();
        for rule in self.rules.iter().filter(|rule| rule.matches(event)) {
            for name in &rule.to {
                routes.entry(name).or_default().extend(&rule.mentions);
            }
        }
        let mut out: Vec<Route> = routes
            .into_iter()
            .filter_map(|(name, mentions)| {
                let destination = self.destinations.iter().find(|d| d.name == name)?.clone();
                Some(Route { destination, mentions })
            })
            .collect();
        if let Some(owners) = &self.owners {
            out.extend(self.owner_route(owners, event, &out));
        }
        out
    }

    /// The owning admin's own webhook, if it is a Discord webhook not already routed to and there
    /// is room for it.
    fn owner_route(&self, owners: &OwnerDestinations, event: &Event, routed: &[Route]) -> Option<Route> {
        let raw = event.owner_webhook.as_deref()?;
        let owner = event.admin.as_ref().or(event.by.as_ref()).and_then(|a| a.username.as_deref()).unwrap_or_default();
        let url = match WebhookUrl::parse_discord_only(raw) {
            Ok(url) => url,
            Err(err) => {
                owners.refused(owner, &err);
                return None;
            }
        };
        // The same webhook and thread however spelled (another host, `/api/v10/`, a trailing
        // slash, `?thread_id=` or `thread_id`): a second destination there would pace alone.
        let place = Some((url.id(), url.thread_id()));
        let already = routed.iter().any(|r| r.destination.posts_to() == place)
            || self.destinations.iter().any(|d| d.posts_to() == place);
        if already {
            return None;
        }
        let destination = owners.admit(url, owner)?;
        Some(Route { destination, mentions: Mentions::default() })
    }
}
