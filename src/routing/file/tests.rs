//! The routes file's tests; `routes` and `FILE` serve the router's tests too.

use super::*;
use crate::destination::DEFAULT_DESTINATION;

pub fn routes(text: &str) -> Result<Routes, Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::write(dir.path().join("eu.secret"), "from-a-file\n").unwrap();
    Routes::load(&path, &[DEFAULT_DESTINATION])
}

pub const FILE: &str = r#"
mute = ["user_updated"]

[panels.eu1]
secret_file = "eu.secret"

[destinations.alerts]
url = "https://discord.com/api/webhooks/1/aaa"
thread_id = "223456789012345678"
username = "Panel alerts"

[[rules]]
to = ["default"]

[[rules]]
actions = ["user_limited", "reached_usage_percent"]
min_used_percent = 90
to = ["alerts"]
mention_roles = ["123456789012345678"]

[[rules]]
actions = ["user_limited"]
to = ["alerts"]
mention_users = [323456789012345678]
"#;

#[test]
fn reads_a_routes_file() {
    let routes = routes(FILE).unwrap();
    assert_eq!(routes.panels[0].0, "eu1");
    assert_eq!(routes.panels[0].1.expose(), "from-a-file");
    assert_eq!(routes.destinations[0].thread_id, Some(223456789012345678));
    assert_eq!(routes.destinations[0].username.as_deref(), Some("Panel alerts"));
    assert_eq!(routes.rules.len(), 3);
}

#[test]
fn reads_a_forum_destination_and_its_tags() {
    let text = r#"
[destinations.support]
url = "https://discord.com/api/webhooks/1/aaa"
forum = true
tags = { user_expired = "123456789012345678", user_limited = ["223456789012345678", 323456789012345678] }

[[rules]]
to = ["support"]
"#;
    let forum = routes(text).unwrap().destinations[0].forum.clone().unwrap();
    assert_eq!(forum.tags_for("user_expired"), [123456789012345678]);
    assert_eq!(forum.tags_for("user_limited"), [223456789012345678, 323456789012345678]);

    let broken = r#"
[destinations.support]
url = "https://discord.com/api/webhooks/1/aaa"
thread_id = "223456789012345678"
forum = true
tags = { user_expird = "123456789012345678", user_expired = "12" }

[destinations.plain]
url = "https://discord.com/api/webhooks/2/bbb"
tags = { user_expired = "123456789012345678" }

[[rules]]
to = ["support"]
"#;
    let problems = routes(broken).unwrap_err();
    let expected = [
        "destinations.plain.tags: tags are for forum destinations",
        "destinations.support: a forum destination posts into a thread per user; remove thread_id",
        "destinations.support.tags: \"user_expird\" is neither an action",
        "destinations.support.tags.user_expired: \"12\" is not a Discord id",
    ];
    for expected in expected {
        assert!(problems.iter().any(|p| p.starts_with(expected)), "{expected} not in {problems:#?}");
    }

    // A thread in the URL's query is a thread_id too: every user's post would be that thread.
    let in_url = r#"
[destinations.support]
url = "https://discord.com/api/webhooks/1/aaa?thread_id=223456789012345678"
forum = true

[[rules]]
to = ["support"]
"#;
    let problems = routes(in_url).unwrap_err();
    assert!(problems.iter().any(|p| p.ends_with("remove thread_id")), "{problems:#?}");
}

#[test]
fn reports_every_problem_with_where_it_is() {
    let text = r#"
mute = ["user_explode"]

[destinations.alerts]
url = "https://discord.com/webhooks/1/aaa"
thread_id = "12"

[destinations.default]
url = "https://discord.com/api/webhooks/2/bbb"

[[rules]]
actions = ["user_expird"]
to = ["alrets"]
mention_roles = [5]
"#;
    let problems = routes(text).unwrap_err();
    let expected = [
        "mute: unknown action \"user_explode\"",
        "destinations.alerts.url is not a usable webhook URL: must have a path",
        "destinations.alerts.thread_id: \"12\" is not a Discord id",
        "destinations.default: choose another name",
        "rules[0].actions: unknown action \"user_expird\"",
        "rules[0].to: unknown destination \"alrets\"",
        "rules[0].mention_roles: 5 is not a Discord id",
    ];
    for expected in expected {
        assert!(problems.iter().any(|p| p.starts_with(expected)), "{expected} not in {problems:#?}");
    }
    let problems = routes("[[rules]]\nto = [\"default\"]\nwhen = 1\n").unwrap_err();
    assert!(problems[0].starts_with("line 3:"), "{problems:?}");
    let problems = routes("mute = []\n").unwrap_err();
    assert!(problems[0].contains("no [[rules]]"), "{problems:?}");
}

