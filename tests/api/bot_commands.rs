//! `/stats`, `/report`, `/user`'s autocomplete and Marzneshin's user calls over signed HTTP
//! interactions, against a fake panel API of each family and the fake Discord REST API.

use std::time::Duration;

use serde_json::{json, Value};

use crate::bot::{command, deferred_then_edited, http_bot, interact, now, panel_api, GUILD, MODERATOR_ROLE};
use crate::fake_bot_peers::{FakePanel, FakeRest, Shape, PANEL_PASSWORD, PANEL_USER};
use crate::fake_discord::FakeDiscord;
use crate::helpers::{fixture as body, poll_until, spawn_app_in, Options, TestApp};

struct Bot {
    app: TestApp,
    panel: FakePanel,
    rest: FakeRest,
    _dir: tempfile::TempDir,
}

fn family(shape: Shape) -> &'static str {
    match shape {
        Shape::Marzban => "marzban",
        Shape::PasarGuard => "pasarguard",
        Shape::Marzneshin => "marzneshin",
    }
}

/// The relay with the bot, asking a fake panel of `shape`, from `base` options plus `extra`.
async fn start(shape: Shape, base: Options, extra: &[(&str, &str)]) -> Bot {
    let (panel, rest) = (FakePanel::start_as(shape).await, FakeRest::start().await);
    let options = http_bot(base, &rest.base()).var("DISCORD_GUILD_IDS", GUILD);
    let mut options = panel_api(options, &panel.url(), family(shape));
    for (name, value) in extra {
        options = options.var(name, value);
    }
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_app_in(dir.path(), options).await;
    Bot { app, panel, rest, _dir: dir }
}

/// `/<name>` with no option, from the moderator.
fn slash(name: &str) -> Value {
    let mut slash = command("alice", &[MODERATOR_ROLE]);
    slash["data"]["name"] = json!(name);
    slash["data"]["options"] = json!([]);
    slash
}

/// Discord's autocomplete of `/user` while `typed` is in the username (an `APPLICATION_COMMAND_AUTOCOMPLETE`,
/// type 4: the command's shape with the focused option).
fn autocomplete(typed: &str, roles: &[&str]) -> Value {
    let mut interaction = command(typed, roles);
    interaction["type"] = json!(4);
    interaction["data"]["options"][0]["focused"] = json!(true);
    interaction
}

/// A confirmed click (or any click) on a card drawn now with that button.
fn click(custom_id: &str) -> Value {
    crate::bot::click(custom_id, &[MODERATOR_ROLE])
}

fn paths(panel: &FakePanel) -> Vec<String> {
    panel.calls().into_iter().map(|(method, path)| format!("{method} {path}")).collect()
}

#[tokio::test]
async fn stats_shows_the_counts_each_family_answered() {
    for (shape, heading, asked) in [
        (Shape::Marzban, "panel · Marzban 0.8.4", vec!["GET /api/system"]),
        (Shape::PasarGuard, "panel · PasarGuard 5.2.1", vec!["GET /api/system"]),
        (Shape::Marzneshin, "panel · Marzneshin", vec!["GET /api/system/stats/users", "GET /api/system/stats/traffic"]),
    ] {
        let bot = start(shape, Options::new(), &[]).await;
        let mut stranger = slash("stats");
        stranger["member"]["roles"] = json!(["1400000000000000099"]);
        let refused = interact(&bot.app, &stranger).await;
        assert!(refused.to_string().contains("may not act"), "{refused}");
        assert!(bot.panel.calls().is_empty(), "a non-actor's /stats does not reach the panel");
        let answer = interact(&bot.app, &slash("stats")).await;
        assert_eq!((answer["type"].as_u64(), answer["data"]["flags"].as_u64()), (Some(4), Some(64)), "{answer}");
        let field = &answer["data"]["embeds"][0]["fields"][0];
        assert_eq!(field["name"], heading, "{answer}");
        let value = field["value"].as_str().unwrap();
        for expected in [
            "Active **7**",
            "Limited **1**",
            "Expired **1**",
            "On hold **1**",
            "Users **12**",
            "Online now **3**",
            "Traffic **2.00 GiB**",
        ] {
            assert!(value.contains(expected), "{shape:?}: {expected} in {value}");
        }
        let disabled = if shape == Shape::Marzneshin { "Disabled –" } else { "Disabled **2**" };
        assert!(value.contains(disabled), "{shape:?}: {value}");
        assert_eq!(paths(&bot.panel), asked, "{shape:?}");
        bot.app.stop().await;
    }
}

