//! The card's actions beyond the first ones: Add traffic, Delete (after a confirmation), the audit
//! line posted to the channel through the outbox, a click checked against the buttons of the
//! message it was made on, the deferral counted from the request's arrival, and the bound on a
//! panel's user answer. Signed interactions with the test key, against the fake Marzban user API.

use std::time::Duration;

use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

use crate::bot::{click_on, command, hex, interact, now, start, text_of, Bot, MODERATOR_ROLE, SIGNING_KEY};
use crate::fake_discord::{FakeDiscord, WEBHOOK_ID};
use crate::helpers::{batch_of, poll_until, SECRET};

const GIB: i64 = 1 << 30;

/// The card `/user alice` answers, and its buttons' action rows.
async fn card(bot: &Bot) -> (Value, Value) {
    let card = interact(&bot.app, &command("alice", &[MODERATOR_ROLE])).await;
    let rows = card["data"]["components"].clone();
    assert!(rows.is_array(), "a card with buttons: {card}");
    (card, rows)
}

/// The `custom_id` of the button of `rows` whose id starts with `prefix`.
fn button(rows: &Value, prefix: &str) -> String {
    let ids =
        rows.as_array().into_iter().flatten().flat_map(|row| row["components"].as_array().cloned().unwrap_or_default());
    ids.filter_map(|b| b["custom_id"].as_str().map(str::to_owned))
        .find(|id| id.starts_with(prefix))
        .unwrap_or_else(|| panic!("no button {prefix}… in {rows}"))
}

#[tokio::test]
async fn add_traffic_raises_the_data_limit_by_exactly_the_buttons_gib() {
    let bot = start(&[("DISCORD_TRAFFIC_GIB", "10,50")]).await;
    let before = bot.panel.user("alice")["data_limit"].as_i64().unwrap();
    let (card, rows) = card(&bot).await;
    assert!(text_of(&card).contains("+10 GiB") && text_of(&card).contains("+50 GiB"), "{card}");
    let added = interact(&bot.app, &click_on(&button(&rows, "card:traffic10:"), &rows, &[MODERATOR_ROLE])).await;
    assert_eq!(added["type"], 7, "the card updates in place: {added}");
    assert_eq!(bot.panel.user("alice")["data_limit"].as_i64().unwrap(), before + 10 * GIB);
    assert_eq!(bot.panel.count("PUT", "/api/user/alice"), 1);
    let shown = text_of(&added);
    assert!(shown.contains("added 10 GiB to alice's data limit") && shown.contains("/ 10.00 GiB"), "{shown}");
}

#[tokio::test]
async fn add_traffic_leaves_a_user_without_a_limit_as_they_are() {
    let bot = start(&[]).await;
    let (_, rows) = card(&bot).await;
    // The card was drawn while alice had a limit; someone made her unlimited since.
    bot.panel.state.lock().unwrap().users[0]["data_limit"] = Value::Null;
    let answer = interact(&bot.app, &click_on(&button(&rows, "card:traffic10:"), &rows, &[MODERATOR_ROLE])).await;
    let shown = text_of(&answer);
    assert!(shown.contains("has no data limit: nothing was changed"), "{shown}");
    assert!(!shown.contains("card:traffic"), "no Add traffic on a card without a limit: {shown}");
    assert_eq!(bot.panel.count("PUT", "/api/user/alice"), 0);
    assert_eq!(bot.panel.user("alice")["data_limit"], Value::Null);
}

#[tokio::test]
async fn delete_asks_first_then_deletes_once_and_the_card_says_the_user_is_gone() {
    let bot = start(&[]).await;
    let (_, rows) = card(&bot).await;
    let asked = interact(&bot.app, &click_on(&button(&rows, "card:delete:"), &rows, &[MODERATOR_ROLE])).await;
    assert_eq!(asked["type"], 7, "{asked}");
    assert!(text_of(&asked).contains("Delete this user"), "{asked}");
    assert_eq!(bot.panel.count("DELETE", "/api/user/alice"), 0, "not before the confirmation");
    assert!(bot.panel.find("alice").is_some());

    let question = asked["data"]["components"].clone();
    let yes = button(&question, "card:delete!:");
    let gone = interact(&bot.app, &click_on(&yes, &question, &[MODERATOR_ROLE])).await;
    assert_eq!(gone["type"], 7, "{gone}");
    assert_eq!(gone["data"]["components"], json!([]), "no buttons on a deleted user's card: {gone}");
    assert!(text_of(&gone).contains("deleted alice") && text_of(&gone).contains("Deleted from the panel"), "{gone}");
    assert!(bot.panel.find("alice").is_none());

    let again = interact(&bot.app, &click_on(&yes, &question, &[MODERATOR_ROLE])).await;
    assert!(text_of(&again).contains("done a moment ago"), "{again}");
    assert_eq!(bot.panel.count("DELETE", "/api/user/alice"), 1, "a double click deletes once");
}

