//! `/report`: the report of the period that is running, so far: the same report the scheduled
//! reports build (`reports::Report::read` over the outbox's tally, rendered with the report
//! template in use), from the end of the last scheduled period to now, for the first report
//! `REPORTS` schedules. Ephemeral; nothing is stored or sent to the channel. Without `REPORTS`, it
//! says how to turn reports on. The tally counts by quarter-hour, so the period starts on one (as
//! `REPORTS` times do) and the quarter-hour running now counts whole.
//!
//! The tally is the relay's own SQLite, not the panel: it is read within the deferral time or the
//! command says the outbox is busy.

use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use serenity::builder::{
    CreateAllowedMentions, CreateEmbed, CreateInteractionResponse, CreateInteractionResponseMessage,
};
use serenity::model::application::CommandInteraction;

use super::handle::refusal;
use super::{Answer, Bot};
use crate::outbox::{Outbox, SLOT_SECONDS};
use crate::render::Templates;
use crate::reports::{Period, Report, ReportSettings, Schedule};

/// A message holds at most 10 embeds.
const MAX_EMBEDS: usize = 10;

/// The characters all embeds of a message may hold together.
const MESSAGE_EMBED_CHARS: usize = 6000;

/// What `/report` reads: the outbox's tally, the templates, the schedule.
#[derive(Clone)]
pub struct ReportSource {
    outbox: Outbox,
    templates: Arc<Templates>,
    settings: ReportSettings,
}

impl ReportSource {
    pub fn new(outbox: Outbox, templates: Arc<Templates>, settings: ReportSettings) -> Self {
        Self { outbox, templates, settings }
    }
}

/// The period of `schedule` running at `now`, up to `now`: from the end of the last period (one
/// period back when none is found).
pub fn running_period(schedule: &Schedule, settings: &ReportSettings, now: Timestamp) -> Period {
    let start = schedule.last_period(now, &settings.time_zone).map(|period| period.end).unwrap_or_else(|| {
        let back = SignedDuration::from_hours(schedule.kind.days().saturating_mul(24));
        now.checked_sub(back).unwrap_or(now)
    });
    Period { start, end: now }
}

impl Bot {
    /// The bot answering `/report` from `source`.
    pub fn with_reports(mut self, source: ReportSource) -> Self {
        self.reports = Some(source);
        self
    }

    pub(super) async fn report(&self, command: CommandInteraction) -> Answer {
        if let Err(refused) = self.guard.click(command.user.id.get(), Instant::now()) {
            return refusal(refused);
        }
        let source = self.reports.as_ref();
        let Some((source, schedule)) = source.and_then(|s| Some((s, *s.settings.schedules.first()?))) else {
            return Answer::text(
                "Reports are off. Set REPORTS (for example `daily@09:00,weekly@mon 09:00`) and REPORTS_TZ, then \
                 restart the relay; see docs/REPORTS.md.",
            );
        };
        let now = source.settings.clock.now();
        let period = running_period(&schedule, &source.settings, now);
        let kind = schedule.kind.name();
        // The tally counts by quarter-hour: the one running now is read whole, then the report
        // says it runs to now.
        let slot_end = now.as_second().div_euclid(SLOT_SECONDS).saturating_add(1).saturating_mul(SLOT_SECONDS);
        let tallied = Period { end: Timestamp::from_second(slot_end).unwrap_or(now), ..period };
        let read = tokio::time::timeout(self.defer_after, Report::read(&source.outbox, kind, tallied)).await;
        let mut report = match read {
            Ok(Ok(report)) => report,
            Ok(Err(err)) => {
                log::warn!("bot: /report cannot read the outbox: {err}");
                return Answer::text("The relay cannot read its outbox just now; try again in a moment.");
            }
            Err(_) => return Answer::text("The relay's outbox is busy; try again in a moment."),
        };
        report.parts.iter_mut().for_each(|part| part.to = now.as_second());
        let renderer = source.templates.current();
        let (mut embeds, mut chars) = (Vec::new(), 0);
        for part in report.parts.iter().map(|context| renderer.render_report(context)) {
            chars += part.embed_chars();
            if embeds.len() == MAX_EMBEDS || chars > MESSAGE_EMBED_CHARS {
                break;
            }
            embeds.push(CreateEmbed::from(part.embed));
        }
        let left = report.parts.len() - embeds.len();
        let mut content = format!("The {kind} report so far, since <t:{}:f>.", period.start.as_second());
        if left > 0 {
            content.push_str(&format!(" {left} more panels are left out: a message holds only so much."));
        }
        let message = CreateInteractionResponseMessage::new()
            .ephemeral(true)
            .allowed_mentions(CreateAllowedMentions::new())
            .content(content)
            .embeds(embeds);
        Answer::now(CreateInteractionResponse::Message(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::parse_reports;

    #[test]
    fn the_running_period_starts_where_the_last_one_ended() {
        let settings = ReportSettings::default();
        let daily = parse_reports("daily@09:00").unwrap()[0];
        let now: Timestamp = "2026-12-07T17:00:00Z".parse().unwrap();
        let period = running_period(&daily, &settings, now);
        assert_eq!((period.start.to_string().as_str(), period.end), ("2026-12-07T09:00:00Z", now));
        let early: Timestamp = "2026-12-07T08:00:00Z".parse().unwrap();
        assert_eq!(running_period(&daily, &settings, early).start.to_string(), "2026-12-06T09:00:00Z");
    }
}