#[tokio::test]
async fn a_slow_panel_defers_stats_then_edits_them_in() {
    let bot = start(Shape::Marzban, Options::new(), &[]).await;
    bot.panel.state.lock().unwrap().delay = Duration::from_millis(3500);
    let edit = deferred_then_edited(&bot.app, &bot.rest, &slash("stats")).await;
    let value = edit.body["embeds"][0]["fields"][0]["value"].as_str().unwrap_or_default();
    assert!(value.contains("Active **7**"), "{:?}", edit.body);
}

#[tokio::test]
async fn autocomplete_lists_the_matching_users_to_actors_only() {
    for shape in [Shape::Marzban, Shape::Marzneshin] {
        let bot = start(shape, Options::new(), &[]).await;
        {
            let mut state = bot.panel.state.lock().unwrap();
            let first = state.users[0].clone();
            for name in ["alicia", "bob"] {
                let mut user = first.clone();
                user["username"] = json!(name);
                state.users.push(user);
            }
        }
        let refused = interact(&bot.app, &autocomplete("ali", &["1400000000000000099"])).await;
        assert_eq!(refused, json!({"type": 8, "data": {"choices": []}}), "a non-actor gets no choice");
        assert!(bot.panel.calls().is_empty(), "nor is the panel asked");

        let typed = if shape == Shape::Marzneshin { "u_" } else { "ali" };
        let answer = interact(&bot.app, &autocomplete(typed, &[MODERATOR_ROLE])).await;
        assert_eq!(answer["type"], 8, "{answer}");
        let names: Vec<&str> =
            answer["data"]["choices"].as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap()).collect();
        let expected = if shape == Shape::Marzneshin { vec!["u_full"] } else { vec!["alice", "alicia"] };
        assert_eq!(names, expected, "{shape:?}: {answer}");
        let query = if shape == Shape::Marzneshin {
            "GET /api/users?username=u_&page=1&size=25"
        } else {
            "GET /api/users?search=ali&offset=0&limit=25"
        };
        assert_eq!(paths(&bot.panel), vec![query]);

        let strange = interact(&bot.app, &autocomplete("a/../b", &[MODERATOR_ROLE])).await;
        assert_eq!(strange["data"]["choices"], json!([]), "no username has that: the panel is not asked");
        assert_eq!(bot.panel.calls().len(), 1);
        bot.app.stop().await;
    }
}

#[tokio::test]
async fn an_autocomplete_gives_up_with_no_choice_when_the_panel_is_slow() {
    let bot = start(Shape::Marzban, Options::new(), &[]).await;
    bot.panel.state.lock().unwrap().delay = Duration::from_millis(3500);
    let answer = interact(&bot.app, &autocomplete("ali", &[MODERATOR_ROLE])).await;
    assert_eq!(answer, json!({"type": 8, "data": {"choices": []}}));
}

