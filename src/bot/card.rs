//! The user card and its buttons: pure, a [`PanelUser`] in, a message out. Every value from the
//! panel is escaped like a username in the templates; the subscription link is never shown (the
//! panel client does not even read it).
//!
//! A button's `custom_id` is `card:<verb>[!]:<issued>:<username>`: `!` marks a confirmed
//! Disable, Revoke or Delete, `issued` is when the card was drawn (unix seconds), so a click on an
//! old card can be told apart. A click counts only if its `custom_id` is one of the message's own
//! buttons (see `drawn`).

use std::collections::BTreeSet;

use serenity::builder::{
    CreateActionRow, CreateAllowedMentions, CreateButton, CreateEmbed, CreateEmbedFooter,
    CreateInteractionResponseMessage, EditInteractionResponse,
};
use serenity::model::application::ButtonStyle;
use serenity::model::Timestamp;

use super::settings::Action;
use crate::panel::{is_username, PanelUser};
use crate::render::filters::escape_markdown;

/// The footer of a card when the bot asks one panel (with several, it names the card's panel).
pub const ONE_PANEL_FOOTER: &str = "Live from the panel";

/// A click on a card's button.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    pub verb: Verb,
    /// A Disable or Revoke confirmed on the card's second question.
    pub confirmed: bool,
    /// When the card was drawn, unix seconds.
    pub issued: i64,
    pub username: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Refresh,
    Reset,
    Enable,
    Disable,
    Revoke,
    Extend(u32),
    /// Add this many GiB to the data limit.
    Traffic(u32),
    Delete,
}

impl Verb {
    /// The permission it needs.
    pub fn action(self) -> Action {
        match self {
            Self::Refresh => Action::Lookup,
            Self::Reset => Action::Reset,
            Self::Enable => Action::Enable,
            Self::Disable => Action::Disable,
            Self::Revoke => Action::Revoke,
            Self::Extend(_) => Action::Extend,
            Self::Traffic(_) => Action::Traffic,
            Self::Delete => Action::Delete,
        }
    }

    /// Asked again before it is done.
    pub fn needs_confirmation(self) -> bool {
        matches!(self, Self::Disable | Self::Revoke | Self::Delete)
    }

    fn word(self) -> String {
        match self {
            Self::Extend(days) => format!("extend{days}"),
            Self::Traffic(gib) => format!("traffic{gib}"),
            other => other.action().name().replace("lookup", "refresh"),
        }
    }

    /// What was done, for the audit line and the card's notice: "reset alice's usage".
    pub fn done(self, username: &str) -> String {
        match self {
            Self::Refresh => format!("looked {username} up"),
            Self::Reset => format!("reset {username}'s usage"),
            Self::Enable => format!("enabled {username}"),
            Self::Disable => format!("disabled {username}"),
            Self::Revoke => format!("revoked {username}'s subscription"),
            Self::Extend(days) => format!("extended {username} by {days} days"),
            Self::Traffic(gib) => format!("added {gib} GiB to {username}'s data limit"),
            Self::Delete => format!("deleted {username}"),
        }
    }
}

/// The `custom_id` of a button.
pub fn custom_id(verb: Verb, confirmed: bool, issued: i64, username: &str) -> String {
    format!("card:{}{}:{issued}:{username}", verb.word(), if confirmed { "!" } else { "" })
}

/// The click a `custom_id` stands for; `None` for anything the relay did not draw.
pub fn parse_click(custom_id: &str) -> Option<Click> {
    let mut parts = custom_id.strip_prefix("card:")?.splitn(3, ':');
    let (word, issued, username) = (parts.next()?, parts.next()?, parts.next()?);
    let (word, confirmed) = word.strip_suffix('!').map_or((word, false), |w| (w, true));
    let verb = match word {
        "refresh" => Verb::Refresh,
        "reset" => Verb::Reset,
        "enable" => Verb::Enable,
        "disable" => Verb::Disable,
        "revoke" => Verb::Revoke,
        "delete" => Verb::Delete,
        _ => match word.strip_prefix("traffic") {
            Some(gib) => Verb::Traffic(number(gib)?),
            None => Verb::Extend(number(word.strip_prefix("extend")?)?),
        },
    };
    let issued = issued.parse().ok()?;
    is_username(username).then(|| Click { verb, confirmed, issued, username: username.to_owned() })
}