#[tokio::test]
async fn a_deletion_answered_without_a_body_is_a_deletion() {
    // PasarGuard answers DELETE /api/user/{username} with 204 and no body.
    let bot = start(&[]).await;
    bot.panel.state.lock().unwrap().delete_no_content = true;
    let yes = format!("card:delete!:{}:alice", now());
    let gone = interact(&bot.app, &crate::bot::click(&yes, &[MODERATOR_ROLE])).await;
    assert!(text_of(&gone).contains("deleted alice"), "{gone}");
    assert!(bot.panel.find("alice").is_none());
}

#[tokio::test]
async fn a_crafted_custom_id_not_on_the_message_is_refused_and_the_panel_is_untouched() {
    // A member with the rights could send any custom_id: the confirmed Delete from the card
    // itself (skipping the question), or a button naming another user.
    let bot = start(&[]).await;
    let (_, rows) = card(&bot).await;
    let issued = button(&rows, "card:refresh:").split(':').nth(2).unwrap().to_owned();
    for crafted in [
        format!("card:delete!:{issued}:alice"),
        format!("card:disable!:{issued}:alice"),
        format!("card:reset:{issued}:bob42"),
        format!("card:reset:{}:alice", issued.parse::<u64>().unwrap() + 1),
    ] {
        let refused = interact(&bot.app, &click_on(&crafted, &rows, &[MODERATOR_ROLE])).await;
        assert!(text_of(&refused).contains("not one of the relay's cards"), "{crafted}: {refused}");
    }
    assert_eq!(bot.panel.calls(), vec![("GET".to_owned(), "/api/user/alice".to_owned())], "only the /user look-up");
    let alice = bot.panel.user("alice");
    assert_eq!((alice["status"].as_str(), alice["used_traffic"].as_i64()), (Some("limited"), Some(1_500_000)));
}

#[tokio::test]
async fn every_action_posts_one_audit_line_that_pings_nobody() {
    let discord = FakeDiscord::start().await;
    let webhook = discord.webhook_url();
    let bot = start(&[("DISCORD_WEBHOOK_URL", &webhook), ("WEBHOOK_SECRET", SECRET), ("PANEL_NAME", "eu1")]).await;
    let (_, rows) = card(&bot).await;
    let refreshed = interact(&bot.app, &click_on(&button(&rows, "card:refresh:"), &rows, &[MODERATOR_ROLE])).await;
    assert_eq!(refreshed["type"], 7, "{refreshed}");
    interact(&bot.app, &click_on(&button(&rows, "card:reset:"), &rows, &[MODERATOR_ROLE])).await;
    assert_eq!(bot.panel.user("alice")["used_traffic"], 0);

    let message = poll_until("the audit line delivered", || async { discord.messages().first().cloned() }).await;
    assert_eq!(message["content"], "<@1500000000000000001> reset alice's usage · eu1", "{message}");
    assert_eq!(message["embeds"].as_array().map(Vec::len).unwrap_or(0), 0, "a plain line: {message}");
    assert_eq!(message["allowed_mentions"], json!({"parse": [], "users": [], "roles": []}), "pings nobody");
    bot.app.wait_until_settled().await;
    assert_eq!(discord.messages().len(), 1, "once, and nothing for /user or Refresh: {:?}", discord.messages());
}

