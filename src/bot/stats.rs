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

/// The embed of `/stats`: a field per panel.
pub fn stats_reply(answers: &[(String, Result<PanelStats, PanelError>)], now: i64) -> Reply {
    let mut embed =
        CreateEmbed::new().title("Panel stats").colour(0x5865F2).footer(CreateEmbedFooter::new("Live from the panels"));
    for (label, answer) in answers {
        let (name, value) = match answer {
            Ok(stats) => (heading(label, stats), counts(stats)),
            Err(err) => (escape_markdown(label), format!("⚠️ {}", escape_markdown(&err.to_string()))),
        };
        embed = embed.field(name, value, false);
    }
    if let Ok(at) = Timestamp::from_unix_timestamp(now) {
        embed = embed.timestamp(at);
    }
    Reply { embed: Some(embed), ..Reply::default() }
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
