//! What the admin reads, checked on the request bodies Discord gets: numbers and units in the
//! template language, expiry as a date with the days left, on-hold users, the next plan and the
//! protocols, and the acting admin shown once when they own the user.

use std::time::Duration;

use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::fake_discord::FakeDiscord;
use crate::helpers::{batch_of, capture, field, fixture, spawn_app_in, Options, PASARGUARD};
use crate::safety::secret_values;

const WAIT: Duration = Duration::from_secs(10);

/// The embeds the relay posts for `bodies` (one request each) with the built-in templates of
/// `lang`, in the order received; checks on the way that no secret of any capture is in them.
async fn embeds_for(lang: &str, bodies: &[String], expected: usize) -> Vec<Value> {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("TEMPLATE_LANG", lang)).await;
    for body in bodies {
        assert_eq!(app.post(body.clone()).await.status(), 200);
    }
    let embeds = discord.wait_for_embeds(expected, WAIT).await;
    let sent = serde_json::to_string(&discord.messages()).unwrap();
    for secret in secret_values() {
        assert!(!sent.contains(&secret), "{lang}: a secret of the captures reached Discord");
    }
    app.stop().await;
    embeds
}

fn marzban(name: &str) -> Vec<Value> {
    serde_json::from_str(&fixture(&format!("marzban-0.8.4/{name}.json"))).unwrap()
}

