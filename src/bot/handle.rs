//! The one handler: an interaction in, an [`Answer`] out. Checks who acts before anything else,
//! then asks the panel; when the panel takes longer than [`Bot::defer_after`] the answer is a
//! deferral and the card follows as an edit of the response.

mod select;

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use serenity::builder::CreateInteractionResponse;
use serenity::model::application::{CommandInteraction, ComponentInteraction, Interaction};

use super::act::Acting;
use super::audit::Actor;
use super::card::{confirmation, parse_click, Drawing, Reply, Verb};
use super::drawn::is_drawn_on;
use super::guard::{Claim, Guard, Refusal};
use super::panels::{option, CardPanel, Chosen, DEFAULT_LABEL};
use super::{unix_now, Answer, Bot};
use crate::panel::{is_username, PanelError};
use crate::render::filters::escape_markdown;

/// A card older than this refuses a change until it is refreshed: the user may have changed.
pub const CARD_MAX_AGE_SECS: i64 = 15 * 60;

impl Answer {
    pub(super) fn now(response: CreateInteractionResponse) -> Self {
        Self { response, follow_up: None }
    }

    /// A new message only the clicker sees.
    pub(super) fn text(text: impl Into<String>) -> Self {
        Self::now(CreateInteractionResponse::Message(Reply::text(text).message()))
    }
}

impl Bot {
    /// Answers one interaction, whichever transport brought it (signature already checked),
    /// counting Discord's 3 s from now.
    pub async fn handle(&self, interaction: Interaction) -> Answer {
        self.handle_from(interaction, Instant::now()).await
    }

    /// Answers one interaction that `arrived` then: the deferral comes [`Bot::defer_after`] after
    /// the request's arrival, not after its body was read and checked.
    pub async fn handle_from(&self, interaction: Interaction, arrived: Instant) -> Answer {
        match interaction {
            Interaction::Ping(_) => Answer::now(CreateInteractionResponse::Pong),
            Interaction::Command(command) => self.command(command, arrived).await,
            Interaction::Component(choice) if Self::is_user_menu(&choice) => self.open_card(choice, arrived).await,
            Interaction::Component(component) => self.component(component, arrived).await,
            Interaction::Autocomplete(command) => self.autocomplete(command).await,
            _ => Answer::text("The relay does not handle this kind of interaction."),
        }
    }

    async fn command(&self, command: CommandInteraction, arrived: Instant) -> Answer {
        if !self.guard.is_actor(command.guild_id, command.member.as_deref()) {
            return refusal(Refusal::NotAnActor);
        }
        if let Err(refused) = self.guard.first_time(command.id.get(), Instant::now()) {
            return refusal(refused);
        }
        match command.data.name.as_str() {
            "user" => {}
            "stats" => return self.stats(command, arrived).await,
            "report" => return self.report(command).await,
            _ => return Answer::text("The relay knows /user, /stats and /report."),
        }
        let username = option(&command, "username");
        let Some(username) = username.map(str::trim).filter(|u| is_username(u)).map(str::to_owned) else {
            return Answer::text("That is not a username: letters, digits, `_`, `-`, `.` and `@`, at most 64.");
        };
        if let Err(refused) = self.guard.click(command.user.id.get(), Instant::now()) {
            return refusal(refused);
        }
        let panel = match self.choose(option(&command, "panel")) {
            Chosen::One(panel) => panel,
            Chosen::None => return no_panel(),
            Chosen::Unknown => return Answer::text("The relay asks no panel of that name."),
        };
        let (client, label) = (panel.client.clone(), panel.label.clone());
        let (drawing, labelled) = (self.drawing(), self.labeller());
        let work = async move {
            match client.user(&username).await {
                Ok(user) => Ok(labelled(drawing.card(&user, unix_now(), None), &label)),
                Err(err) => Err(Reply::text(describe(&err, &username))),
            }
        };
        self.respond(command.token, false, arrived, work).await
    }

    async fn component(&self, component: ComponentInteraction, arrived: Instant) -> Answer {
        if !self.guard.is_actor(component.guild_id, component.member.as_ref()) {
            return refusal(Refusal::NotAnActor);
        }
        if let Err(refused) = self.guard.first_time(component.id.get(), Instant::now()) {
            return refusal(refused);
        }
        // A custom_id is whatever the client sent: it must be a button of the message it was
        // clicked on, and an Extend or Add traffic only by the amounts the card offers.
        let custom_id = &component.data.custom_id;
        let click = parse_click(custom_id).filter(|click| match click.verb {
            Verb::Extend(days) => self.settings.extend_days.contains(&days),
            Verb::Traffic(gib) => self.settings.traffic_gib.contains(&gib),
            _ => true,
        });
        let click = click.filter(|_| is_drawn_on(&component.message, custom_id));
        let Some(click) = click else {
            return Answer::text("This button is not one of the relay's cards: run /user again.");
        };
        let action = click.verb.action();
        if !self.settings.actions.contains(&action) {
            return Answer::text(format!("You may not {} users from Discord (DISCORD_ACTIONS).", action.name()));
        }
        if let Err(refused) = self.guard.click(component.user.id.get(), Instant::now()) {
            return refusal(refused);
        }
        let panel = match self.panel_of_card(&component.message) {
            CardPanel::One(panel) => panel,
            CardPanel::None => return no_panel(),
            CardPanel::Gone(label) => return gone_panel(&label),
        };
        let mut claim = None;
        if click.verb != Verb::Refresh {
            // The card's age is the older of the custom_id's time (a confirmation keeps the card's)
            // and the message's last edit as Discord states it (a custom_id can be forged).
            let message = &component.message;
            let drawn = click.issued.min(message.edited_timestamp.unwrap_or(message.timestamp).unix_timestamp());
            let age = unix_now().saturating_sub(drawn);
            if !(-60..=CARD_MAX_AGE_SECS).contains(&age) {
                return Answer::text("This card is older than 15 minutes: press Refresh, check the user, then act.");
            }
            if click.verb.needs_confirmation() && !click.confirmed {
                return Answer::now(CreateInteractionResponse::UpdateMessage(confirmation(&click).update()));
            }
            // Per panel: a user of the same name on another panel is another user.
            let verb = format!("{:?}", click.verb);
            match Guard::once(&self.guard, &verb, &panel.label, &click.username, Instant::now()) {
                Ok(claimed) => claim = Some(claimed),
                Err(refused) => return refusal(refused),
            }
        }
        let (label, labelled) = (panel.label.clone(), self.labeller());
        let acting = Acting {
            panel: panel.client.clone(),
            drawing: self.drawing(),
            audit: self.audit.clone(),
            // A panel without a name (no PANEL_NAME) is not named in the audit line.
            label: Some(panel.label.clone()).filter(|label| label != DEFAULT_LABEL),
            actor: Actor { id: component.user.id.get(), name: component.user.name.clone() },
        };
        let username = click.username.clone();
        let work = async move {
            // Held until the panel answered: the same click meanwhile is refused, however slow it is.
            let _claim = claim.map(Claim::started);
            acting
                .run(click)
                .await
                .map(|reply| labelled(reply, &label))
                .map_err(|err| Reply::text(describe(&err, &username)))
        };
        self.respond(component.token, true, arrived, work).await
    }

