//! `/user`'s `username` choices as the admin types (`panel::PanelClient::search_users`).
//!
//! An autocomplete cannot be deferred: it is answered within [`AUTOCOMPLETE_WITHIN`] (or the
//! bot's deferral time, when shorter) with the panel's matches, or with no choice at all when the
//! panel is slower, down, or refuses. Only actors get choices (anyone else gets none, and the
//! panel is not asked), and each keystroke Discord sends counts against the member's own rate of
//! keystrokes (`guard::KEYSTROKES_PER_WINDOW`), apart from the rate of commands and clicks: typing a
//! long username does not leave the member refused the command they are typing.

use std::time::{Duration, Instant};

use serenity::builder::{CreateAutocompleteResponse, CreateInteractionResponse};
use serenity::model::application::CommandInteraction;

use super::panels::{option, Chosen};
use super::{Answer, Bot};

/// The most an autocomplete waits for the panel: Discord drops an answer after 3 s.
pub const AUTOCOMPLETE_WITHIN: Duration = Duration::from_millis(2000);

impl Bot {
    pub(super) async fn autocomplete(&self, command: CommandInteraction) -> Answer {
        let names = self.matching_usernames(&command).await.unwrap_or_default();
        let mut choices = CreateAutocompleteResponse::new();
        for name in names {
            choices = choices.add_string_choice(name.clone(), name);
        }
        Answer::now(CreateInteractionResponse::Autocomplete(choices))
    }

    /// The usernames to offer; `None` when none may be (not an actor, too fast, not `/user`, no
    /// panel, busy, or the panel did not answer in time).
    async fn matching_usernames(&self, command: &CommandInteraction) -> Option<Vec<String>> {
        let now = Instant::now();
        if !self.guard.is_actor(command.guild_id, command.member.as_deref()) || command.data.name != "user" {
            return None;
        }
        self.guard.first_time(command.id.get(), now).ok()?;
        self.guard.keystroke(command.user.id.get(), now).ok()?;
        let Chosen::One(panel) = self.choose(option(command, "panel")) else {
            return None;
        };
        let typed = option(command, "username").unwrap_or_default().to_owned();
        let permit = self.in_flight.clone().try_acquire_owned().ok()?;
        let client = panel.client.clone();
        let search = tokio::spawn(async move {
            let found = client.search_users(&typed).await;
            drop(permit);
            found
        });
        match tokio::time::timeout(self.defer_after.min(AUTOCOMPLETE_WITHIN), search).await {
            Ok(Ok(Ok(names))) => Some(names),
            Ok(Ok(Err(err))) => {
                log::debug!("bot: no usernames to offer: {err}");
                None
            }
            _ => None,
        }
    }
}
