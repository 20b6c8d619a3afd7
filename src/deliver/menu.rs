//! The "Act on a user…" select menu under a user-event message sent through the relay's own
//! webhook: the message's users (a digest's too), each opening the user's live card in Discord.
//! Pure, tested on its own.
//!
//! The menu's `custom_id` is `act:<panel>` (the panel's key, [`menu_panel_key`]: empty for none;
//! the bot asks that panel; `act:<panel>:<n>` for a digest's further menus), each option's value a
//! username. Node events and reports get no menu: they name no user.

use serenity::builder::{CreateActionRow, CreateSelectMenu, CreateSelectMenuKind, CreateSelectMenuOption};

use crate::event::is_watch_action;
use crate::outbox::RowMeta;
use crate::panel::is_username;
use crate::render::REPORT_ACTION;

/// The `custom_id` prefix of the menu; the rest is the panel label.
pub const MENU_PREFIX: &str = "act:";

/// The menu's placeholder.
pub const PLACEHOLDER: &str = "Act on a user…";

/// Discord's limits on a string select: options, and characters of a label or value.
const OPTIONS_MAX: usize = 25;
const OPTION_CHARS: usize = 100;
/// Action rows a message may have; one menu each.
const ROWS_MAX: usize = 5;
/// Characters of a panel's key in a `custom_id`: with `act:` and `:<n>` within Discord's 100.
const PANEL_KEY_CHARS: usize = 80;

/// How a menu's `custom_id` names `panel`, and how the bot names its own to compare. A label is
/// itself; `PANEL_NAME` is free text, so its `:` and `%` are percent-encoded (the `:<n>` of a
/// further menu stays apart, and no two names share a key) and it is cut to [`PANEL_KEY_CHARS`]
/// (a longer name is `PANEL_NAME`, the only one that long: labels have at most 32 characters).
pub fn menu_panel_key(panel: &str) -> String {
    let encoded = panel.chars().flat_map(|c| match c {
        ':' => "%3A".chars().collect::<Vec<_>>(),
        '%' => "%25".chars().collect(),
        other => vec![other],
    });
    encoded.take(PANEL_KEY_CHARS).collect()
}

/// The menus for a message of `rows`: its users once each, grouped by panel (in the order they
/// first appear), 25 to a menu, at most five menus (125 users; a longer digest's first ones).
/// None when no row is a user event with a username the panel could know.
pub fn user_menus(rows: &[RowMeta]) -> Vec<CreateActionRow> {
    let mut panels: Vec<(&str, Vec<&str>)> = Vec::new();
    let mut listed = 0;
    for row in rows.iter().filter(|row| names_a_user(row)) {
        let panel = row.panel.as_deref().unwrap_or_default();
        let at = match panels.iter().position(|(label, _)| *label == panel) {
            Some(at) => at,
            None => {
                panels.push((panel, Vec::new()));
                panels.len() - 1
            }
        };
        let users = &mut panels[at].1;
        if listed < ROWS_MAX * OPTIONS_MAX && !users.contains(&row.username.as_str()) {
            users.push(&row.username);
            listed += 1;
        }
    }
    let several = panels.len() > 1;
    let pages = panels.iter().flat_map(|(panel, users)| {
        users.chunks(OPTIONS_MAX).enumerate().map(move |(page, users)| menu(panel, page, users, several))
    });
    pages.take(ROWS_MAX).collect()
}

/// Whether the row is a user event whose username the bot can look up.
fn names_a_user(row: &RowMeta) -> bool {
    row.action != REPORT_ACTION && !is_watch_action(&row.action) && is_username(&row.username)
}

/// The `page`th menu (from 0) of `panel`'s users. Its `custom_id` is `act:<panel>`, and
/// `act:<panel>:<page>` after the first (Discord wants them distinct within a message).
fn menu(panel: &str, page: usize, users: &[&str], several: bool) -> CreateActionRow {
    let options = users.iter().map(|user| CreateSelectMenuOption::new(cut(user), cut(user))).collect();
    let mut placeholder = if several { format!("Act on a user of {panel}…") } else { PLACEHOLDER.to_owned() };
    let mut custom_id = format!("{MENU_PREFIX}{}", menu_panel_key(panel));
    if page > 0 {
        let first = page * OPTIONS_MAX + 1;
        placeholder.push_str(&format!(" ({first}–{})", first + users.len() - 1));
        custom_id.push_str(&format!(":{}", page + 1));
    }
    let select = CreateSelectMenu::new(custom_id, CreateSelectMenuKind::String { options })
        .placeholder(cut(&placeholder))
        .min_values(1)
        .max_values(1);
    CreateActionRow::SelectMenu(select)
}

