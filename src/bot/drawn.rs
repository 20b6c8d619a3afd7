//! A click counts only if it names a button the relay drew on the message it was made on.
//!
//! A `custom_id` is whatever the member's client sends: with the rights to act, a member could
//! craft one that skips the confirmation (`card:delete!:…` from the card itself) or names another
//! user. The message is not theirs to change: Discord sends the message the button is on, as the
//! relay last drew it, inside the signed interaction. So the click must be one of that message's
//! buttons: a confirmed click (`!`) is only ever drawn on the confirmation question, and a card's
//! buttons name only its own user.

use serenity::model::application::{ActionRowComponent, ButtonKind};
use serenity::model::channel::Message;

/// Whether `custom_id` is the id of one of `message`'s buttons.
pub fn is_drawn_on(message: &Message, custom_id: &str) -> bool {
    message.components.iter().flat_map(|row| &row.components).any(|component| match component {
        ActionRowComponent::Button(button) => {
            matches!(&button.data, ButtonKind::NonLink { custom_id: id, .. } if id == custom_id)
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn message(ids: &[&str]) -> Message {
        let buttons: Vec<_> =
            ids.iter().map(|id| json!({"type": 2, "custom_id": id, "label": "x", "style": 1})).collect();
        serde_json::from_value(json!({
            "id": "1300000000000000005", "channel_id": "1100000000000000002", "content": "", "tts": false,
            "author": {"id": "1234567890123456789", "username": "Relay", "discriminator": "0000", "avatar": null},
            "timestamp": "2026-12-07T14:00:00.000000+00:00", "edited_timestamp": null, "mention_everyone": false,
            "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 20,
            "components": [{"type": 1, "components": buttons},
                {"type": 1, "components": [{"type": 2, "url": "https://example.com", "label": "l", "style": 5}]}]
        }))
        .unwrap()
    }

    #[test]
    fn only_a_button_of_the_message_counts() {
        let card = message(&["card:refresh:1:alice", "card:delete:1:alice"]);
        assert!(is_drawn_on(&card, "card:delete:1:alice"));
        assert!(!is_drawn_on(&card, "card:delete!:1:alice"), "the confirmation is not on the card");
        assert!(!is_drawn_on(&card, "card:delete:1:bob"), "another user");
        assert!(!is_drawn_on(&card, "https://example.com"), "a link button has no custom_id");
        assert!(!is_drawn_on(&message(&[]), "card:refresh:1:alice"));
    }
}
