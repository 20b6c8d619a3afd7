//! `/stats [panel]`: per panel, its users by status, online now, traffic and version, as the
//! panel counts them (`panel::PanelClient::stats`). Without the option (or with one panel), every
//! panel the bot asks, asked at once; a panel that fails says so in its own field and the others
//! are still shown. Ephemeral, and deferred like `/user` when a panel is slow.

use std::sync::Arc;
use std::time::Instant;

use serenity::builder::{CreateEmbed, CreateEmbedFooter};
use serenity::model::application::CommandInteraction;
use serenity::model::Timestamp;

use super::card::{bytes, Reply};
use super::handle::{no_panel, refusal};
use super::panels::{option, Chosen};
use super::{Answer, Bot};
use crate::panel::{Family, PanelClient, PanelError, PanelStats};
use crate::render::filters::escape_markdown;

impl Bot {
    pub(super) async fn stats(&self, command: CommandInteraction, arrived: Instant) -> Answer {
        if let Err(refused) = self.guard.click(command.user.id.get(), Instant::now()) {
            return refusal(refused);
        }
        let asked: Vec<(String, Arc<PanelClient>)> = match option(&command, "panel") {
            None => self.panels.iter().map(|p| (p.label.clone(), p.client.clone())).collect(),
            Some(label) => match self.choose(Some(label)) {
                Chosen::One(panel) => vec![(panel.label.clone(), panel.client.clone())],
                Chosen::None => Vec::new(),
                Chosen::Unknown => return Answer::text("The relay asks no panel of that name."),
            },
        };
        if asked.is_empty() {
            return no_panel();
        }
        let work = async move {
            let calls: Vec<_> = asked
                .into_iter()
                .map(|(label, client)| (label, tokio::spawn(async move { client.stats().await })))
                .collect();
            let mut answers = Vec::with_capacity(calls.len());
            for (label, call) in calls {
                let answer = call.await.unwrap_or_else(|_| Err(PanelError::Unreachable("the call failed".to_owned())));
                answers.push((label, answer));
            }
            Ok(stats_reply(&answers, super::unix_now()))
        };
        self.respond(command.token, false, arrived, work).await
    }
}

/// What Discord lets an embed hold in all, and a field's name.
const EMBED_CHARS: usize = 6000;
const FIELD_NAME_CHARS: usize = 256;
const FIELD_VALUE_CHARS: usize = 1024;

/// The embed of `/stats`: a field per panel, as many as Discord lets one embed hold (the rest are
/// counted in its description: `/stats panel:…` shows any one of them).
pub fn stats_reply(answers: &[(String, Result<PanelStats, PanelError>)], now: i64) -> Reply {
    const TITLE: &str = "Panel stats";
    const FOOTER: &str = "Live from the panels";
    let mut embed = CreateEmbed::new().title(TITLE).colour(0x5865F2).footer(CreateEmbedFooter::new(FOOTER));
    // Room kept for the description saying how many are left out.
    let mut room = EMBED_CHARS - TITLE.len() - FOOTER.len() - 120;
    let mut shown = 0;
    for (label, answer) in answers {
        let (name, value) = match answer {
            Ok(stats) => (heading(label, stats), counts(stats)),
            Err(err) => (escape_markdown(label), format!("⚠️ {}", escape_markdown(&err.to_string()))),
        };
        let (name, value) = (cut(name, FIELD_NAME_CHARS), cut(value, FIELD_VALUE_CHARS));
        let size = name.chars().count() + value.chars().count();
        if size > room {
            break;
        }
        room -= size;
        shown += 1;
        embed = embed.field(name, value, false);
    }
    if shown < answers.len() {
        let left = answers.len() - shown;
        embed = embed.description(format!(
            "{left} more panels are left out: a message holds only so much. Choose one with the `panel` option."
        ));
    }
    if let Ok(at) = Timestamp::from_unix_timestamp(now) {
        embed = embed.timestamp(at);
    }
    Reply { embed: Some(embed), ..Reply::default() }
}

