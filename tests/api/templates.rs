//! Templates as admins use them: every built-in language against every real payload, overrides in
//! both formats, fallbacks, and the `check` and `render` commands.

use std::time::Duration;

use marzban_discord_relay::event::parse_batch;
use marzban_discord_relay::render::{limits, Lang, Renderer};
use serde_json::Value;
use time::OffsetDateTime;

use crate::cli::relay;
use crate::fake_discord::FakeDiscord;
use crate::helpers::{eventually, every_capture, fixture, logs, spawn_app_in, Options, Process, SETTLE};
use crate::safety::secret_values;

#[test]
fn every_language_renders_every_real_payload_validly_and_without_secrets() {
    let secrets = secret_values();
    for &lang in Lang::ALL {
        let renderer = Renderer::builtin(lang);
        for (name, body) in every_capture() {
            let batch = parse_batch(body.as_bytes(), OffsetDateTime::now_utc(), Some("eu-1")).unwrap();
            assert!(batch.rejected.is_empty(), "{name}: {:?}", batch.rejected);
            for event in &batch.events {
                let part = renderer
                    .try_render(event)
                    .unwrap_or_else(|problem| panic!("{lang} {name} {}: {problem}", event.action));
                let violations = limits::violations(part.content.as_deref(), &part.embed);
                assert!(violations.is_empty(), "{lang} {name} {}: {violations:?}", event.action);
                let json = serde_json::to_string(&part).unwrap();
                for secret in &secrets {
                    assert!(!json.contains(secret.as_str()), "{lang} {name}: {secret} in {json}");
                }
                assert!(json.contains("eu-1"), "{lang} {name} {}: the panel label is shown", event.action);
            }
        }
    }
}

#[test]
fn every_language_passes_check() {
    for &lang in Lang::ALL {
        let problems = Renderer::builtin(lang).check();
        assert!(problems.is_empty(), "{lang}: {problems:?}");
    }
}

#[test]
fn persian_text_keeps_latin_names_isolated_even_when_cut() {
    let renderer = Renderer::builtin(Lang::Fa);
    let mut events: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_created.json")).unwrap();
    events[0]["user"]["note"] = Value::from(format!("user_{} یادداشت", "x".repeat(5000)));
    let batch = parse_batch(serde_json::to_vec(&events).unwrap().as_slice(), OffsetDateTime::now_utc(), None).unwrap();
    let part = renderer.try_render(&batch.events[0]).unwrap();
    let title = part.embed.title.unwrap();
    assert!(title.contains("\u{2068}h5b5cf44\\_main\u{2069}"), "{title}");
    let description = part.embed.description.unwrap();
    assert_eq!(limits::chars(&description), limits::DESCRIPTION);
    let opened = description.chars().filter(|c| ('\u{2066}'..='\u{2068}').contains(c)).count();
    let closed = description.chars().filter(|c| *c == '\u{2069}').count();
    assert_eq!(opened, closed, "every isolate is closed after the cut");
}

fn title(embed: &Value) -> &str {
    embed["title"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn admin_templates_in_toml_and_json_replace_the_built_in_ones() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("user_created.toml"),
        "title = \"Welcome {{ username }} ({{ user.data_limit | bytes }})\"\ncolor = 255\n",
    )
    .unwrap();
    // As exported from an embed designer, with a placeholder added.
    std::fs::write(
        templates.join("user_expired.json"),
        r#"{"content": null, "embeds": [{"title": "Bye {{ username }}", "color": 16711680,
            "fields": [{"name": "Was", "value": "{{ user.status | status_text }}", "inline": false}],
            "footer": {"text": "{{ panel }}"}}], "attachments": []}"#,
    )
    .unwrap();
    let options = Options::delivering_to(&discord)
        .var("TEMPLATES_DIR", templates.to_str().unwrap())
        .var("PANEL_NAME", "Main panel");
    let app = spawn_app_in(dir.path(), options).await;

    for name in ["user_created", "user_expired", "user_deleted"] {
        assert_eq!(app.post(fixture(&format!("marzban-0.8.4/{name}.json"))).await.status(), 200);
    }
    let embeds = discord.wait_for_embeds(3, Duration::from_secs(30)).await;
    assert_eq!(title(&embeds[0]), "Welcome h5b5cf44\\_main (10 GiB)");
    assert_eq!(embeds[0]["color"], 255);
    assert_eq!(title(&embeds[1]), "Bye h5b5cf44\\_expired");
    assert_eq!(embeds[1]["fields"][0]["value"], "Expired");
    assert_eq!(embeds[1]["footer"]["text"], "Main panel");
    assert!(embeds[1].get("timestamp").is_none(), "the JSON template asked for no timestamp");
    assert_eq!(title(&embeds[2]), "🗑️ User deleted: h5b5cf44\\_main", "the other actions keep the built-in template");
    app.stop().await;
}