    /// Runs `work` and answers with its reply when it is done within the deferral time from the
    /// interaction's arrival; otherwise defers (a new message: type 5; an update of the card:
    /// type 6) and edits the response once the work is done. A failed `work` is a new message when
    /// answered at once, and the response's text (the card stays) when it follows a deferral.
    pub(super) async fn respond(
        &self,
        token: String,
        update: bool,
        arrived: Instant,
        work: impl Future<Output = Result<Reply, Reply>> + Send + 'static,
    ) -> Answer {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            return Answer::text("The relay is busy with other requests to the panel; try again in a moment.");
        };
        let mut task = tokio::spawn(async move {
            let reply = work.await;
            drop(permit);
            reply
        });
        // Past the deadline (or a deadline beyond the clock's range): deferred at once.
        let deadline = arrived.checked_add(self.defer_after).unwrap_or(arrived);
        if let Ok(done) = tokio::time::timeout_at(deadline.into(), &mut task).await {
            return match done {
                Ok(Ok(card)) if update => Answer::now(CreateInteractionResponse::UpdateMessage(card.update())),
                Ok(Ok(card)) => Answer::now(CreateInteractionResponse::Message(card.message())),
                Ok(Err(error)) => Answer::now(CreateInteractionResponse::Message(error.message())),
                Err(_) => Answer::text("The relay failed to answer; nothing was changed."),
            };
        }
        let rest = Arc::clone(&self.rest);
        let follow_up = async move {
            let reply = match task.await {
                Ok(Ok(reply) | Err(reply)) => reply,
                Err(_) => Reply::text("The relay failed to answer."),
            };
            if let Err(err) = rest.edit_original(&token, &reply.edit()).await {
                log::warn!("bot: cannot edit the deferred response: {err}");
            }
        };
        let response = if update {
            CreateInteractionResponse::Acknowledge
        } else {
            CreateInteractionResponse::Defer(Reply::default().message())
        };
        Answer { response, follow_up: Some(Box::pin(follow_up)) }
    }

    fn drawing(&self) -> Drawing {
        Drawing {
            actions: self.settings.actions.clone(),
            extend_days: self.settings.extend_days.clone(),
            traffic_gib: self.settings.traffic_gib.clone(),
        }
    }
}

pub(super) fn refusal(refused: Refusal) -> Answer {
    Answer::text(match refused {
        Refusal::NotAnActor => "You may not act on panel users from here (DISCORD_ACTORS). Nothing was changed.",
        Refusal::TooFast => "Too many requests; wait a minute and try again. Nothing was changed.",
        Refusal::AlreadyDone => "That was done a moment ago; it is not done twice. Press Refresh to see the user.",
        Refusal::Replayed => "This interaction was already answered. Nothing was changed.",
    })
}

pub(super) fn no_panel() -> Answer {
    Answer::text("The relay has no panel API configured (PANEL_API_URL), so it cannot look users up.")
}

/// A card drawn from a panel the bot does not ask (any more): nothing is done on another panel.
fn gone_panel(label: &str) -> Answer {
    Answer::text(format!(
        "This card is from panel {}, whose API the relay's bot no longer asks; nothing was changed. Run /user again.",
        escape_markdown(label)
    ))
}

/// What the admin reads when the panel did not do it; never a secret (the error holds none).
pub(super) fn describe(err: &PanelError, username: &str) -> String {
    let name = escape_markdown(username);
    match err {
        // Only a user path's 404 means no such user (the login's means PANEL_API_URL is not the panel).
        PanelError::Status { status: 404, path }
            if path.starts_with("/api/user/") || path.starts_with("/api/users/{") =>
        {
            format!("The panel has no user named {name}.")
        }
        PanelError::Unreachable(why) => format!(
            "⚠️ The panel did not answer ({}). If you asked for a change, press Refresh to see whether it was made.",
            escape_markdown(why)
        ),
        PanelError::LoginRefused(_) => "⚠️ The panel refused the relay's login; nothing was changed.".to_owned(),
        other => format!("⚠️ {}", escape_markdown(&other.to_string())),
    }
}