/// A count in a `custom_id`: digits only (`parse` would take `+7`), at most 10 of them.
fn number(digits: &str) -> Option<u32> {
    let plain = (1..=10).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    plain.then(|| digits.parse().ok()).flatten()
}

/// A message part for Discord: new (ephemeral), an update of the card, or an edit after a deferral.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub content: Option<String>,
    pub embed: Option<CreateEmbed>,
    pub components: Option<Vec<CreateActionRow>>,
}

impl Reply {
    /// Text only (a refusal, an error).
    pub fn text(text: impl Into<String>) -> Self {
        Self { content: Some(text.into()), ..Self::default() }
    }

    /// As an interaction response's message, seen by the clicker only.
    pub fn message(&self) -> CreateInteractionResponseMessage {
        self.update().ephemeral(true)
    }

    /// As the new state of the message the clicked button is on (its flags stay as they are).
    pub fn update(&self) -> CreateInteractionResponseMessage {
        let mut message = CreateInteractionResponseMessage::new().allowed_mentions(CreateAllowedMentions::new());
        if let Some(content) = &self.content {
            message = message.content(content);
        }
        if let Some(embed) = &self.embed {
            message = message.embed(embed.clone());
        }
        if let Some(components) = &self.components {
            message = message.components(components.clone());
        }
        message
    }

    /// As an edit of the original response (after a deferral); fields left out stay as they are.
    pub fn edit(&self) -> EditInteractionResponse {
        let mut edit = EditInteractionResponse::new().allowed_mentions(CreateAllowedMentions::new());
        if let Some(content) = &self.content {
            edit = edit.content(content);
        }
        if let Some(embed) = &self.embed {
            edit = edit.embed(embed.clone());
        }
        if let Some(components) = &self.components {
            edit = edit.components(components.clone());
        }
        edit
    }
}

/// What a card's buttons are drawn from: the actions allowed and the amounts configured.
#[derive(Debug, Clone)]
pub struct Drawing {
    pub actions: BTreeSet<Action>,
    pub extend_days: Vec<u32>,
    pub traffic_gib: Vec<u32>,
}

impl Drawing {
    /// The card of `user` drawn at `now`, with `notice` above it (see [`user_card`]).
    pub fn card(&self, user: &PanelUser, now: i64, notice: Option<String>) -> Reply {
        user_card(user, now, &self.actions, &self.extend_days, &self.traffic_gib, notice)
    }
}

/// The card of `user` drawn at `now` (unix seconds), with the buttons `actions` allow (Extend by
/// `extend_days`, Add traffic by `traffic_gib`), and a notice above it (what was just done), or
/// none.
pub fn user_card(
    user: &PanelUser,
    now: i64,
    actions: &BTreeSet<Action>,
    extend_days: &[u32],
    traffic_gib: &[u32],
    notice: Option<String>,
) -> Reply {
    let limit = user.data_limit.map_or_else(|| "∞".to_owned(), bytes);
    let mut embed = CreateEmbed::new()
        .title(escape_markdown(&user.username))
        .colour(colour(&user.status))
        .field("Status", escape_markdown(&user.status), true)
        .field("Usage", format!("{} / {limit}", bytes(user.used_traffic)), true)
        .field("Expires", expiry(user, now), true)
        .field("Online", online(user.online_at, now), true)
        .footer(CreateEmbedFooter::new(ONE_PANEL_FOOTER));
    if let Some(owner) = &user.owner {
        embed = embed.field("Owner", escape_markdown(owner), true);
    }
    if let Some(note) = &user.note {
        embed = embed.field("Note", escape_markdown(note), false);
    }
    if let Ok(at) = Timestamp::from_unix_timestamp(now) {
        embed = embed.timestamp(at);
    }
    let content = Some(notice.unwrap_or_default());
    let mut rows = buttons(user, now, actions, extend_days);
    rows.extend(traffic_row(user, now, actions, traffic_gib));
    Reply { content, embed: Some(embed), components: Some(rows) }
}

