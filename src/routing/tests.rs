//! The tests of choosing destinations for an event.

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

    let muted = "mute = [\"user_deactivated\"]\n[destinations.audit]\nurl = \"https://discord.com/api/webhooks/2/b\"\n\
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
    let router = Router::new(vec![Destination::new(DEFAULT_DESTINATION, Target::DryRun)], Some(&file), Some(owners));
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