#[tokio::test]
async fn a_broken_template_falls_back_to_the_built_in_one_and_says_where() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    // A syntax error (line 2), a typo in a variable name (line 3, strict), and a bad colour.
    std::fs::write(templates.join("user_created.toml"), "# mine\ntitle = \"{{ username \"\n").unwrap();
    std::fs::write(templates.join("user_limited.toml"), "# mine\n\ntitle = \"{{ usr.name }}\"\n").unwrap();
    std::fs::write(templates.join("user_expired.toml"), "title = \"x\"\ncolor = \"{{ 'purple' }}\"\n").unwrap();
    let options = Options::delivering_to(&discord).var("TEMPLATES_DIR", templates.to_str().unwrap());
    let app = spawn_app_in(dir.path(), options).await;

    for name in ["user_created", "user_limited", "user_expired"] {
        assert_eq!(app.post(fixture(&format!("marzban-0.8.4/{name}.json"))).await.status(), 200);
    }
    let embeds = discord.wait_for_embeds(3, Duration::from_secs(30)).await;
    assert_eq!(title(&embeds[0]), "🆕 User created: h5b5cf44\\_main");
    assert_eq!(title(&embeds[1]), "⛔ Data limit reached: h5b5cf44\\_traffic");
    assert_eq!(title(&embeds[2]), "⌛ User expired: h5b5cf44\\_expired");

    let created = templates.join("user_created.toml").display().to_string();
    let limited = templates.join("user_limited.toml").display().to_string();
    let expired = templates.join("user_expired.toml").display().to_string();
    eventually(SETTLE, "the template errors in the log", || {
        let logs = logs();
        let has = |needle: &str| logs.iter().any(|l| l.starts_with("ERROR") && l.contains(needle));
        has(&format!("{created}:2: title: syntax error"))
            && has(&format!("{limited}:3: title: undefined value"))
            && has(&format!("{expired}:2: color: \"purple\" is not a colour"))
    })
    .await;
    app.stop().await;
}

#[test]
fn check_passes_on_the_built_in_templates() {
    let output = relay(&["check"], &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("configuration: ok"), "{stdout}");
    assert!(stdout.contains("ok   user_created           built-in en/user_created.toml"), "{stdout}");
    assert!(stdout.contains("all templates render valid Discord messages"), "{stdout}");
}