/// `text` cut to `max` characters, its end marked (a half escape left before it only escapes the
/// `…`).
fn cut(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// "eu1 · Marzban 0.8.4".
fn heading(label: &str, stats: &PanelStats) -> String {
    let family = match stats.family {
        Some(Family::Marzban) => "Marzban",
        Some(Family::PasarGuard) => "PasarGuard",
        Some(Family::Marzneshin) => "Marzneshin",
        None => "",
    };
    let software = [family, stats.version.as_deref().unwrap_or("")].join(" ");
    let software = software.trim();
    if software.is_empty() {
        escape_markdown(label)
    } else {
        format!("{} · {}", escape_markdown(label), escape_markdown(software))
    }
}

/// The counts, "–" where the panel reports none.
fn counts(stats: &PanelStats) -> String {
    let n = |count: Option<u64>| count.map_or_else(|| "–".to_owned(), |n| format!("**{n}**"));
    format!(
        "Active {} · Limited {} · Expired {} · Disabled {} · On hold {}\nUsers {} · Online now {} · Traffic {}",
        n(stats.active),
        n(stats.limited),
        n(stats.expired),
        n(stats.disabled),
        n(stats.on_hold),
        n(stats.total),
        n(stats.online),
        stats.traffic.map_or_else(|| "–".to_owned(), |b| format!("**{}**", bytes(b))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::panels::MAX_PANELS;
    use crate::panel::MAX_COUNT;

    /// What Discord counts of an embed against its 6,000 characters, and its longest field name.
    fn sizes(reply: &Reply) -> (usize, usize) {
        let embed = serde_json::to_value(reply.message()).unwrap()["embeds"][0].clone();
        let chars = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.chars().count());
        let fields = embed["fields"].as_array().cloned().unwrap_or_default();
        let names = fields.iter().map(|f| chars(&f["name"]));
        let total = chars(&embed["title"])
            + chars(&embed["description"])
            + chars(&embed["footer"]["text"])
            + fields.iter().map(|f| chars(&f["name"]) + chars(&f["value"])).sum::<usize>();
        (total, names.max().unwrap_or(0))
    }

    #[test]
    fn twenty_five_panels_with_long_labels_stay_within_discords_embed_limits() {
        let stats = PanelStats {
            family: Some(Family::PasarGuard),
            version: Some("_".repeat(32)),
            total: Some(MAX_COUNT),
            active: Some(MAX_COUNT),
            limited: Some(MAX_COUNT),
            expired: Some(MAX_COUNT),
            disabled: Some(MAX_COUNT),
            on_hold: Some(MAX_COUNT),
            online: Some(MAX_COUNT),
            traffic: Some(crate::panel::MAX_BYTES),
        };
        let answers: Vec<_> =
            (0..MAX_PANELS).map(|i| (format!("{i:02}{}", "_".repeat(98)), Ok(stats.clone()))).collect();
        let reply = stats_reply(&answers, 0);
        let (total, longest_name) = sizes(&reply);
        assert!(total <= EMBED_CHARS, "{total} characters: Discord refuses the whole message");
        assert!(longest_name <= FIELD_NAME_CHARS, "a field name of {longest_name} characters");
        let shown = serde_json::to_string(&reply.message()).unwrap();
        assert!(shown.contains("more panels are left out"), "{shown}");
    }

    #[test]
    fn a_field_per_panel_with_its_counts_or_what_went_wrong() {
        let stats = PanelStats {
            family: Some(Family::Marzban),
            version: Some("0.8.4".into()),
            active: Some(7),
            traffic: Some(1 << 30),
            ..PanelStats::default()
        };
        let answers =
            vec![("eu_1".to_owned(), Ok(stats)), ("de".to_owned(), Err(PanelError::Unreachable("timed out".into())))];
        let shown = serde_json::to_string(&stats_reply(&answers, 0).message()).unwrap();
        for expected in [r"eu\\_1 · Marzban 0.8.4", "Active **7**", "Disabled –", "1.00 GiB", "timed out"] {
            assert!(shown.contains(expected), "{expected} in {shown}");
        }
    }
}
