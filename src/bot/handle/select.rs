//! The "Act on a user…" menu under the relay's own messages (see `deliver::user_menus`): the user
//! chosen gets their live card, the one `/user` gives with its buttons, seen by the chooser only,
//! after the same checks of who acts and how often.

use std::time::Instant;

use serenity::model::application::{ComponentInteraction, ComponentInteractionDataKind};

use super::{describe, no_panel, refusal, unix_now};
use crate::bot::card::{user_card, Reply};
use crate::bot::guard::Refusal;
use crate::bot::{Answer, Bot};
use crate::deliver::{menu_panel_key, MENU_PREFIX};
use crate::panel::is_username;
use crate::render::filters::escape_markdown;

impl Bot {
    /// Whether `component` is a choice in one of the relay's user menus (`custom_id` `act:…`).
    pub(super) fn is_user_menu(component: &ComponentInteraction) -> bool {
        component.data.custom_id.starts_with(MENU_PREFIX)
    }

    /// Answers a choice in the user menu with the chosen user's card, as a new message only the
    /// chooser sees (the relay's message and its menu stay as they are).
    pub(super) async fn open_card(&self, component: ComponentInteraction) -> Answer {
        if !self.guard.is_actor(component.guild_id, component.member.as_ref()) {
            return refusal(Refusal::NotAnActor);
        }
        if let Err(refused) = self.guard.first_time(component.id.get(), Instant::now()) {
            return refusal(refused);
        }
        let ComponentInteractionDataKind::StringSelect { values } = &component.data.kind else {
            return Answer::text("This menu is not one of the relay's.");
        };
        let Some(username) = values.first().map(|value| value.trim()).filter(|value| is_username(value)) else {
            return Answer::text("That is not a username: letters, digits, `_`, `-`, `.` and `@`, at most 64.");
        };
        // `act:<panel>`, or `act:<panel>:<n>` for a digest's further menus (a panel's key has no `:`).
        let menu = component.data.custom_id.get(MENU_PREFIX.len()..).unwrap_or_default();
        let panel = menu.split(':').next().unwrap_or_default();
        if let Some(refused) = self.other_panel(panel) {
            return refused;
        }
        if let Err(refused) = self.guard.click(component.user.id.get(), Instant::now()) {
            return refusal(refused);
        }
        let Some(client) = self.panel.clone() else {
            return no_panel();
        };
        let (username, drawing) = (username.to_owned(), self.drawing());
        let work = async move {
            match client.user(&username).await {
                Ok(user) => Ok(user_card(&user, unix_now(), &drawing.actions, &drawing.extend_days, None)),
                Err(err) => Err(Reply::text(describe(&err, &username))),
            }
        };
        self.respond(component.token, false, work).await
    }

    /// A refusal when the message's panel (`act:<panel>`, its key) is not the one the bot asks
    /// (`PANEL_NAME`; empty for none): a user of the same name there may be someone else, and the
    /// card's buttons would act on them.
    fn other_panel(&self, panel: &str) -> Option<Answer> {
        let ours = self.panel_label.as_deref().map(menu_panel_key).unwrap_or_default();
        (panel != ours).then(|| {
            Answer::text(match (panel.is_empty(), ours.is_empty()) {
                (false, true) => format!(
                    "This message is about panel {}, and the relay's bot asks a panel without a name: if that is \
                     the one, set PANEL_NAME={} for the bot.",
                    escape_markdown(panel),
                    escape_markdown(panel)
                ),
                (true, _) => format!(
                    "This message is about a panel without a name, and the relay's bot asks panel {} (PANEL_NAME): \
                     look the user up there.",
                    escape_markdown(&ours)
                ),
                (false, false) => format!(
                    "This message is about panel {}, and the relay's bot asks panel {}: look the user up there.",
                    escape_markdown(panel),
                    escape_markdown(&ours)
                ),
            })
        })
    }
}