/// The card of a user just deleted: the notice, the name struck through, and no buttons left.
pub fn deleted_card(username: &str, notice: String) -> Reply {
    let embed = CreateEmbed::new()
        .title(format!("~~{}~~", escape_markdown(username)))
        .description("Deleted from the panel.")
        .colour(colour("disabled"));
    Reply { content: Some(notice), embed: Some(embed), components: Some(Vec::new()) }
}

/// The question before a Disable, Revoke or Delete: the card stays, its buttons become Confirm and
/// Cancel.
pub fn confirmation(click: &Click) -> Reply {
    let question = match click.verb {
        Verb::Revoke => "Revoke the subscription? The user's current link stops working.",
        Verb::Delete => "Delete this user from the panel? Their account and usage are gone; this cannot be undone.",
        _ => "Disable this user? They are cut off until enabled again.",
    };
    let row = CreateActionRow::Buttons(vec![
        CreateButton::new(custom_id(click.verb, true, click.issued, &click.username))
            .label(format!("Yes, {}", click.verb.action().name()))
            .style(ButtonStyle::Danger),
        CreateButton::new(custom_id(Verb::Refresh, false, click.issued, &click.username))
            .label("Cancel")
            .style(ButtonStyle::Secondary),
    ]);
    Reply {
        content: Some(format!("{} ({})", question, escape_markdown(&click.username))),
        embed: None,
        components: Some(vec![row]),
    }
}

fn buttons(user: &PanelUser, now: i64, actions: &BTreeSet<Action>, extend_days: &[u32]) -> Vec<CreateActionRow> {
    let button = |verb: Verb, label: String, style| {
        CreateButton::new(custom_id(verb, false, now, &user.username)).label(label).style(style)
    };
    let mut first = vec![button(Verb::Refresh, "Refresh".into(), ButtonStyle::Secondary)];
    if actions.contains(&Action::Reset) {
        first.push(button(Verb::Reset, "Reset usage".into(), ButtonStyle::Primary));
    }
    if user.status == "disabled" {
        if actions.contains(&Action::Enable) {
            first.push(button(Verb::Enable, "Enable".into(), ButtonStyle::Success));
        }
    } else if actions.contains(&Action::Disable) {
        first.push(button(Verb::Disable, "Disable".into(), ButtonStyle::Danger));
    }
    if actions.contains(&Action::Revoke) {
        first.push(button(Verb::Revoke, "Revoke subscription".into(), ButtonStyle::Danger));
    }
    if actions.contains(&Action::Delete) {
        first.push(button(Verb::Delete, "Delete".into(), ButtonStyle::Danger));
    }
    let mut rows = vec![CreateActionRow::Buttons(first)];
    if actions.contains(&Action::Extend) && user.expire.is_some() {
        let extend = extend_days
            .iter()
            .map(|&days| button(Verb::Extend(days), format!("Extend +{days} d"), ButtonStyle::Primary));
        rows.push(CreateActionRow::Buttons(extend.collect()));
    }
    rows
}

/// The Add traffic buttons, one row: none for a user without a data limit (adding to "no limit"
/// would set one and cut them off).
fn traffic_row(user: &PanelUser, now: i64, actions: &BTreeSet<Action>, traffic_gib: &[u32]) -> Option<CreateActionRow> {
    if !actions.contains(&Action::Traffic) || user.data_limit.is_none() || traffic_gib.is_empty() {
        return None;
    }
    let buttons = traffic_gib.iter().map(|&gib| {
        CreateButton::new(custom_id(Verb::Traffic(gib), false, now, &user.username))
            .label(format!("+{gib} GiB"))
            .style(ButtonStyle::Primary)
    });
    Some(CreateActionRow::Buttons(buttons.collect()))
}

fn colour(status: &str) -> u32 {
    match status {
        "active" => 0x2e_cc71,
        "on_hold" => 0x34_98db,
        "disabled" => 0x95_a5a6,
        _ => 0xe7_4c3c,
    }
}

/// `1.43 GiB`.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

fn expiry(user: &PanelUser, now: i64) -> String {
    match (user.expire, user.on_hold_expire_duration) {
        (None, Some(duration)) if user.status == "on_hold" => {
            format!("on hold: {} days from the first connection", duration / 86_400)
        }
        (None, _) => "never".to_owned(),
        (Some(expire), _) if expire > now => {
            format!("<t:{expire}:d> ({} days left)", (expire - now).div_euclid(86_400))
        }
        (Some(expire), _) => format!("<t:{expire}:d> (expired {} days ago)", now.saturating_sub(expire) / 86_400),
    }
}