#[test]
fn a_secret_that_is_no_string_is_refused_without_its_value() {
    for value in ["31415926535", "3.14159265", "true", "[\"x\"]"] {
        let problems =
            routes(&format!("[panels.eu]\nsecret = {value}\n\n[[rules]]\nto = [\"default\"]\n")).unwrap_err();
        let shown = problems.join("\n");
        assert!(shown.starts_with("line 2:") && shown.contains("string in quotes"), "{shown}");
        assert!(!shown.contains("31415") && !shown.contains("14159") && !shown.contains("true"), "{shown}");
    }
}

#[test]
fn a_webhook_url_pasted_where_an_id_goes_is_refused_without_its_token() {
    let token = "Zq3vXk9LmN2pR7sT1uW4yA6bC8dE0fG5hJ_kLmNoPqRsTuVwXyZ-abcdefghij12";
    let text = format!(
        "[destinations.alerts]\nurl = \"https://discord.com/api/webhooks/1/aaa\"\n\
         thread_id = \"https://discord.com/api/webhooks/123456789012345678/{token}\"\n"
    );
    let problems = routes(&text).unwrap_err();
    assert!(problems.iter().any(|p| p.starts_with("destinations.alerts.thread_id: ")), "{problems:#?}");
    assert!(!problems.concat().contains(&token[..16]), "{problems:#?}");
}

#[test]
fn two_destinations_on_one_webhook_and_thread_are_refused_naming_both_without_the_token() {
    let text = r#"
[destinations.alerts]
url = "https://discord.com/api/webhooks/1/secret-token_1"
[destinations.audit]
url = "https://discordapp.com/api/v10/webhooks/1/secret-token_1/"
[destinations.threaded]
url = "https://discord.com/api/webhooks/1/secret-token_1"
thread_id = "223456789012345678"
[destinations.other]
url = "https://discord.com/api/webhooks/2/secret-token_1"

[[rules]]
to = ["alerts", "audit", "threaded", "other"]
"#;
    let problems = routes(text).unwrap_err();
    assert_eq!(problems.len(), 1, "another thread, another webhook: {problems:?}");
    assert!(problems[0].starts_with("destinations.alerts and destinations.audit post to the same webhook"));
    assert!(problems[0].contains("/webhooks/1/"), "{}", problems[0]);
    assert!(!problems[0].contains("secret-token_1"), "{}", problems[0]);
}

#[test]
fn a_destination_can_be_a_channel_where_the_relay_makes_its_webhook() {
    let text = r#"
[destinations.alerts]
channel_id = "1100000000000000002"
forum = true

[[rules]]
to = ["alerts"]
"#;
    let read = routes(text).unwrap();
    assert_eq!(read.destinations[0].target, crate::destination::Target::Channel(1100000000000000002));
    assert!(read.destinations[0].forum.is_some());

    let both =
        "[destinations.a]\nurl = \"https://discord.com/api/webhooks/1/aaa\"\nchannel_id = \"1100000000000000002\"\n";
    assert!(routes(both).unwrap_err().iter().any(|p| p.contains("not both")), "{:?}", routes(both));
    let bad = "[destinations.a]\nchannel_id = \"general\"\n";
    assert!(routes(bad).unwrap_err().iter().any(|p| p.contains("destinations.a.channel_id")));
    let twice = "[destinations.a]\nchannel_id = \"1100000000000000002\"\n[destinations.b]\nchannel_id = \"1100000000000000002\"\n";
    assert!(routes(twice).unwrap_err().iter().any(|p| p.contains("same channel")), "{:?}", routes(twice));
}