#[tokio::test]
async fn marzneshin_user_calls_hit_its_paths_and_show_the_card() {
    let bot = start(Shape::Marzneshin, Options::new(), &[]).await;
    let card = interact(&bot.app, &command("u_full", &[MODERATOR_ROLE])).await;
    let embed = &card["data"]["embeds"][0];
    assert_eq!(embed["title"], r"u\_full", "{card}");
    let shown = card.to_string();
    for expected in ["expired", "0 B / 10.00 GiB", "boss", "plain note"] {
        assert!(shown.contains(expected), "{expected} in {shown}");
    }
    assert!(!shown.contains("a9166c1c"), "the subscription key leaked: {shown}");

    let issued = now();
    for (verb, path) in [
        ("reset", "POST /api/users/u_full/reset"),
        ("disable!", "POST /api/users/u_full/disable"),
        ("enable", "POST /api/users/u_full/enable"),
        ("revoke!", "POST /api/users/u_full/revoke_sub"),
    ] {
        let answer = interact(&bot.app, &click(&format!("card:{verb}:{issued}:u_full"))).await;
        assert_eq!(answer["type"], 7, "{verb}: {answer}");
        assert_eq!(paths(&bot.panel).last().map(String::as_str), Some(path), "{verb}");
        if verb == "disable!" {
            assert!(answer.to_string().contains("disabled"), "{answer}");
        }
    }
    let extended = interact(&bot.app, &click(&format!("card:extend30:{issued}:u_full"))).await;
    assert_eq!(paths(&bot.panel).last().map(String::as_str), Some("PUT /api/users/u_full"));
    let user = bot.panel.user("u_full");
    assert_eq!(user["expire_strategy"], "fixed_date");
    let in_30_days = time::OffsetDateTime::from_unix_timestamp(now() as i64 + 30 * 86_400).unwrap().date();
    assert!(user["expire_date"].as_str().unwrap().starts_with(&in_30_days.to_string()), "{user}");
    assert!(extended.to_string().contains("days left"), "{extended}");

    // Add traffic and Delete the Marzneshin way: `PUT` with the username beside the new limit,
    // then `DELETE /api/users/{username}` once confirmed.
    let raised = interact(&bot.app, &click(&format!("card:traffic10:{issued}:u_full"))).await;
    assert_eq!(paths(&bot.panel).last().map(String::as_str), Some("PUT /api/users/u_full"), "{raised}");
    assert_eq!(bot.panel.user("u_full")["data_limit"], json!(20u64 * (1 << 30)), "10 GiB on top of 10 GiB");
    interact(&bot.app, &click(&format!("card:delete!:{issued}:u_full"))).await;
    assert_eq!(paths(&bot.panel).last().map(String::as_str), Some("DELETE /api/users/u_full"));
    assert_eq!(bot.panel.find("u_full"), None, "deleted at the panel");
}

#[tokio::test]
async fn stats_and_report_are_registered_with_user_in_one_overwrite() {
    let bot = start(Shape::Marzban, Options::new(), &[("DISCORD_BOT_TOKEN", "MTIz.GfAkE.bot-token")]).await;
    let put = poll_until("the commands registered", || async {
        bot.rest.calls().into_iter().find(|call| call.method == "PUT")
    })
    .await;
    assert_eq!(bot.rest.calls().iter().filter(|call| call.method == "PUT").count(), 1);
    let names: Vec<&str> = put.body.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["user", "stats", "report"]);
    for command in put.body.as_array().unwrap() {
        assert_eq!(command["default_member_permissions"], "8", "{command}");
        assert!(!command.to_string().contains("\"panel\""), "one panel: no panel option: {command}");
    }
    assert_eq!(put.body[0]["options"][0]["autocomplete"], true);
}

#[tokio::test]
async fn report_shows_the_running_periods_events_or_how_to_turn_reports_on() {
    let bot = start(Shape::Marzban, Options::new(), &[]).await;
    let off = interact(&bot.app, &slash("report")).await;
    assert!(off.to_string().contains("Set REPORTS"), "{off}");
    bot.app.stop().await;

    let discord = FakeDiscord::start().await;
    // A daily report at the last quarter-hour: the running period started then, before the events.
    let last_quarter = jiff::Timestamp::now().as_second().div_euclid(900) * 900;
    let at = jiff::Timestamp::from_second(last_quarter).unwrap().to_string();
    let options = Options::delivering_to(&discord).var("REPORTS", &format!("daily@{}", &at[11..16]));
    let bot = start(Shape::Marzban, options, &[]).await;
    for name in ["user_created", "user_expired", "user_limited"] {
        assert_eq!(bot.app.post(body(&format!("marzban-0.8.4/{name}.json"))).await.status(), 200);
    }
    bot.app.wait_until_settled().await;
    let report = interact(&bot.app, &slash("report")).await;
    assert_eq!((report["type"].as_u64(), report["data"]["flags"].as_u64()), (Some(4), Some(64)), "{report}");
    let shown = report.to_string();
    for expected in ["Daily report", "Created: 1", r"h5b5cf44\\_expired", r"h5b5cf44\\_traffic", "so far"] {
        assert!(shown.contains(expected), "{expected} in {shown}");
    }
    assert!(bot.panel.calls().is_empty(), "the report is the relay's own: the panel is not asked");
}