/// `text` cut to [`OPTION_CHARS`] characters.
fn cut(text: &str) -> String {
    text.chars().take(OPTION_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::destination::Mentions;

    fn row(action: &str, username: &str, panel: Option<&str>) -> RowMeta {
        RowMeta {
            id: 1,
            action: action.into(),
            username: username.into(),
            panel: panel.map(str::to_owned),
            received_at_ms: 0,
            mentions: Mentions::default(),
        }
    }

    fn json_of(rows: &[RowMeta]) -> Value {
        serde_json::to_value(user_menus(rows)).unwrap()
    }

    #[test]
    fn lists_each_user_once_under_its_panel() {
        let rows = [row("user_limited", "alice", Some("eu1")), row("user_expired", "alice", Some("eu1"))];
        let menus = json_of(&[&rows[..], &[row("user_limited", "bob", Some("eu1"))]].concat());
        assert_eq!(menus.as_array().unwrap().len(), 1);
        let select = &menus[0]["components"][0];
        assert_eq!(select["custom_id"], "act:eu1");
        assert_eq!(select["type"], 3);
        assert_eq!(select["placeholder"], PLACEHOLDER);
        assert_eq!(select["options"], json!([{"label": "alice", "value": "alice"}, {"label": "bob", "value": "bob"}]));
    }

    #[test]
    fn reports_node_events_and_unusable_names_get_no_menu() {
        let rows = [row(REPORT_ACTION, "daily report", None), row("node_down", "node-1", Some("eu1"))];
        assert!(user_menus(&rows).is_empty());
        assert!(user_menus(&[row("user_created", "not a name", None)]).is_empty());
    }

    #[test]
    fn a_panel_name_of_any_kind_keeps_custom_ids_short_and_apart() {
        let long = format!("EU: Frankfurt 100% {}", "x".repeat(200));
        let mut rows: Vec<RowMeta> = (0..60).map(|i| row("user_expired", &format!("u{i}"), Some(&long))).collect();
        rows.push(row("user_expired", "alice", Some("EU")));
        let menus = json_of(&rows);
        let ids: Vec<&str> = (0..4).map(|i| menus[i]["components"][0]["custom_id"].as_str().unwrap()).collect();
        assert!(ids.iter().all(|id| id.chars().count() <= 100 && id.starts_with(MENU_PREFIX)), "{ids:?}");
        assert!(ids[0].starts_with("act:EU%3A Frankfurt 100%25 x"), "{ids:?}");
        assert_eq!((ids[1].rsplit(':').next(), ids[3]), (Some("2"), "act:EU"), "{ids:?}");
        assert_eq!(ids[0], &format!("{MENU_PREFIX}{}", menu_panel_key(&long)), "the bot compares the same key");
        assert_ne!(menu_panel_key("EU:2"), menu_panel_key("EU%3A2"));
    }

    #[test]
    fn keeps_to_discords_limits() {
        let many: Vec<RowMeta> = (0..40).map(|i| row("user_expired", &format!("user{i}"), None)).collect();
        let menus = json_of(&many);
        assert_eq!(menus[0]["components"][0]["options"].as_array().unwrap().len(), 25);
        assert_eq!(menus[0]["components"][0]["custom_id"], "act:");
        assert_eq!(menus[1]["components"][0]["options"].as_array().unwrap().len(), 15);
        assert_eq!(menus[1]["components"][0]["custom_id"], "act::2");
        assert_eq!(menus[1]["components"][0]["placeholder"], "Act on a user… (26–40)");
        let more: Vec<RowMeta> = (0..200).map(|i| row("user_expired", &format!("user{i}"), None)).collect();
        assert_eq!(json_of(&more).as_array().unwrap().len(), 5, "five menus at most");
        assert_eq!(json_of(&more)[4]["components"][0]["options"][24]["value"], "user124");
        let panels: Vec<RowMeta> = (0..7).map(|i| row("user_expired", "alice", Some(&format!("p{i}")))).collect();
        let menus = json_of(&panels);
        assert_eq!(menus.as_array().unwrap().len(), 5);
        assert_eq!(menus[1]["components"][0]["placeholder"], "Act on a user of p1…");
    }
}