#[test]
fn check_reports_each_broken_template_with_file_and_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("user_created.toml"), "title = \"ok {{ username }}\"\n").unwrap();
    std::fs::write(
        dir.path().join("user_updated.toml"),
        "title = \"x\"\n\n[[fields]]\nname = \"{{ nope }}\"\nvalue = \"v\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("user_expired.json"), "{\"embeds\": [{\"title\": \"{% if %}\"}]}").unwrap();
    let output = relay(&["check"], &[("TEMPLATES_DIR", dir.path().to_str().unwrap()), ("TEMPLATE_LANG", "ru")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let updated = dir.path().join("user_updated.toml").display().to_string();
    let expired = dir.path().join("user_expired.json").display().to_string();
    assert!(stdout.contains(&format!("error: {updated}:4: fields[0].name: undefined value")), "{stdout}");
    assert!(stdout.contains(&format!("error: {expired}:1: title: syntax error")), "{stdout}");
    assert!(stdout.contains("ok   user_created"), "{stdout}");
    assert!(stdout.contains("FAIL user_updated"), "{stdout}");
    assert!(stdout.contains("built-in ru/user_deleted.toml"), "{stdout}");
}

#[test]
fn check_reports_every_error_of_every_file_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    // Two syntax errors in one file, two undefined values in another.
    std::fs::write(dir.path().join("user_deleted.toml"), "title = \"{{ username \"\n\ndescription = \"{% if %}\"\n")
        .unwrap();
    std::fs::write(
        dir.path().join("user_limited.toml"),
        "title = \"{{ usr.name }}\"\n\n[[fields]]\nname = \"n\"\nvalue = \"{{ nope }}\"\n",
    )
    .unwrap();
    let output = relay(&["check"], &[("TEMPLATES_DIR", dir.path().to_str().unwrap())]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let deleted = dir.path().join("user_deleted.toml").display().to_string();
    let limited = dir.path().join("user_limited.toml").display().to_string();
    for expected in [
        format!("error: {deleted}:1: title: syntax error"),
        format!("error: {deleted}:3: description: syntax error"),
        format!("error: {limited}:1: title: undefined value"),
        format!("error: {limited}:5: fields[0].value: undefined value"),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} missing from:\n{stdout}");
    }
    assert_eq!(stdout.matches(&format!("error: {limited}:5:")).count(), 1, "each error once: {stdout}");
}

#[test]
fn check_names_an_undefined_variable_and_the_nearest_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("user_created.toml"), "title = \"{{ user_name }}\"\n").unwrap();
    std::fs::write(dir.path().join("user_updated.toml"), "title = \"x\"\ndescription = \"{{ usr.name }}\"\n").unwrap();
    std::fs::write(dir.path().join("user_limited.toml"), "title = \"{{ user.usedtraffic | bytes }}\"\n").unwrap();
    let output = relay(&["check"], &[("TEMPLATES_DIR", dir.path().to_str().unwrap())]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let file = |name: &str| dir.path().join(name).display().to_string();
    for expected in [
        format!(
            "{}:1: title: undefined value: `user_name` is not defined; did you mean `username`?",
            file("user_created.toml")
        ),
        format!(
            "{}:2: description: undefined value: `usr` is not defined; did you mean `user`?",
            file("user_updated.toml")
        ),
        "`user.usedtraffic` is not defined; did you mean `user.used_traffic`?".to_owned(),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} missing from:\n{stdout}");
    }
}

#[test]
fn check_warns_about_a_file_named_after_no_action_and_says_which_of_two_formats_wins() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("user_expire.toml"), "title = \"Gone {{ username }}\"\n").unwrap();
    std::fs::create_dir(dir.path().join("digest")).unwrap();
    std::fs::write(dir.path().join("digest").join("user_limted.toml"), "title = \"{{ count }}\"\n").unwrap();
    std::fs::write(dir.path().join("user_created.toml"), "title = \"toml {{ username }}\"\n").unwrap();
    std::fs::write(dir.path().join("user_created.json"), "{\"embeds\": [{\"title\": \"json\"}]}").unwrap();
    let output = relay(&["check"], &[("TEMPLATES_DIR", dir.path().to_str().unwrap())]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let expire = dir.path().join("user_expire.toml").display().to_string();
    assert!(
        stdout.contains(&format!("warning: {expire}: \"user_expire\" is not an action the panels send"))
            && stdout.contains("did you mean \"user_expired\"?"),
        "{stdout}"
    );
    assert!(stdout.contains("did you mean \"user_limited\"?"), "{stdout}");
    let toml = dir.path().join("user_created.toml").display().to_string();
    assert!(stdout.contains(&format!("error: {toml}: another file is already the template")), "{stdout}");
    assert!(stdout.contains("the .json file wins"), "{stdout}");
    assert!(stdout.contains("user_created.json"), "the .json one is in use: {stdout}");
    assert!(!stdout.contains("warning: built-in"), "built-in templates are not warned about: {stdout}");

    // Without the duplicate, the misnamed files are warnings only: check still passes.
    std::fs::remove_file(dir.path().join("user_created.json")).unwrap();
    let output = relay(&["check"], &[("TEMPLATES_DIR", dir.path().to_str().unwrap())]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("did you mean \"user_expired\"?"), "{stdout}");
}

