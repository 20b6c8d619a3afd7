//! Any request body: parsing and normalising never panics, a parsed event never carries a secret
//! field, and its rendered embed always fits Discord's limits.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use marzban_discord_relay::event::{parse_batch, SECRET_KEYS};
use marzban_discord_relay::render::{limits, Lang, Renderer};
use time::OffsetDateTime;

fn renderer() -> &'static Renderer {
    static RENDERER: OnceLock<Renderer> = OnceLock::new();
    RENDERER.get_or_init(|| Renderer::builtin(Lang::Fa))
}

fuzz_target!(|body: &[u8]| {
    let Ok(batch) = parse_batch(body, OffsetDateTime::UNIX_EPOCH, Some("p")) else {
        return;
    };
    for event in &batch.events {
        let context = serde_json::to_value(event).expect("an event always serialises");
        assert_no_secret(&context);
        let part = renderer().render(event);
        let violations = limits::violations(part.content.as_deref(), &part.embed);
        assert!(violations.is_empty(), "{violations:?}");
    }
});

fn assert_no_secret(value: &serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                assert!(!SECRET_KEYS.contains(&key.as_str()), "secret key {key} in the template context");
                assert_no_secret(value);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(assert_no_secret),
        _ => {}
    }
}
