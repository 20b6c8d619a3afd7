//! The relay's own producers, started beside the HTTP server when configured: the scheduled
//! reports, node watch and the Discord application (bot).

use std::sync::Arc;

use actix_web::web;
use tokio_util::sync::CancellationToken;

use crate::bot::audit::Audit;
use crate::bot::{self, Bot, ReportSource};
use crate::config::Config;
use crate::deliver::supervise::{keep_running, REPORTS_TASK};
use crate::deliver::{Delivery, Dispatch};
use crate::destination::DEFAULT_DESTINATION;
use crate::metrics::{Health, Metrics};
use crate::nodes::{Watcher, NODES_TASK};
use crate::outbox::Outbox;
use crate::panel::PanelClient;
use crate::render::Templates;
use crate::reports::{self, Producer};
use crate::routing::Router;

/// A producer's task and the token that stops it.
pub(super) type Producing = (CancellationToken, tokio::task::JoinHandle<()>);

/// Starts the report producer, supervised like a delivery task (as `reports`), when `REPORTS`
/// schedules any report for some destination.
pub(super) fn start_reports(
    config: &Config,
    router: &Router,
    outbox: &Outbox,
    templates: &Arc<Templates>,
    delivery: &Delivery,
    health: &Arc<Health>,
    metrics: &Arc<Metrics>,
) -> Option<Producing> {
    let settings = &config.reports;
    if settings.schedules.is_empty() {
        return None;
    }
    let recipients = reports::recipients(router, config.routes.as_ref(), settings);
    if recipients.is_empty() {
        log::warn!("REPORTS is set but no destination gets reports (see docs/REPORTS.md)");
        return None;
    }
    for recipient in &recipients {
        let names: Vec<&str> = recipient.reports.iter().map(|kind| kind.name()).collect();
        log::info!(
            "destination {}: {} reports ({})",
            recipient.destination.name,
            names.join(", "),
            settings.time_zone.iana_name().unwrap_or("UTC")
        );
    }
    let producer =
        Producer::new(outbox.clone(), templates.clone(), settings.clone(), recipients, Some(delivery.dispatch()));
    let stop = CancellationToken::new();
    let (health, metrics, shutdown) = (health.clone(), metrics.clone(), stop.clone());
    let task = tokio::spawn(async move {
        keep_running(REPORTS_TASK, &health, &metrics, &shutdown, || producer.clone().run(shutdown.clone())).await;
    });
    Some((stop, task))
}

/// Starts node watch, supervised like a delivery task (as `task:nodes`).
pub(super) fn start_nodes(watcher: Watcher, health: &Arc<Health>, metrics: &Arc<Metrics>) -> Producing {
    let stop = CancellationToken::new();
    let (health, metrics, shutdown) = (health.clone(), metrics.clone(), stop.clone());
    let task = tokio::spawn(async move {
        keep_running(NODES_TASK, &health, &metrics, &shutdown, || watcher.clone().run(shutdown.clone())).await;
    });
    (stop, task)
}

/// The Discord application's handler for `POST /interactions`, when `DISCORD_PUBLIC_KEY` is set
/// (with or without a panel API), `/report` reading `reports`, audit lines posted through `audit`;
/// registers the slash commands in the background when `DISCORD_BOT_TOKEN` is set.
pub(super) fn start_bot(
    config: &Config,
    panel: Option<Arc<PanelClient>>,
    audit: Option<Audit>,
    reports: ReportSource,
) -> anyhow::Result<Option<web::Data<Bot>>> {
    let Some(settings) = &config.bot else {
        return Ok(None);
    };
    if panel.is_none() {
        log::warn!("bot: PANEL_API_URL is not set: /user answers that no panel API is configured");
    }
    let actors = settings.actors.len();
    log::info!(
        "bot: POST /interactions for application {}; {actors} role or user ids may act (DISCORD_ACTORS): {}",
        settings.application_id,
        settings.actions.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
    );
    // The panels of PANELS / the routes file with an API of their own go in `with_panels`, as
    // (label, client), once the configuration holds them.
    let mut bot = Bot::new(settings.clone(), panel, config.panel_name.clone())
        .map_err(anyhow::Error::msg)?
        .with_panels(Vec::new())
        .with_reports(reports);
    if settings.bot_token.is_some() {
        tokio::spawn(bot::register_commands_for(settings.clone(), bot.panel_labels()));
    }
    if let Some(audit) = audit {
        log::info!("bot: every action is posted as an audit line to destination {}", audit.destination());
        bot = bot.with_audit(audit);
    }
    Ok(Some(web::Data::new(bot)))
}

/// Where the bot posts its audit lines, when it runs: the panel's default destination
/// (`DISCORD_WEBHOOK_URL`, named `default`), else the routes file's first destination.
pub(super) fn audit_sink(config: &Config, router: &Router, outbox: &Outbox, dispatch: Dispatch) -> Option<Audit> {
    config.bot.as_ref()?;
    let destinations = router.destinations();
    let destination = destinations.iter().find(|d| d.name == DEFAULT_DESTINATION).or_else(|| destinations.first())?;
    Some(Audit::new(outbox.clone(), destination.clone(), Some(dispatch)))
}
