//! The panels the bot asks: a list of (label, client), the default panel (`PANEL_API_URL`) first.
//!
//! With one panel nothing changes: the commands have no `panel` option and the card says "Live
//! from the panel". With several, `/user` and `/stats` get a `panel` option whose choices are the
//! labels (`/user` without it asks the default panel, `/stats` without it shows every panel), and
//! the card's footer names its panel: "Live from eu1". A button on a card acts on the panel its
//! footer names: the message a click comes with is Discord's copy of what the relay drew, which a
//! client cannot change (unlike a `custom_id`).

use std::sync::Arc;

use serenity::builder::CreateEmbedFooter;
use serenity::model::application::CommandInteraction;
use serenity::model::channel::Message;

use super::card::{Reply, ONE_PANEL_FOOTER};
use super::Bot;
use crate::panel::PanelClient;

/// The most panels the bot asks: Discord offers at most 25 choices for an option.
pub const MAX_PANELS: usize = 25;

/// A choice's name and value are at most 100 characters.
pub const LABEL_MAX_CHARS: usize = 100;

/// The label of the default panel when `PANEL_NAME` is not set.
pub const DEFAULT_LABEL: &str = "panel";

const FOOTER_PREFIX: &str = "Live from ";

/// The panel a card's button acts on.
pub(super) enum CardPanel<'a> {
    One(&'a BotPanel),
    /// No panel API is configured.
    None,
    /// The card's footer names a panel the bot does not ask (any more): its user of that name may
    /// be someone else than the default panel's, so nothing is done. The label, as the footer has it.
    Gone(String),
}

/// One panel the bot may ask.
pub struct BotPanel {
    pub label: String,
    pub client: Arc<PanelClient>,
}

/// Which panel a command names.
pub(super) enum Chosen<'a> {
    One(&'a BotPanel),
    /// No panel API is configured.
    None,
    /// A `panel` option naming no panel the relay knows.
    Unknown,
}

/// `label` as a choice: without control characters, cut, never empty.
pub fn clean_label(label: &str) -> String {
    let label: String = label.chars().filter(|c| !c.is_control()).take(LABEL_MAX_CHARS).collect();
    if label.trim().is_empty() {
        DEFAULT_LABEL.to_owned()
    } else {
        label
    }
}

/// The list of panels from `given` (the default first): an unnamed panel is the default's
/// [`DEFAULT_LABEL`] when it comes first and left out after; a label is there once; at most
/// [`MAX_PANELS`]. What is left out is logged.
pub(super) fn panel_list(given: Vec<(Option<String>, Arc<PanelClient>)>) -> Vec<BotPanel> {
    let asked = given.len();
    let mut panels: Vec<BotPanel> = Vec::new();
    for (at, (label, client)) in given.into_iter().enumerate() {
        let Some(label) = label.or_else(|| (at == 0).then(|| DEFAULT_LABEL.to_owned())) else {
            continue;
        };
        let label = clean_label(&label);
        if panels.len() < MAX_PANELS && !panels.iter().any(|panel| panel.label == label) {
            panels.push(BotPanel { label, client });
        }
    }
    if panels.len() < asked {
        log::warn!("bot: {} panels left out (a label twice, or more than {MAX_PANELS})", asked - panels.len());
    }
    panels
}

impl Bot {
    /// The panels' labels, the default first: the `panel` option's choices.
    pub fn panel_labels(&self) -> Vec<String> {
        self.panels.iter().map(|panel| panel.label.clone()).collect()
    }

    /// The panel named `label`, or the default one for `None`.
    pub(super) fn choose(&self, label: Option<&str>) -> Chosen<'_> {
        match label {
            _ if self.panels.is_empty() => Chosen::None,
            None => Chosen::One(&self.panels[0]),
            Some(label) => self.panels.iter().find(|p| p.label == label).map_or(Chosen::Unknown, Chosen::One),
        }
    }

    /// The panel a card on `message` was drawn from: the one its footer names; the default one
    /// for a card that names none (or was drawn when the relay asked one panel); none for a card
    /// naming a panel the bot does not ask.
    pub(super) fn panel_of_card(&self, message: &Message) -> CardPanel<'_> {
        let Some(default) = self.panels.first() else {
            return CardPanel::None;
        };
        let footer = message.embeds.first().and_then(|embed| embed.footer.as_ref()).map(|f| f.text.as_str());
        let Some(named) = footer.and_then(|text| text.strip_prefix(FOOTER_PREFIX)) else {
            return CardPanel::One(default);
        };
        match self.panels.iter().find(|p| p.label == named) {
            Some(panel) => CardPanel::One(panel),
            None if footer == Some(ONE_PANEL_FOOTER) => CardPanel::One(default),
            None => CardPanel::Gone(named.chars().take(LABEL_MAX_CHARS).collect()),
        }
    }

    /// What names the panel in a card's footer when there are several panels (with one, the
    /// card stays as drawn).
    pub(super) fn labeller(&self) -> impl Fn(Reply, &str) -> Reply + Send + Sync + 'static {
        let several = self.panels.len() > 1;
        move |reply, panel| {
            if !several {
                return reply;
            }
            let footer = CreateEmbedFooter::new(format!("{FOOTER_PREFIX}{panel}"));
            Reply { embed: reply.embed.map(|embed| embed.footer(footer)), ..reply }
        }
    }
}

/// The string value of the option `name` of `command`, if given.
pub(super) fn option<'a>(command: &'a CommandInteraction, name: &str) -> Option<&'a str> {
    command.data.options.iter().find(|o| o.name == name).and_then(|o| o.value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::{Credentials, PanelApiSettings, DEFAULT_TIMEOUT};

    fn client() -> Arc<PanelClient> {
        let settings = PanelApiSettings {
            url: url::Url::parse("http://127.0.0.1:9").unwrap(),
            credentials: Credentials::ApiKey(crate::panel::Redacted::new("k")),
            family: None,
            insecure_tls: false,
            timeout: DEFAULT_TIMEOUT,
            label: None,
        };
        Arc::new(PanelClient::new(&settings).unwrap())
    }

    #[test]
    fn the_default_panel_comes_first_and_a_label_is_there_once() {
        let named = |label: &str| (Some(label.to_owned()), client());
        let panels = panel_list(vec![(None, client()), named("eu1"), named("eu1"), named("\u{7}de")]);
        let labels: Vec<&str> = panels.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["panel", "eu1", "de"]);
        let many = (0..40).map(|i| (Some(format!("p{i}")), client())).collect();
        assert_eq!(panel_list(many).len(), MAX_PANELS);
        assert_eq!(clean_label(&"x".repeat(300)).len(), LABEL_MAX_CHARS);
    }
}
