//! The audit line: what a member did from Discord, as one plain line of message content (no
//! embed), stored in the outbox like an event and delivered by the normal delivery.

use serenity::model::channel::Embed;

use super::limits::{truncate, CONTENT};
use super::Part;

/// The action of an audit line's row in the outbox: not a name a panel can send (an action is
/// letters, digits, `_` and `-`), so no panel event is taken for one, digested with one, or
/// counted with one.
pub const AUDIT_ACTION: &str = ":audit";

/// The part of the audit line `line` (already escaped): content only, cut to Discord's 2,000
/// characters.
pub fn audit_part(line: &str) -> Part {
    Part { content: Some(truncate(line, CONTENT)), embed: Embed::default() }
}

impl Part {
    /// Whether the part has an embed to send: every rendered event has one; an audit line
    /// ([`audit_part`]) is content only.
    pub fn shows_embed(&self) -> bool {
        self.embed != Embed::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Draft;

    #[test]
    fn an_audit_line_is_content_only_and_survives_the_outbox() {
        let part = audit_part(&"x".repeat(3000));
        assert_eq!(part.content_chars(), CONTENT);
        let stored: Part = serde_json::from_str(&serde_json::to_string(&part).unwrap()).unwrap();
        assert!(!stored.shows_embed());
        let event = Draft { title: "t".into(), ..Draft::default() }.into_part();
        assert!(event.shows_embed());
    }
}