#[tokio::test]
async fn a_panel_user_answer_over_256_kib_is_a_clear_error() {
    let bot = start(&[]).await;
    bot.panel.state.lock().unwrap().padding = 200 << 10;
    let (card, _) = card(&bot).await;
    assert_eq!(card["data"]["embeds"][0]["title"], "alice", "200 KiB is read: {card}");
    bot.panel.state.lock().unwrap().padding = 300 << 10;
    let answer = interact(&bot.app, &command("alice", &[MODERATOR_ROLE])).await;
    let shown = text_of(&answer);
    assert!(shown.contains("answer to /api/user/{username} was larger than 262144 bytes"), "{shown}");
}

#[tokio::test]
async fn the_deferral_counts_from_the_requests_arrival_not_from_its_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The body arrives 600 ms after the head, the panel takes 1.7 s: 2.3 s in all, past the 2 s
    // after which the relay defers. Counted from the body, it waited for the panel and answered
    // after 2.3 s, leaving less than Discord's 3 s for the answer to reach it.
    let bot = start(&[]).await;
    bot.panel.state.lock().unwrap().delay = Duration::from_millis(1700);
    let body = command("alice", &[MODERATOR_ROLE]).to_string();
    let timestamp = now().to_string();
    let signature = SigningKey::from_bytes(&SIGNING_KEY).sign(&[timestamp.as_bytes(), body.as_bytes()].concat());
    let head = format!(
        "POST /interactions HTTP/1.1\r\nHost: relay\r\nx-signature-ed25519: {}\r\nx-signature-timestamp: {timestamp}\r\n\
         content-type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        hex(&signature.to_bytes()),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", bot.app.port())).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let json: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or_default()).unwrap_or_default();
    assert_eq!(json["type"], 5, "deferred: {answer}");
    poll_until("the card edited in", || async { bot.rest.calls().into_iter().find(|call| call.method == "PATCH") })
        .await;
}

#[tokio::test]
async fn in_forum_mode_the_audit_line_goes_into_the_users_post() {
    let discord = FakeDiscord::start().await;
    let webhook = discord.forum_webhook_url(WEBHOOK_ID);
    let bot = start(&[("DISCORD_WEBHOOK_URL", &webhook), ("WEBHOOK_SECRET", SECRET), ("DISCORD_FORUM", "true")]).await;
    // The panel's user_limited about alice makes her post.
    let limited = batch_of("user_limited", 1, "", |_, event| {
        event["username"] = json!("alice");
        if event["user"].is_object() {
            event["user"]["username"] = json!("alice");
        }
    });
    assert_eq!(bot.app.post(limited).await.status(), 200);
    poll_until("alice's post", || async { discord.threads().first().cloned() }).await;

    let (_, rows) = card(&bot).await;
    interact(&bot.app, &click_on(&button(&rows, "card:reset:"), &rows, &[MODERATOR_ROLE])).await;
    let post = poll_until("the audit line in her post", || async {
        discord.threads().into_iter().find(|thread| thread.messages.len() == 2)
    })
    .await;
    assert_eq!(discord.threads().len(), 1, "no post of its own");
    assert_eq!(post.messages[1]["content"], "<@1500000000000000001> reset alice's usage", "{:?}", post.messages);
}

#[tokio::test]
async fn a_second_click_while_a_slow_panel_is_still_acting_is_not_done_twice() {
    // Add traffic asks the panel twice (read, then write), 3 s each: the first click is still
    // being carried out when the member, seeing nothing change, clicks again after 5.5 s, past
    // the 5 s in which the same action acts once. It must not add the traffic a second time.
    let bot = start(&[("DISCORD_TRAFFIC_GIB", "10")]).await;
    let (_, rows) = card(&bot).await;
    bot.panel.state.lock().unwrap().delay = Duration::from_millis(3000);
    let traffic = button(&rows, "card:traffic10:");
    let first = interact(&bot.app, &click_on(&traffic, &rows, &[MODERATOR_ROLE])).await;
    assert_eq!(first["type"], 6, "deferred: {first}");
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let second = interact(&bot.app, &click_on(&traffic, &rows, &[MODERATOR_ROLE])).await;
    assert!(second.to_string().contains("not done twice"), "refused while the first is under way: {second}");
    poll_until("the first click's card edited in", || async {
        bot.rest.calls().into_iter().find(|call| call.method == "PATCH")
    })
    .await;
    assert_eq!(bot.panel.count("PUT", "/api/user/alice"), 1);
}