#[tokio::test]
async fn a_marzneshin_panel_of_unset_family_is_learnt_by_its_login_then_asked_its_way() {
    let bot = start(Shape::Marzneshin, Options::new(), &[("PANEL_API_FAMILY", "auto")]).await;
    let card = interact(&bot.app, &command("u_full", &[MODERATOR_ROLE])).await;
    assert_eq!(card["data"]["embeds"][0]["title"], r"u\_full", "{card}");
    let stats = interact(&bot.app, &slash("stats")).await;
    assert_eq!(stats["data"]["embeds"][0]["fields"][0]["name"], "panel · Marzneshin", "{stats}");
    // Marzban's path is asked first only when the user is looked up before anything else logged
    // in (node watch may have, and learnt the family already).
    let asked = paths(&bot.panel);
    let theirs = ["GET /api/users/u_full", "GET /api/system/stats/users", "GET /api/system/stats/traffic"];
    assert!(asked.ends_with(&theirs.map(String::from)), "{asked:?}");
    assert!(asked.len() == 3 || asked[0] == "GET /api/user/u_full", "{asked:?}");
}

#[tokio::test]
async fn a_user_call_to_a_panel_of_unknown_family_is_asked_again_the_marzneshin_way() {
    let panel = FakePanel::start_as(Shape::Marzneshin).await;
    let vars: std::collections::HashMap<String, String> = [
        ("DATA_DIR", "/tmp".to_owned()),
        ("PANEL_API_URL", panel.url()),
        ("PANEL_API_USERNAME", PANEL_USER.to_owned()),
        ("PANEL_API_PASSWORD", PANEL_PASSWORD.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let config = marzban_discord_relay::config::Config::from_vars(&vars).unwrap();
    let client = marzban_discord_relay::panel::PanelClient::new(&config.panel_api.unwrap()).unwrap();
    let user = client.reset_usage("u_full").await.unwrap();
    assert_eq!((user.username.as_str(), user.status.as_str(), user.used_traffic), ("u_full", "expired", 0));
    assert_eq!(paths(&panel), ["POST /api/user/u_full/reset", "POST /api/users/u_full/reset"]);
}

#[tokio::test]
async fn typing_a_long_username_does_not_use_up_the_members_rate_for_the_command() {
    // Discord sends an autocomplete per keystroke: typing a 20-letter name must not leave the
    // member refused "too many requests" for the /user they are typing.
    let bot = start(Shape::Marzban, Options::new(), &[]).await;
    let name = "alice_in_wonderland1";
    for typed in 1..=name.len() {
        interact(&bot.app, &autocomplete(&name[..typed], &[MODERATOR_ROLE])).await;
    }
    let card = interact(&bot.app, &command("alice", &[MODERATOR_ROLE])).await;
    assert!(card.to_string().contains("\"title\":\"alice\""), "the card, not a refusal: {card}");

    // Keystrokes have a rate of their own: a flood of them stops reaching the panel.
    for _ in 0..3 * marzban_discord_relay::bot::RATE_PER_WINDOW {
        interact(&bot.app, &autocomplete("ali", &[MODERATOR_ROLE])).await;
    }
    let searches = paths(&bot.panel).iter().filter(|path| path.starts_with("GET /api/users?")).count();
    assert!(searches <= marzban_discord_relay::bot::KEYSTROKES_PER_WINDOW, "{searches} searches");
}
