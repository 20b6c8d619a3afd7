//! The audit of what members do from Discord. Every action (not a look-up) is logged, and posted
//! as one plain line to the channel of the panel's default destination:
//! `<@member> reset alice's usage · eu1`. The member is a mention, which Discord shows by name
//! and which pings nobody: the line is stored with no mentions, so the message's
//! `allowed_mentions` lists none.
//!
//! The line goes through the outbox as a row of its own action, [`AUDIT_ACTION`], so it has the
//! guarantees of every event: stored before it is sent, sent once Discord has it and never
//! again, kept while Discord is down. It is posted after the panel answered: the panel's own event
//! (`data_usage_reset`, …) follows as usual.

use std::sync::Arc;

use crate::deliver::Dispatch;
use crate::destination::{Destination, Mentions};
use crate::outbox::{now_ms, NewRow, Outbox};
use crate::render::audit::{audit_part, AUDIT_ACTION};
use crate::render::filters::escape_markdown;

/// Where audit lines are posted.
pub struct Audit {
    outbox: Outbox,
    destination: Arc<Destination>,
    /// Wakes the destination's delivery task; none when only storing (tests).
    dispatch: Option<Dispatch>,
}

/// The member who acted, as Discord's signed interaction names them.
#[derive(Debug, Clone)]
pub struct Actor {
    pub id: u64,
    pub name: String,
}

/// One action to audit: what was asked, on whom, on which panel, and whether the panel confirmed it.
pub struct Entry<'a> {
    /// What was done, the username as it is (`reset alice's usage`).
    pub done: &'a str,
    pub username: &'a str,
    pub panel: Option<&'a str>,
    /// Why the panel did not confirm it, if it did not (it may have acted all the same: a timeout).
    pub unconfirmed: Option<&'a str>,
}

impl Audit {
    pub fn new(outbox: Outbox, destination: Arc<Destination>, dispatch: Option<Dispatch>) -> Self {
        Self { outbox, destination, dispatch }
    }

    /// The destination the lines go to.
    pub fn destination(&self) -> &str {
        &self.destination.name
    }

    /// Stores the line of `entry` by `actor` and wakes the delivery. A line that cannot be stored
    /// (the outbox full) is logged; the log line of [`log_entry`] stays the record.
    pub async fn post(&self, actor: &Actor, entry: &Entry<'_>) {
        let row = NewRow {
            destination: self.destination.name.clone(),
            received_at_ms: now_ms(),
            action: AUDIT_ACTION.to_owned(),
            username: entry.username.to_owned(),
            panel: entry.panel.map(str::to_owned),
            part: serde_json::to_string(&audit_part(&line(actor, entry))).unwrap_or_default(),
            fingerprint: None,
            may_be_resend: false,
            mentions: Mentions::default(),
        };
        match self.outbox.enqueue(vec![row], None).await {
            Ok(_) => {
                if let Some(dispatch) = &self.dispatch {
                    dispatch.wake(&self.destination);
                }
            }
            Err(err) => log::error!("audit: the line for {} could not be stored: {err}", self.destination.name),
        }
    }
}

/// Logs `entry` by `actor`: `audit: "moderator" (<id>) reset alice's usage · eu1`.
pub fn log_entry(actor: &Actor, entry: &Entry<'_>) {
    let (name, id, done) = (&actor.name, actor.id, entry.done);
    let label = entry.panel.unwrap_or("panel");
    match entry.unconfirmed {
        None => log::info!("audit: {name:?} ({id}) {done} · {label}"),
        Some(why) => {
            log::warn!("audit: {name:?} ({id}) asked to: {done}; the panel did not confirm it: {why} · {label}")
        }
    }
}

/// The line posted for `entry`: the member's mention, what was done (the username escaped like in
/// every message), and the panel's label.
pub fn line(actor: &Actor, entry: &Entry<'_>) -> String {
    let done = escape_markdown(entry.done);
    let mut line = match entry.unconfirmed {
        None => format!("<@{}> {done}", actor.id),
        Some(_) => format!("<@{}> asked to: {done}; the panel did not confirm it", actor.id),
    };
    if let Some(panel) = entry.panel {
        line.push_str(" · ");
        line.push_str(&escape_markdown(panel));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_mentions_the_member_and_escapes_the_rest() {
        let actor = Actor { id: 1_500_000_000_000_000_001, name: "moderator".into() };
        let entry = Entry {
            done: "reset a_l*ce @everyone's usage",
            username: "a_l*ce",
            panel: Some("eu_1"),
            unconfirmed: None,
        };
        assert_eq!(line(&actor, &entry), r"<@1500000000000000001> reset a\_l\*ce \@everyone's usage · eu\_1");
        let failed = Entry { panel: None, unconfirmed: Some("timed out"), ..entry };
        assert!(line(&actor, &failed).ends_with("the panel did not confirm it"), "{}", line(&actor, &failed));
    }
}