fn body(events: &[Value]) -> String {
    serde_json::to_string(events).unwrap()
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn field_names(embed: &Value) -> Vec<&str> {
    embed["fields"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn russian_numbers_use_a_decimal_comma_and_russian_units() {
    // Arrange: 1.17 MiB used of 10 GiB, and the real 87.89 % warning.
    let mut created = marzban("user_created");
    created[0]["user"]["used_traffic"] = json!(1_228_800);
    let bodies = [body(&created), fixture("marzban-0.8.4/reached_usage_percent.json")];

    let ru = embeds_for("ru", &bodies, 2).await;
    let en = embeds_for("en", &bodies, 2).await;

    assert_eq!(field(&ru[0], "Лимит трафика"), Some("10 ГиБ"));
    assert_eq!(ru[1]["description"], "Израсходовано **87,9 %** лимита трафика.");
    assert_eq!(field(&ru[1], "Трафик"), Some("900 КиБ / 1 МиБ"));
    assert_eq!(en[1]["description"], "Used **87.9%** of the data limit.");
    assert_eq!(field(&en[1], "Used"), Some("900 KiB / 1 MiB"));

    let mut updated = marzban("user_updated");
    updated[0]["user"]["used_traffic"] = json!(1_228_800);
    let ru = embeds_for("ru", &[body(&updated)], 1).await;
    assert_eq!(field(&ru[0], "Трафик"), Some("1,17 МиБ / 20 ГиБ"));
}

#[tokio::test]
async fn a_russian_digest_title_reads_as_a_report() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("TEMPLATE_LANG", "ru")).await;

    assert_eq!(app.post(batch_of("user_expired", 40, "gone_", |_, _| {})).await.status(), 200);

    let embeds = discord.wait_for_embeds(1, WAIT).await;
    assert_eq!(embeds[0]["title"], "📋 Истёк срок у пользователей: 40");
    app.stop().await;
}

#[tokio::test]
async fn expiry_shows_the_date_and_the_days_left() {
    // Arrange: a user expiring in 30 days and 2 hours from now, and a days-left warning.
    let expire = now() + 30 * 86_400 + 7_200;
    let mut created = marzban("user_created");
    created[0]["user"]["expire"] = json!(expire);
    let mut warning = marzban("reached_days_left");
    warning[0]["user"]["expire"] = json!(expire);
    let bodies = [body(&created), body(&warning)];

    let en = embeds_for("en", &bodies, 2).await;
    let ru = embeds_for("ru", &bodies, 2).await;
    let zh = embeds_for("zh", &bodies, 2).await;

    assert_eq!(field(&en[0], "Expires"), Some(format!("<t:{expire}:d> (30 days left)").as_str()));
    assert_eq!(field(&ru[0], "Истекает"), Some(format!("<t:{expire}:d> (ещё 30 дней)").as_str()));
    assert_eq!(field(&zh[0], "到期时间"), Some(format!("<t:{expire}:d>（剩余30天）").as_str()));
    // The warning's description counts the days; its field gives the date alone, not the days
    // a second time.
    assert_eq!(en[1]["description"], "**2** days left.", "the panel's own count");
    assert_eq!(field(&en[1], "Expires"), Some(format!("<t:{expire}:d>").as_str()));
}

#[tokio::test]
async fn an_on_hold_user_shows_the_hold_rule_and_never_an_expiry_of_never() {
    // Arrange: PasarGuard's on-hold user (7 days from first connection, hold ends on a date), and
    // the same user without a length.
    let events: Vec<Value> = serde_json::from_str(&capture(PASARGUARD, "002")).unwrap();
    let mut on_hold = events[1].clone();
    assert_eq!(on_hold["user"]["status"], "on_hold");
    let mut open_ended = on_hold.clone();
    open_ended["user"]["on_hold_expire_duration"] = Value::Null;
    on_hold["username"] = json!("pg_onhold");
    let bodies = [body(&[on_hold]), body(&[open_ended])];

    for (lang, expires, never) in [("en", "Expires", "Never"), ("ru", "Истекает", "Бессрочно")] {
        let embeds = embeds_for(lang, &bodies, 2).await;

        let rule = if lang == "en" {
            "7d after first connection"
        } else {
            "7 дн. после первого подключения"
        };
        assert_eq!(field(&embeds[0], expires), Some(rule), "{lang}");
        let hold_ends = field(&embeds[0], if lang == "en" { "Hold ends" } else { "Ожидание до" }).unwrap();
        assert!(hold_ends.starts_with("<t:1796691085:d> ("), "{lang}: {hold_ends}");
        for embed in &embeds {
            let values: Vec<&str> =
                embed["fields"].as_array().unwrap().iter().map(|f| f["value"].as_str().unwrap()).collect();
            assert!(!values.contains(&never), "{lang}: {values:?}");
        }
        assert!(!field_names(&embeds[1]).contains(&expires), "{lang}: no rule, no expiry");
    }
}

#[tokio::test]
async fn marzbans_activation_of_an_on_hold_user_says_so() {
    // Arrange: Marzban's review job enables an on-hold user with `by: null`, on the first
    // connection (`online_at` set) or when the hold times out (never online).
    let mut connected = marzban("user_enabled")[1].clone();
    connected["by"] = Value::Null;
    connected["user"]["online_at"] = json!("2026-11-28T00:00:00");
    let mut timed_out = connected.clone();
    timed_out["user"]["online_at"] = Value::Null;
    let by_admin = marzban("user_enabled")[1].clone();
    let bodies = [body(&[connected]), body(&[timed_out]), body(&[by_admin])];

    let en = embeds_for("en", &bodies, 3).await;
    let ru = embeds_for("ru", &bodies, 3).await;

    assert_eq!(en[0]["description"], "Activated on first connection.");
    assert_eq!(en[1]["description"], "Activated: the on-hold period ended.");
    assert_eq!(ru[0]["description"], "Активирован при первом подключении.");
    for embed in &en[..2] {
        assert!(!field_names(embed).iter().any(|name| name.starts_with("Enabled by")), "{embed}");
    }
    assert!(en[2].get("description").is_none(), "an admin's enabling needs no explanation");
    assert_eq!(field(&en[2], "Enabled by (owner)"), Some("harness"));
}

#[tokio::test]
async fn the_acting_admin_and_the_owner_are_shown_once_when_they_are_the_same() {
    let mut other_owner = marzban("user_updated");
    other_owner[0]["user"]["admin"]["username"] = json!("reseller_1");
    let bodies =
        [fixture("marzban-0.8.4/user_created.json"), fixture("marzban-0.8.4/user_updated.json"), body(&other_owner)];

    let embeds = embeds_for("en", &bodies, 3).await;

    assert_eq!(field(&embeds[0], "Created by"), Some("harness"));
    assert_eq!(field(&embeds[0], "Owner"), None);
    assert_eq!(field(&embeds[1], "Updated by (owner)"), Some("harness"));
    assert_eq!(field(&embeds[1], "Owner"), None);
    assert_eq!(field(&embeds[2], "Updated by"), Some("harness"));
    assert_eq!(field(&embeds[2], "Owner"), Some("reseller\\_1"));
}

#[tokio::test]
async fn protocols_are_listed_by_name_only_and_pasarguard_shows_its_groups_instead() {
    // PasarGuard holds settings for every protocol, the same list on every user; its groups decide
    // what a user reaches.
    let mut grouped: Vec<Value> = serde_json::from_str(&capture(PASARGUARD, "001")).unwrap();
    grouped[0]["user"]["group_names"] = json!(["premium", "eu_*west*"]);
    let bodies = [fixture("marzban-0.8.4/user_created.json"), capture(PASARGUARD, "001"), body(&grouped)];

    for (lang, name, groups) in [
        ("en", "Protocols", "Groups"),
        ("fa", "پروتکل‌ها", "گروه‌ها"),
        ("ru", "Протоколы", "Группы"),
        ("zh", "协议", "分组"),
    ] {
        let embeds = embeds_for(lang, &bodies, 3).await;

        let marzban = field(&embeds[0], name).unwrap().replace(['\u{2068}', '\u{2069}'], "");
        assert!(marzban.contains("vless") && marzban.contains("vmess"), "{lang}: {marzban}");
        let bare = |text: &str| text.replace(['\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'], "");
        let names: Vec<String> = field_names(&embeds[1]).into_iter().map(bare).collect();
        assert!(!names.iter().any(|n| n == name || n == groups), "{lang}: no groups, nothing to show: {names:?}");
        let shown = field(&embeds[2], groups).unwrap().replace(['\u{2068}', '\u{2069}'], "");
        assert!(shown.contains("premium") && shown.contains(r"eu\_\*west\*"), "{lang}: {shown}");
    }
}

#[tokio::test]
async fn the_next_plan_is_shown_with_its_data_expiry_and_leftover_rule() {
    // Arrange: PasarGuard's next plans (expiry as a length), and Marzban's (expiry as a date).
    let mut marzban_plan = marzban("user_limited");
    marzban_plan[0]["user"]["next_plan"] =
        json!({"data_limit": 0, "expire": 1798393156, "add_remaining_traffic": false, "fire_on_either": true});
    let bodies = [capture(PASARGUARD, "013"), capture(PASARGUARD, "009"), body(&marzban_plan)];

    let en = embeds_for("en", &bodies, 3).await;
    let ru = embeds_for("ru", &bodies, 3).await;

    assert_eq!(field(&en[0], "Next plan"), Some("2 GiB · 1d · keeps unused traffic"));
    assert_eq!(field(&en[1], "Next plan"), Some("5 GiB · 7d"));
    assert_eq!(field(&en[2], "Next plan"), Some("Unlimited · <t:1798393156:d>"));
    assert_eq!(field(&ru[0], "Следующий тариф"), Some("2 ГиБ · 1 дн. · с остатком трафика"));
}

#[tokio::test]
async fn plain_text_places_show_names_as_written() {
    // A custom template putting a panel's text in each kind of place.
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("user_created.toml"),
        "title = \"{{ username }}\"\ndescription = \"{{ username }}\"\n[author]\nname = \"{{ username }}\"\n\
         [footer]\ntext = \"{{ panel }} · {{ username }}\"\n",
    )
    .unwrap();
    let options =
        Options::delivering_to(&discord).var("PANEL_NAME", "eu_1").var("TEMPLATES_DIR", templates.to_str().unwrap());
    let app = spawn_app_in(dir.path(), options).await;
    let mut events = marzban("user_created");
    events[0]["username"] = json!("ali_reza*\u{202e}");
    assert_eq!(app.post(body(&events)).await.status(), 200);
    let embed = discord.wait_for_embeds(1, WAIT).await.remove(0);

    // Discord renders no markdown in the author and the footer: no backslashes there, but still
    // nothing hidden; the title and description, where it does, stay escaped.
    assert_eq!(embed["author"]["name"], "ali_reza*");
    assert_eq!(embed["footer"]["text"], "eu_1 · ali_reza*");
    assert_eq!(embed["title"], r"ali\_reza\*");
    assert_eq!(embed["description"], r"ali\_reza\*");
    app.stop().await;
}

