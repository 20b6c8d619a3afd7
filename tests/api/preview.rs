//! Previewing what the relay would send: `render --burst` shows the digests delivery sends for a
//! burst, every body named with its destination on standard output, and `render` does not pass a
//! fallback off as the admin's template.

use std::collections::HashSet;

use serde_json::Value;

use crate::cli::{relay, rendered};
use crate::conformance::{discord_schema, violations};
use crate::helpers::{batch_of, fixture};

/// The embed titles of `messages`, in order, without the Persian isolates.
fn titles(messages: &[(String, Value)]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|(_, body)| body["embeds"].as_array().unwrap().iter())
        .map(|embed| {
            embed["title"].as_str().unwrap().chars().filter(|c| !('\u{2066}'..='\u{2069}').contains(c)).collect()
        })
        .collect()
}

#[test]
fn a_burst_of_500_expiries_is_previewed_as_the_digests_delivery_sends() {
    // Arrange: two destinations, so each body must say where it goes.
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        "[destinations.audit]\nurl = \"https://discord.com/api/webhooks/1/abc\"\n\
         [destinations.support]\nurl = \"https://discord.com/api/webhooks/2/def\"\n\
         [[rules]]\nto = [\"audit\"]\n[[rules]]\nactions = [\"user_expired\"]\nto = [\"support\"]\n",
    )
    .unwrap();
    let schema = discord_schema();
    for (lang, part_of) in [("en", "/"), ("fa", " از ")] {
        // Act
        let vars = [("ROUTES_FILE", routes.to_str().unwrap()), ("TEMPLATE_LANG", lang)];
        let output = relay(&["render", "--burst", "500", "--action", "user_expired"], &vars);

        // Assert
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{lang}: {}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.starts_with("# to destination audit\n{"), "{lang}: the destination comes first: {stdout}");
        let messages = rendered(&output.stdout);
        for destination in ["audit", "support"] {
            let mine: Vec<(String, Value)> = messages.iter().filter(|(to, _)| to == destination).cloned().collect();
            let titles = titles(&mine);
            let parts = titles.len();
            assert!(parts >= 2, "{lang} {destination}: 500 names take more than one embed: {titles:?}");
            for (i, title) in titles.iter().enumerate() {
                assert!(title.contains("500"), "{lang} {destination}: every part carries the total: {title}");
                let place = format!("{}{part_of}{parts}", i + 1);
                assert!(title.contains(&place), "{lang} {destination}: part {place} in {title:?}");
            }
            let listed: HashSet<String> = mine
                .iter()
                .flat_map(|(_, body)| body["embeds"].as_array().unwrap().clone())
                .flat_map(|embed| {
                    let description = embed["description"].as_str().unwrap().to_owned();
                    description.split([',', '،']).map(|name| name.trim().to_owned()).collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(listed.len(), 500, "{lang} {destination}: 500 distinct users listed");
        }
        for (destination, body) in &messages {
            assert_eq!(violations(&schema, body), Vec::<String>::new(), "{lang} {destination}: {body:#}");
        }
    }
}

