//! The "Act on a user…" menu under the relay's own messages (see `deliver::user_menus`): the user
//! chosen gets their live card, the one `/user` gives with its buttons, seen by the chooser only,
//! after the same checks of who acts and how often.

use std::time::Instant;

use serenity::model::application::{ComponentInteraction, ComponentInteractionDataKind};

use super::{describe, no_panel, refusal, unix_now};
use crate::bot::card::Reply;
use crate::bot::guard::Refusal;
use crate::bot::panels::DEFAULT_LABEL;
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
    pub(super) async fn open_card(&self, component: ComponentInteraction, arrived: Instant) -> Answer {
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
        if let Err(refused) = self.guard.click(component.user.id.get(), Instant::now()) {
            return refusal(refused);
        }
        // The message's panel (its key): a user of the same name on another panel may be someone
        // else, and the card's buttons would act on them. A message without a panel name is the
        // panel without one (PANEL_API_URL without PANEL_NAME); any other is refused.
        let found = self.panels.iter().find(|known| match panel {
            "" => known.label == DEFAULT_LABEL,
            key => menu_panel_key(&known.label) == key,
        });
        let panel = match found {
            Some(panel) => panel,
            None if self.panels.is_empty() => return no_panel(),
            None if panel.is_empty() => {
                return Answer::text(
                    "This message is about a panel without a name, and the relay's bot asks only named panels: \
                     look the user up with /user.",
                )
            }
            None => {
                return Answer::text(format!(
                    "This message is about panel {}, whose API the relay's bot does not ask (if it is the panel \
                     of PANEL_API_URL, set PANEL_NAME to its name): look the user up there.",
                    escape_markdown(panel)
                ))
            }
        };
        let (client, label, labelled) = (panel.client.clone(), panel.label.clone(), self.labeller());
        let (username, drawing) = (username.to_owned(), self.drawing());
        let work = async move {
            match client.user(&username).await {
                Ok(user) => Ok(labelled(drawing.card(&user, unix_now(), None), &label)),
                Err(err) => Err(Reply::text(describe(&err, &username))),
            }
        };
        self.respond(component.token, false, arrived, work).await
    }
}