#[tokio::test]
async fn the_built_in_footer_shows_the_panel_label_as_written() {
    let discord = FakeDiscord::start().await;
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), Options::delivering_to(&discord).var("PANEL_NAME", "eu_1")).await;
    assert_eq!(app.post(fixture("marzban-0.8.4/user_created.json")).await.status(), 200);
    let embeds = discord.wait_for_embeds(1, WAIT).await;
    assert_eq!(embeds[0]["footer"]["text"], "eu_1");
    app.stop().await;
}

#[tokio::test]
async fn every_persian_line_is_a_right_to_left_isolate() {
    let bodies: Vec<String> = ["user_created", "user_limited", "reached_days_left", "user_expired"]
        .iter()
        .map(|name| fixture(&format!("marzban-0.8.4/{name}.json")))
        .collect();
    let embeds = embeds_for("fa", &bodies, 4).await;
    let isolated = |text: &str| {
        text.split('\n').filter(|line| !line.trim().is_empty()).all(|line| {
            line.starts_with('\u{2067}')
                && line.ends_with('\u{2069}')
                && line.matches(['\u{2066}', '\u{2067}', '\u{2068}']).count() == line.matches('\u{2069}').count()
        })
    };
    for embed in &embeds {
        for text in [&embed["title"], &embed["description"], &embed["footer"]["text"]] {
            if let Some(text) = text.as_str() {
                assert!(isolated(text), "{text:?}");
            }
        }
        for field in embed["fields"].as_array().unwrap() {
            for text in [&field["name"], &field["value"]] {
                assert!(isolated(text.as_str().unwrap()), "{text}");
            }
        }
    }
    // English is left as it is.
    let embeds = embeds_for("en", &bodies[..1], 1).await;
    assert!(!embeds[0]["title"].as_str().unwrap().contains('\u{2067}'));
}
