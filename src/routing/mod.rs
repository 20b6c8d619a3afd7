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

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::destination::OwnerDestinations;
use crate::discord::WebhookUrl;
use crate::event::Event;
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

/// A validated routes file.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    pub panels: Vec<(String, Secret)>,
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

#[cfg(test)]
mod tests {
    use super::file::tests::{routes, FILE};
    use super::*;
    use crate::destination::OwnerMetrics;
    use crate::destination::{Origin, DEFAULT_DESTINATION, DEFAULT_OWNER_DESTINATIONS_MAX};
    use serde_json::json;
    use time::OffsetDateTime;

    const ROLE: u64 = 123456789012345678;

    fn event(value: serde_json::Value) -> Event {
        Event::from_value(value, OffsetDateTime::now_utc(), value_panel()).unwrap()
    }

    fn value_panel() -> Option<&'static str> {
        Some("eu1")
    }

    fn router() -> Router {
        let routes = routes(FILE).unwrap();
        let default = Destination::new(DEFAULT_DESTINATION, Target::DryRun);
        Router::new(vec![default], Some(&routes), None)
    }

    fn names(routes: &[Route]) -> Vec<&str> {
        routes.iter().map(|r| r.destination.name.as_str()).collect()
    }

    #[test]
    fn routes_by_action_and_condition_with_mentions() {
        let router = router();
        let limited = router.route(&event(json!({"action": "user_limited", "used_percent": null})));
        assert_eq!(names(&limited), ["alerts", "default"]);
        // The percent condition fails for user_limited, so only the second rule's user mention.
        assert!(limited[0].mentions.roles.is_empty());
        assert_eq!(limited[0].mentions.users.iter().copied().collect::<Vec<_>>(), [323456789012345678]);

        let warning = router.route(&event(json!({"action": "reached_usage_percent", "used_percent": 92.5})));
        assert_eq!(names(&warning), ["alerts", "default"]);
        assert_eq!(warning[0].mentions.roles.iter().copied().collect::<Vec<_>>(), [ROLE]);
        let mild = router.route(&event(json!({"action": "reached_usage_percent", "used_percent": 75.0})));
        assert_eq!(names(&mild), ["default"]);
    }

    #[test]
    fn node_events_go_to_an_ops_channel_pinging_on_call_on_node_down_only() {
        let text = r#"
[destinations.ops]
url = "https://discord.com/api/webhooks/9/ops"

[[rules]]
actions = ["node_down", "node_recovered", "node_flapping", "panel_unreachable", "panel_recovered"]
to = ["ops"]

[[rules]]
actions = ["node_down"]
to = ["ops"]
mention_roles = ["123456789012345678"]

[[rules]]
actions = ["user_limited"]
to = ["default"]
"#;
        let file = routes(text).unwrap();
        let router = Router::new(vec![Destination::new(DEFAULT_DESTINATION, Target::DryRun)], Some(&file), None);
        let node = |action: &str| {
            let context = crate::event::NodeContext { name: "de-1".into(), ..Default::default() };
            let action = crate::event::Action::parse(action).unwrap();
            Event::watch(action, None, crate::event::Family::Marzban, OffsetDateTime::now_utc(), context, None)
        };
        let down = router.route(&node("node_down"));
        assert_eq!(names(&down), ["ops"]);
        assert_eq!(down[0].mentions.roles.iter().copied().collect::<Vec<_>>(), [ROLE]);
        let back = router.route(&node("node_recovered"));
        assert_eq!(names(&back), ["ops"]);
        assert!(back[0].mentions.roles.is_empty(), "the on-call role is pinged for a down only");
        assert!(router.route(&node("node_added")).is_empty(), "no rule takes it");
        let misspelt = routes("[[rules]]\nactions = [\"node_dwn\"]\nto = [\"default\"]\n").unwrap_err();
        assert!(misspelt[0].contains("unknown action \"node_dwn\"") && misspelt[0].contains("node_down"));
    }

    #[test]
    fn a_renamed_event_matches_its_action_and_its_panels_name_for_it() {
        let file = routes(
            r#"
[destinations.alerts]
url = "https://discord.com/api/webhooks/1/a"

[destinations.audit]
url = "https://discord.com/api/webhooks/2/b"

[[rules]]
actions = ["user_limited", "user_expired"]
to = ["alerts"]

[[rules]]
actions = ["user_deactivated"]
to = ["audit"]
"#,
        )
        .unwrap();
        let router = Router::new(Vec::new(), Some(&file), None);
        let user = json!({"username": "u", "enabled": true, "expired": false, "data_limit_reached": true});
        let cut_off = event(json!({"created_at": 1.0, "action": "user_deactivated", "by": null, "user": user}));
        assert_eq!(cut_off.action.as_str(), "user_limited");
        assert_eq!(names(&router.route(&cut_off)), ["alerts", "audit"]);
        let by_admin =
            event(json!({"created_at": 1.0, "action": "user_deactivated", "by": {"username": "boss"}, "user": user}));
        assert_eq!(names(&router.route(&by_admin)), ["audit"]);

        let muted =
            "mute = [\"user_deactivated\"]\n[destinations.audit]\nurl = \"https://discord.com/api/webhooks/2/b\"\n\
                     [[rules]]\nto = [\"audit\"]\n";
        let router = Router::new(Vec::new(), Some(&routes(muted).unwrap()), None);
        assert_eq!(names(&router.route(&cut_off)), ["audit"], "muting the panel's name leaves the renamed event");
        assert!(router.route(&by_admin).is_empty(), "an admin's own deactivation is muted");
        assert_eq!(names(&router.route(&event(json!({"action": "user_limited"})))), ["audit"]);
    }

    #[test]
    fn mutes_actions_everywhere() {
        assert!(router().route(&event(json!({"action": "user_updated"}))).is_empty());
    }

    #[test]
    fn filters_by_panel_and_owning_admin() {
        let text = r#"
[[rules]]
panels = ["eu1"]
admins = ["reseller1"]
to = ["default"]
"#;
        let file = routes(text).unwrap();
        let router = Router::new(vec![Destination::new(DEFAULT_DESTINATION, Target::DryRun)], Some(&file), None);
        let owned = json!({"action": "user_created", "user": {"admin": {"username": "reseller1"}}});
        assert_eq!(names(&router.route(&event(owned))), ["default"]);
        let other = json!({"action": "user_created", "user": {"admin": {"username": "reseller2"}}});
        assert!(router.route(&event(other)).is_empty());
    }

    fn owner_router(max: usize) -> (Router, OwnerMetrics) {
        let metrics = OwnerMetrics::default();
        let owners = Arc::new(OwnerDestinations::new(max, metrics.clone()));
        (Router::new(vec![Destination::new(DEFAULT_DESTINATION, Target::DryRun)], None, Some(owners)), metrics)
    }

    fn owned_by(admin: &str, url: &str) -> Event {
        event(json!({"action": "user_created", "user": {"admin": {"username": admin, "discord_webhook": url}}}))
    }

    #[test]
    fn delivers_to_the_owning_admins_discord_webhook_only() {
        let (router, _) = owner_router(DEFAULT_OWNER_DESTINATIONS_MAX);
        let routes = router.route(&owned_by("res", "https://discord.com/api/webhooks/9/tok"));
        assert_eq!(routes.len(), 2);
        let name = &routes[1].destination.name;
        assert!(Origin::of(name) == Origin::Owner && !name.contains("res"), "named by URL, not by admin: {name}");
        for bad in ["https://evil.example/api/webhooks/9/tok", "http://127.0.0.1:9/api/webhooks/9/tok", "nonsense"] {
            assert_eq!(names(&router.route(&owned_by("res", bad))), ["default"], "{bad}");
        }
    }

    #[test]
    fn admins_sharing_a_webhook_share_one_destination() {
        let (router, metrics) = owner_router(DEFAULT_OWNER_DESTINATIONS_MAX);
        let first = router.route(&owned_by("alice", "https://discord.com/api/webhooks/9/tok"));
        let second = router.route(&owned_by("bob", "https://discord.com/api/webhooks/9/tok"));
        assert!(Arc::ptr_eq(&first[1].destination, &second[1].destination));
        let threaded = router.route(&owned_by("carol", "https://discord.com/api/webhooks/9/tok?thread_id=5"));
        assert_ne!(threaded[1].destination.name, first[1].destination.name, "another thread is another place");
        assert_eq!(threaded[1].destination.thread_id, Some(5));
        assert_eq!(metrics.in_use.get(), 2);
    }

    #[test]
    fn an_owner_webhook_spelled_otherwise_than_a_configured_one_is_no_second_destination() {
        let text = r#"
[destinations.alerts]
url = "https://discord.com/api/webhooks/1/a"
[destinations.threaded]
url = "https://discord.com/api/webhooks/2/b"
thread_id = "223456789012345678"
[[rules]]
actions = ["user_limited"]
to = ["alerts", "threaded"]
"#;
        let file = routes(text).unwrap();
        let owners = Arc::new(OwnerDestinations::new(DEFAULT_OWNER_DESTINATIONS_MAX, OwnerMetrics::default()));
        let router =
            Router::new(vec![Destination::new(DEFAULT_DESTINATION, Target::DryRun)], Some(&file), Some(owners));
        // The same webhook and thread as a configured destination, however the URL spells it:
        // a second destination there would pace alone against Discord's one limit.
        for same in [
            "https://discordapp.com/api/v10/webhooks/1/a/",
            "https://canary.discord.com/api/webhooks/1/a",
            "https://discord.com/api/webhooks/2/b?thread_id=223456789012345678",
        ] {
            assert!(router.route(&owned_by("res", same)).is_empty(), "{same}");
        }
        // The channel of a configured destination's thread is another place.
        let channel = router.route(&owned_by("res", "https://discord.com/api/webhooks/2/b"));
        assert_eq!(channel.len(), 1);
        assert_eq!(Origin::of(&channel[0].destination.name), Origin::Owner);
    }

    #[test]
    fn takes_on_at_most_max_owner_webhooks_and_frees_forgotten_places() {
        let (router, metrics) = owner_router(3);
        let url = |i: usize| format!("https://discord.com/api/webhooks/{i}/tok");
        let admin = |i: usize| format!("admin{i}{}", "x".repeat(10_000));
        let owner_copies = (0..10).filter(|&i| router.route(&owned_by(&admin(i), &url(i))).len() == 2).count();
        assert_eq!(owner_copies, 3);
        assert_eq!((metrics.in_use.get(), metrics.skipped.get()), (3, 7));
        assert_eq!(router.route(&owned_by("other", &url(1))).len(), 2, "a webhook in use still gets copies");

        let owners = router.owners().unwrap();
        let first = owners.names().into_iter().min().unwrap();
        owners.forget(&first);
        assert_eq!(router.route(&owned_by(&admin(7), &url(7))).len(), 2, "a forgotten webhook's place is free");
        assert_eq!(router.route(&owned_by(&admin(8), &url(8))).len(), 1);

        let restored = Arc::new(Destination::new("owner:0123456789ab", Target::DryRun));
        owners.restore(&restored);
        assert_eq!(metrics.in_use.get(), 4, "rows already stored are delivered whatever the bound");
    }
}
