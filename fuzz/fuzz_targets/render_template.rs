//! Any template an admin could write (TOML or JSON, for any action, in any language), rendered
//! against the sample events: loading and rendering never panic, and whatever comes out (the
//! admin's template, the built-in fallback or the minimal embed) fits Discord's limits.

#![no_main]

use libfuzzer_sys::fuzz_target;
use marzban_discord_relay::render::template::Format;
use marzban_discord_relay::render::{limits, samples, Lang, Renderer, Source};
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let lang = Lang::ALL[usize::from(selector & 3)];
    let format = if selector & 4 == 0 { Format::Toml } else { Format::Json };
    let actions = samples::actions();
    let action = &actions[usize::from(selector >> 3) % actions.len()];
    let source = Source { name: action.clone(), origin: "fuzz".into(), format, text: text.to_owned() };
    let renderer = Renderer::from_sources(lang, vec![source]).renderer;
    let event = samples::event_for(action, OffsetDateTime::UNIX_EPOCH).expect("a sample for every action");
    for event in [samples::stressed(&event), event] {
        let part = renderer.render(&event);
        let violations = limits::violations(part.content.as_deref(), &part.embed);
        assert!(violations.is_empty(), "{violations:?}");
    }
});