fn online(at: Option<i64>, now: i64) -> String {
    let Some(at) = at else {
        return "never".to_owned();
    };
    let ago = now.saturating_sub(at).max(0);
    match ago {
        0..=59 => "online now".to_owned(),
        60..=3599 => format!("{} min ago", ago / 60),
        3600..=86_399 => format!("{} h ago", ago / 3600),
        _ => format!("{} days ago", ago / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::USERNAME_MAX_CHARS;

    fn alice() -> PanelUser {
        PanelUser {
            username: "alice".into(),
            status: "limited".into(),
            used_traffic: 1_500_000,
            data_limit: Some(1_048_576),
            expire: Some(1_000_000 + 3 * 86_400 + 5),
            on_hold_expire_duration: None,
            online_at: Some(1_000_000 - 180),
            note: Some("**vip** @everyone <@&1>".into()),
            owner: Some("admin_1".into()),
        }
    }

    #[test]
    fn a_click_round_trips_and_a_foreign_id_is_not_a_click() {
        let verbs = [Verb::Refresh, Verb::Reset, Verb::Enable, Verb::Disable, Verb::Revoke, Verb::Extend(30)];
        for verb in verbs.into_iter().chain([Verb::Traffic(102_400), Verb::Delete]) {
            let id = custom_id(verb, verb.needs_confirmation(), 1_700_000_000, &"u".repeat(USERNAME_MAX_CHARS));
            assert!(id.len() <= 100, "Discord's limit: {id}");
            let click = parse_click(&id).unwrap();
            assert_eq!((click.verb, click.confirmed, click.issued), (verb, verb.needs_confirmation(), 1_700_000_000));
        }
        let foreign = ["", "card:reset:x:alice", "card:explode:1:alice", "card:reset:1:../x", "other:reset:1:alice"];
        let forged = ["card:traffic+5:1:alice", "card:traffic:1:alice", "card:extend99999999999:1:alice"];
        for foreign in foreign.into_iter().chain(forged) {
            assert_eq!(parse_click(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn the_card_shows_the_state_escaped_with_the_allowed_buttons() {
        let card = user_card(&alice(), 1_000_000, &BTreeSet::from([Action::Lookup, Action::Reset]), &[30], &[10], None);
        let json = serde_json::to_string(&card.message()).unwrap();
        assert!(json.contains("1.43 MiB / 1.00 MiB"), "{json}");
        assert!(json.contains("(3 days left)") && json.contains("3 min ago"), "{json}");
        assert!(json.contains(r"\\*\\*vip\\*\\* \\@everyone \\<\\@&1\\>"), "{json}");
        assert!(json.contains("card:reset:1000000:alice") && !json.contains("card:revoke"), "{json}");
        assert!(!json.contains("extend") && !json.contains("traffic"), "extend is not allowed: {json}");
        assert!(
            json.contains(r#""allowed_mentions":{"parse":[]"#) || json.contains(r#""allowed_mentions":{}"#),
            "{json}"
        );
    }

    #[test]
    fn add_traffic_is_one_row_and_only_for_a_user_with_a_limit() {
        let all = BTreeSet::from(Action::ALL);
        let card = user_card(&alice(), 1_000_000, &all, &[30], &[10, 50], None);
        let rows = serde_json::to_value(card.message()).unwrap()["components"].clone();
        let traffic = &rows[2]["components"];
        assert_eq!(traffic[0]["custom_id"], "card:traffic10:1000000:alice", "{rows}");
        assert_eq!((traffic[1]["label"].as_str(), traffic.as_array().unwrap().len()), (Some("+50 GiB"), 2));
        assert!(rows[0].to_string().contains("card:delete:1000000:alice"), "{rows}");
        assert!(rows.as_array().unwrap().iter().all(|row| row["components"].as_array().unwrap().len() <= 5));
        let unlimited = PanelUser { data_limit: None, ..alice() };
        let card =
            serde_json::to_string(&user_card(&unlimited, 1_000_000, &all, &[30], &[10], None).message()).unwrap();
        assert!(!card.contains("card:traffic"), "{card}");
    }
}