#[test]
fn check_reports_a_bad_configuration() {
    let output = relay(&["check"], &[("TEMPLATE_LANG", "klingon")]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout.contains("TEMPLATE_LANG \"klingon\" is not one of en, ru, fa, zh"), "{stdout}");
}

#[test]
fn render_prints_the_exact_request_bodies_for_a_webhook_body() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, fixture("marzban-0.8.4/user_enabled.json")).unwrap();
    // The edit that enabled the user is folded into its user_enabled, as ingest folds it.
    let output = relay(&["render", body.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    let message: Value = crate::cli::rendered_one(&output.stdout);
    assert_eq!(message["embeds"].as_array().unwrap().len(), 1, "one change, one embed");
    assert_eq!(message["allowed_mentions"]["parse"], serde_json::json!([]));
    assert_eq!(message["embeds"][0]["title"], "✅ User enabled: h5b5cf44\\_main");

    let output = relay(&["render", body.to_str().unwrap()], &[("FOLD_UPDATES", "false")]);
    let message: Value = crate::cli::rendered_one(&output.stdout);
    assert_eq!(message["embeds"].as_array().unwrap().len(), 2, "both events packed in one message");
    assert_eq!(message["embeds"][1]["title"], "✅ User enabled: h5b5cf44\\_main");
}

#[test]
fn render_previews_a_sample_action_and_refuses_unknown_ones() {
    let output = relay(&["render", "--action", "reached_usage_percent"], &[("TEMPLATE_LANG", "zh")]);
    assert_eq!(output.status.code(), Some(0));
    let message: Value = crate::cli::rendered_one(&output.stdout);
    assert!(message["embeds"][0]["title"].as_str().unwrap().contains("dave"));

    let output = relay(&["render", "--action", "user_exploded"], &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("known actions: user_created"));

    let output = relay(&["render", "-"], &[]);
    assert_eq!(output.status.code(), Some(1), "an empty standard input is not JSON");
}

#[tokio::test]
async fn sighup_reloads_the_templates_and_keeps_them_if_the_new_ones_fail() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    let mut relay = Process::start(dir.path(), &[("TEMPLATES_DIR", "templates")]).await;
    let client = reqwest::Client::new();
    let post = |body: String| client.post(format!("http://127.0.0.1:{}/", relay.port)).body(body).send();

    std::fs::write(templates.join("user_expired.toml"), "title = \"Reloaded {{ username }}\"\n").unwrap();
    relay.signal("HUP").await;
    relay.wait_for_log("SIGHUP: templates reloaded: added user_expired").await;
    assert_eq!(post(fixture("marzban-0.8.4/user_expired.json")).await.unwrap().status(), 200);
    relay.wait_for_log(r#""title":"Reloaded h5b5cf44\\_expired""#).await;

    std::fs::write(templates.join("user_expired.toml"), "title = \"{{ broken\"\n").unwrap();
    relay.signal("HUP").await;
    relay.wait_for_log("SIGHUP: the templates were not reloaded; the current ones stay in use").await;
    assert!(relay.log().contains("user_expired.toml:1: title: syntax error"), "{}", relay.log());

    relay.signal("TERM").await;
    assert!(relay.wait().await.success());
}

/// The user Marzban's env-defined sudo admin creates: the real capture with `user.admin` null (and
/// the acting admin's `users_usage` null, as for every admin defined only in the panel's env).
fn env_sudo_user_created() -> String {
    let mut events: Vec<Value> = serde_json::from_str(&fixture("marzban-0.8.4/user_created.json")).unwrap();
    events[0]["user"]["admin"] = Value::Null;
    events[0]["by"]["users_usage"] = Value::Null;
    serde_json::to_string(&events).unwrap()
}

#[test]
fn check_passes_the_built_in_templates_on_the_env_sudo_event_and_fails_an_unguarded_admin() {
    // Arrange: the built-in templates render the env-sudo event in every language.
    let body = env_sudo_user_created();
    let batch = parse_batch(body.as_bytes(), OffsetDateTime::now_utc(), None).unwrap();
    assert!(batch.events[0].admin.is_none() && batch.events[0].by.is_some());
    for &lang in Lang::ALL {
        let part = Renderer::builtin(lang).try_render(&batch.events[0]);
        assert!(part.is_ok(), "{lang}: {part:?}");
    }
    let dir = tempfile::tempdir().unwrap();
    let vars = [("TEMPLATES_DIR", dir.path().to_str().unwrap())];
    let check = || {
        let output = relay(&["check"], &vars);
        (output.status.code(), String::from_utf8_lossy(&output.stdout).into_owned())
    };
    let (code, stdout) = check();
    assert_eq!(code, Some(0), "{stdout}");

    // Act: a template that works on the sample (its user has an owner) but not on that event.
    let file = dir.path().join("user_created.toml");
    std::fs::write(&file, "title = \"🆕 {{ username }}\"\ndescription = \"Owner: {{ admin.username }}\"\n").unwrap();
    let (code, stdout) = check();

    // Assert
    assert_eq!(code, Some(1), "{stdout}");
    let expected = format!(
        "error: {}:2: description: undefined value: `admin.username` is undefined because `admin` is null for \
         this event; guard it with {{% if admin %}}…{{% endif %}} or write `admin.username | default('…')` [on \
         edge event marzban-0.8.4/user_created.json#0 (user_created) with user.admin null (a user created by an \
         admin defined in the panel's env)",
        file.display()
    );
    assert!(stdout.contains(&expected), "{expected}\nmissing from:\n{stdout}");
    assert!(stdout.contains("FAIL user_created"), "{stdout}");

    // Either guard passes.
    for guarded in [
        "{% if admin %}Owner: {{ admin.username }}{% endif %}",
        "Owner: {{ admin.username | default('the panel admin') }}",
    ] {
        std::fs::write(&file, format!("title = \"🆕 {{{{ username }}}}\"\ndescription = \"{guarded}\"\n")).unwrap();
        let (code, stdout) = check();
        assert_eq!(code, Some(0), "{guarded}: {stdout}");
    }
}

#[test]
fn check_fails_templates_that_break_on_a_minimal_body_a_null_by_or_a_digest_without_a_panel() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("user_deleted.toml"), "title = \"{{ user.username }} deleted\"\n").unwrap();
    std::fs::write(dir.path().join("user_disabled.toml"), "title = \"{{ username }} by {{ by.username }}\"\n").unwrap();
    std::fs::create_dir(dir.path().join("digest")).unwrap();
    std::fs::write(
        dir.path().join("digest").join("user_expired.toml"),
        "title = \"{{ total }} expired{% if panel | length > 0 %} on {{ panel }}{% endif %}\"\n",
    )
    .unwrap();
    let output = relay(&["check"], &[("TEMPLATES_DIR", dir.path().to_str().unwrap())]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    for expected in [
        "`user.username` is undefined because `user` is null for this event",
        "`by.username` is undefined because `by` is null for this event",
        "(user_disabled) with by null (the panel acted by itself)",
        "cannot calculate length of value of type none [on an edge digest",
    ] {
        assert!(stdout.contains(expected), "{expected:?} missing from:\n{stdout}");
    }
}

/// Secret values as `edges.json` stores them: strings `"redacted"`, numbers 0, the shape kept (the
/// relay reads protocol names from the keys of `proxies`).
fn redacted(value: &Value, secret: bool) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let secret = secret || marzban_discord_relay::event::SECRET_KEYS.contains(&key.as_str());
                    (key.clone(), redacted(value, secret))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|item| redacted(item, secret)).collect()),
        Value::String(_) if secret => Value::from("redacted"),
        Value::Number(_) if secret => Value::from(0),
        other => other.clone(),
    }
}

#[test]
fn the_edge_events_check_uses_are_the_real_captures() {
    let captures = marzban_discord_relay::render::edges::captures();
    assert!(captures.len() >= 30, "every panel's actions: {}", captures.len());
    for capture in captures {
        let body: Value = serde_json::from_str(&fixture(&capture.capture)).unwrap();
        let element = match &body {
            Value::Array(elements) => &elements[capture.element],
            object => object,
        };
        assert_eq!(redacted(element, false), capture.body, "{}#{}", capture.capture, capture.element);
    }
}