#[test]
fn a_burst_at_or_below_the_digest_threshold_is_previewed_as_single_embeds() {
    let output = relay(&["render", "--burst", "12", "--action", "user_expired"], &[("DIGEST_THRESHOLD", "12")]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let messages = rendered(&output.stdout);
    let counts: Vec<usize> = messages.iter().map(|(_, body)| body["embeds"].as_array().unwrap().len()).collect();
    assert_eq!(counts, [10, 2], "packed ten to a message, as delivery packs them");
    assert_eq!(titles(&messages)[11], "⌛ User expired: erin\\_12");
}

#[test]
fn a_saved_body_with_a_burst_in_it_is_previewed_as_digests_too() {
    // Arrange: a midnight expiry of 45 users, as Marzban sends it (one array), and one other event.
    let dir = tempfile::tempdir().unwrap();
    let mut events: Vec<Value> = serde_json::from_str(&batch_of("user_expired", 45, "night_", |_, _| {})).unwrap();
    events.extend(serde_json::from_str::<Vec<Value>>(&fixture("marzban-0.8.4/user_created.json")).unwrap());
    let body = dir.path().join("midnight.json");
    std::fs::write(&body, serde_json::to_string(&events).unwrap()).unwrap();

    // Act
    let output = relay(&["render", body.to_str().unwrap()], &[]);

    // Assert: the burst as one digest message, then the single embed, as delivery sends them.
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let messages = rendered(&output.stdout);
    assert_eq!(titles(&messages), ["📋 45 users expired", "🆕 User created: h5b5cf44\\_main"]);
    assert_eq!(messages.len(), 2, "a digest never shares a message with single embeds");
}

#[test]
fn a_burst_size_outside_1_to_10000_is_refused_with_the_range() {
    for bad in ["0", "10001", "many", "2.5"] {
        let output = relay(&["render", "--burst", bad, "--action", "user_expired"], &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("--burst") && stderr.contains("from 1 to 10000"), "{bad}: {stderr}");
    }
    let output = relay(&["render", "--burst", "3"], &[]);
    assert_eq!(output.status.code(), Some(2), "--burst needs --action");
}

#[test]
fn render_exits_non_zero_and_warns_when_a_template_fell_back_but_still_prints_the_body() {
    // Arrange: an unguarded `admin.username`, and a user created by Marzban's env-defined sudo
    // admin, whose `admin` is null.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("user_created.toml"), "title = \"New user of {{ admin.username }}\"\n").unwrap();
    let mut events: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_created.json")).unwrap();
    events[0]["user"]["admin"] = Value::Null;
    let bodies = tempfile::tempdir().unwrap();
    let body = bodies.path().join("env-sudo.json");
    std::fs::write(&body, serde_json::to_string(&events).unwrap()).unwrap();
    let vars = [("TEMPLATES_DIR", dir.path().to_str().unwrap())];

    // Act
    let output = relay(&["render", body.to_str().unwrap()], &vars);

    // Assert
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let file = dir.path().join("user_created.toml").display().to_string();
    assert!(
        stderr.contains("warning: 1 embed(s) or forum post title(s) above were not rendered with the template in use"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{file}:1: title: undefined value")), "{stderr}");
    assert!(stderr.contains("`admin` is null"), "{stderr}");
    let messages = rendered(&output.stdout);
    assert_eq!(titles(&messages), ["🆕 User created: h5b5cf44\\_main"], "the built-in template stood in");

    // The same template renders the event of a user with an owner: no fallback, exit code 0.
    let output = relay(&["render", "--action", "user_created"], &vars);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(titles(&rendered(&output.stdout)), ["New user of admin"]);
}

#[test]
fn render_exits_non_zero_when_a_forum_post_title_of_yours_fell_back() {
    // Arrange: a title that reaches for the event's `user`, which titles do not have.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("forum")).unwrap();
    std::fs::write(dir.path().join("forum/titles.toml"), "post = \"{{ username }} ({{ user.status }})\"\n").unwrap();
    let vars = [
        ("TEMPLATES_DIR", dir.path().to_str().unwrap()),
        ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1/abc"),
        ("DISCORD_FORUM", "true"),
    ];

    // Act
    let output = relay(&["render", "--action", "user_created"], &vars);

    // Assert
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("titles.toml: post: undefined value"), "{stderr}");
    let messages = rendered(&output.stdout);
    assert_eq!(messages[0].1["thread_name"], "alice", "the built-in title stood in: {messages:?}");
}

#[test]
fn render_exits_non_zero_when_your_report_template_fell_back() {
    // Arrange: the relay's health is on a report's first embed only, so an unguarded
    // `health.delivered` fails for the second panel of the two-panel sample.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.toml"), "title = \"{{ panel }}: {{ health.delivered }} delivered\"\n")
        .unwrap();
    let vars = [("TEMPLATES_DIR", dir.path().to_str().unwrap())];

    // Act
    let output = relay(&["render", "--report", "daily"], &vars);

    // Assert
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("report.toml:1: title: undefined value"), "{stderr}");
    let messages = rendered(&output.stdout);
    let titles = titles(&messages);
    assert!(titles[0].starts_with("eu-1: ") && titles[1].contains("Daily report"), "{titles:?}");
}

#[test]
fn the_report_command_exits_non_zero_when_your_report_template_fell_back() {
    // Arrange: a report template that names a value reports do not have.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.toml"), "title = \"{{ no_such.value }}\"\n").unwrap();
    let data = dir.path().join("data");
    let vars = [("TEMPLATES_DIR", dir.path().to_str().unwrap()), ("DATA_DIR", data.to_str().unwrap())];

    // Act: the preview of the report the relay would send now.
    let output = relay(&["report"], &vars);

    // Assert: as `render --report` does, it says the built-in template stood in, and exits 1.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("report.toml:1: title: undefined value"), "{stderr}");
    let messages = rendered(&output.stdout);
    assert!(titles(&messages)[0].contains("Daily report"), "the built-in template stood in: {messages:?}");
}

#[test]
fn render_report_shows_the_report_as_the_destination_that_gets_it() {
    // Arrange: the default destination is a text channel; reports go to a forum of the routes file.
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(
        &routes,
        "[destinations.board]\nurl = \"https://discord.com/api/webhooks/2/bbb\"\nforum = true\nreports = [\"daily\"]\n\n\
         [[rules]]\nto = [\"default\"]\n",
    )
    .unwrap();
    let vars = [
        ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/1/aaa"),
        ("ROUTES_FILE", routes.to_str().unwrap()),
        ("REPORTS", "daily@09:00"),
    ];

    // Act
    let output = relay(&["render", "--report", "daily"], &vars);

    // Assert: printed as delivery would send it to `board`, into a forum post of its own.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let messages = rendered(&output.stdout);
    assert!(messages.iter().all(|(destination, _)| destination == "board"), "{messages:?}");
    assert!(stderr.contains("# board: this message creates the forum post"), "{stderr}");
    assert!(messages[0].1["thread_name"].is_string(), "{messages:?}");
}

/// The widest word an inline field's name may have, in px: on a 390 px phone, Discord's embed is
/// about 306 px wide, so an inline field's column is about 87 px; a wider word is broken in the
/// middle ("Израсходов" / "ано").
const PHONE_COLUMN_PX: f64 = 87.0;

/// About how wide the widest part of `name` that cannot be broken across lines is, in bold 14 px
/// Noto Sans (measured on the previews: ten Cyrillic letters fill a column): lines break at spaces
/// and between CJK characters; Arabic letters and punctuation are narrow; isolates and joiners
/// take no room.
fn widest_unbreakable_px(name: &str) -> f64 {
    let (mut widest, mut run) = (0.0_f64, 0.0);
    for c in name.chars() {
        match c {
            c if c.is_whitespace() => run = 0.0,
            '\u{3000}'..='\u{9fff}' | '\u{ff00}'..='\u{ffef}' => run = 0.0,
            '\u{200b}'..='\u{200f}' | '\u{2066}'..='\u{2069}' => {}
            '\u{0600}'..='\u{06ff}' => run += 7.0,
            c if c.is_ascii_punctuation() => run += 4.5,
            c if c.is_uppercase() => run += 9.5,
            _ => run += 8.0,
        }
        widest = widest.max(run);
    }
    widest
}

#[test]
fn every_inline_field_name_of_every_capture_and_report_fits_a_phones_column_in_every_language() {
    let mut files = Vec::new();
    for panel in ["marzban-0.8.4", "pasarguard-5.2.1", "marzneshin-0.7.4"] {
        for (name, _) in crate::helpers::fixtures_in(panel) {
            files.push(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(panel).join(name));
        }
    }
    let mut too_long = Vec::new();
    for lang in ["en", "ru", "fa", "zh"] {
        let captures = files.iter().map(|file| vec!["render", file.to_str().unwrap()]);
        // A report counts such events; its sample is as a day of them would be.
        for args in captures.chain([vec!["render", "--report", "daily"]]) {
            let output = relay(&args, &[("TEMPLATE_LANG", lang)]);
            for (_, body) in rendered(&output.stdout) {
                let fields = body["embeds"].as_array().unwrap().iter().flat_map(|e| e["fields"].as_array().cloned());
                for field in fields.flatten().filter(|field| field["inline"] == true) {
                    let name = field["name"].as_str().unwrap();
                    if widest_unbreakable_px(name) > PHONE_COLUMN_PX {
                        too_long.push(format!("{lang}: {name:?}"));
                    }
                }
            }
        }
    }
    too_long.sort();
    too_long.dedup();
    assert!(too_long.is_empty(), "{too_long:?}");
}
