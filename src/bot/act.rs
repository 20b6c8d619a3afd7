//! Carrying out a click on a card's button once it is allowed: the panel call for its verb, the
//! card drawn again with the user's new state (or the user gone), and the audit of what was done
//! ([`super::audit`]): a look-up is not audited, a change is, and so is an attempt the panel did
//! not confirm (it may have acted before it failed to answer).

use std::sync::Arc;

use super::audit::{log_entry, Actor, Audit, Entry};
use super::card::{bytes, deleted_card, Click, Drawing, Reply, Verb};
use super::unix_now;
use crate::panel::{PanelClient, PanelError, PanelUser, TrafficAdded, TRAFFIC_LIMIT_MAX};
use crate::render::filters::escape_markdown;

/// What carrying out one click needs, taken from the bot as it is answered.
pub struct Acting {
    pub panel: Arc<PanelClient>,
    pub drawing: Drawing,
    /// Where audit lines are posted; none: they are only logged.
    pub audit: Option<Arc<Audit>>,
    /// The panel's label (`PANEL_NAME`), if any.
    pub label: Option<String>,
    pub actor: Actor,
}

/// What the panel did.
enum Acted {
    /// The user as they now are (after a Refresh: as they are).
    Changed(PanelUser),
    /// The user left as they were, and why (shown above the card).
    Unchanged(PanelUser, String),
    Deleted,
}

impl Acting {
    /// Carries out `click`: the card to show, or why the panel did not do it.
    pub async fn run(self, click: Click) -> Result<Reply, PanelError> {
        let Click { verb, username, .. } = click;
        let acted = match act(&self.panel, verb, &username).await {
            Ok(acted) => acted,
            Err(err) => {
                if verb != Verb::Refresh {
                    self.audit(verb, &username, Some(&err.to_string())).await;
                }
                return Err(err);
            }
        };
        let now = unix_now();
        Ok(match acted {
            Acted::Changed(user) if verb == Verb::Refresh => self.drawing.card(&user, now, None),
            Acted::Unchanged(user, why) => self.drawing.card(&user, now, Some(why)),
            Acted::Changed(user) => {
                let notice = self.audit(verb, &username, None).await;
                self.drawing.card(&user, now, Some(notice))
            }
            Acted::Deleted => deleted_card(&username, self.audit(verb, &username, None).await),
        })
    }

    /// Logs `verb` on `username` and posts its line; returns the card's notice of it.
    async fn audit(&self, verb: Verb, username: &str, unconfirmed: Option<&str>) -> String {
        let done = verb.done(username);
        let entry = Entry { done: &done, username, panel: self.label.as_deref(), unconfirmed };
        log_entry(&self.actor, &entry);
        if let Some(audit) = &self.audit {
            audit.post(&self.actor, &entry).await;
        }
        let label = escape_markdown(self.label.as_deref().unwrap_or("panel"));
        format!("✅ {} {} · {label}", escape_markdown(&self.actor.name), escape_markdown(&done))
    }
}

/// Asks the panel to do `verb` to `username`.
async fn act(panel: &PanelClient, verb: Verb, username: &str) -> Result<Acted, PanelError> {
    let name = escape_markdown(username);
    Ok(match verb {
        Verb::Refresh => Acted::Changed(panel.user(username).await?),
        Verb::Reset => Acted::Changed(panel.reset_usage(username).await?),
        Verb::Enable => Acted::Changed(panel.set_enabled(username, true).await?),
        Verb::Disable => Acted::Changed(panel.set_enabled(username, false).await?),
        Verb::Revoke => Acted::Changed(panel.revoke_subscription(username).await?),
        // `extend` leaves a user who never expires as they are: neither done nor audited.
        Verb::Extend(days) => match panel.extend(username, days).await? {
            user if user.expire.is_none() => {
                Acted::Unchanged(user, format!("{name} never expires: nothing was changed."))
            }
            user => Acted::Changed(user),
        },
        Verb::Traffic(gib) => match panel.add_traffic(username, gib).await? {
            TrafficAdded::Raised(user) => Acted::Changed(user),
            TrafficAdded::Unlimited(user) => {
                Acted::Unchanged(user, format!("{name} has no data limit: nothing was changed."))
            }
            TrafficAdded::AtMost(user) => {
                let most = bytes(TRAFFIC_LIMIT_MAX);
                Acted::Unchanged(user, format!("{name}'s data limit is {most} or more: nothing was changed."))
            }
        },
        Verb::Delete => {
            panel.delete_user(username).await?;
            Acted::Deleted
        }
    })
}
