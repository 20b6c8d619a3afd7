//! The relay's own producers, started beside the HTTP server when configured: the scheduled
//! reports, node watch, the Discord application (bot) and its gateway connection.

use std::sync::Arc;

use actix_web::web;
use tokio_util::sync::CancellationToken;

use crate::bot::audit::Audit;
use crate::bot::{self, Bot, Gateway, GatewayMetrics, ReportSource, GATEWAY_TASK};
use crate::config::Config;
use crate::deliver::supervise::{keep_running, REPORTS_TASK};
use crate::deliver::{Delivery, Dispatch};
use crate::destination::DEFAULT_DESTINATION;
use crate::metrics::{Health, Metrics};
use crate::nodes::Watcher;
use crate::outbox::Outbox;
use crate::panel::{PanelApiSettings, PanelClient};
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

/// Each panel with a REST API and its client, in the order of [`Config::all_panel_apis`]
/// (`PANEL_API_URL`'s first, labelled `PANEL_NAME`): one client per panel, shared by its node
/// watcher and the bot, so one login and one JWT per panel.
pub type PanelClients = Vec<(Option<String>, Arc<PanelClient>)>;

/// Makes the client of every panel with a REST API.
pub fn panel_clients(config: &Config) -> anyhow::Result<PanelClients> {
    config
        .all_panel_apis()
        .map(|settings| {
            let client = PanelClient::new(settings).map_err(anyhow::Error::msg)?;
            Ok((settings.label.clone(), Arc::new(client)))
        })
        .collect()
}

/// Starts one node watcher per panel of `panels`, each supervised like a delivery task under its
/// own name (`task:nodes`, or `task:nodes:<label>`), made by `watcher` from its settings and client.
pub(super) fn start_watchers(
    config: &Config,
    panels: &PanelClients,
    watcher: impl Fn(&PanelApiSettings, &Arc<PanelClient>) -> Watcher,
    health: &Arc<Health>,
    metrics: &Arc<Metrics>,
) -> Vec<Producing> {
    let settings = config.all_panel_apis().zip(panels);
    settings
        .map(|(settings, (_, client))| {
            log::info!(
                "node watch: polling {} ({}) every {:?}",
                settings.url,
                settings.label.as_deref().unwrap_or("no label"),
                config.node_watch.poll_interval
            );
            start_nodes(watcher(settings, client), health, metrics)
        })
        .collect()
}

/// Starts one panel's node watch, supervised like a delivery task (as its [`Watcher::task`]).
fn start_nodes(watcher: Watcher, health: &Arc<Health>, metrics: &Arc<Metrics>) -> Producing {
    let stop = CancellationToken::new();
    let (health, metrics, shutdown) = (health.clone(), metrics.clone(), stop.clone());
    let task = tokio::spawn(async move {
        let name = watcher.task();
        keep_running(&name, &health, &metrics, &shutdown, || watcher.clone().run(shutdown.clone())).await;
    });
    (stop, task)
}

/// The Discord application's handler, when `DISCORD_BOT_TOKEN` or `DISCORD_PUBLIC_KEY` is set
/// (with or without a panel API), `/report` reading `reports`, audit lines posted through `audit`;
/// registers the slash commands in the background when `DISCORD_BOT_TOKEN` is set.
pub(super) fn start_bot(
    config: &Config,
    panels: &PanelClients,
    audit: Option<Audit>,
    reports: ReportSource,
) -> anyhow::Result<Option<web::Data<Bot>>> {
    let Some(settings) = &config.bot else {
        return Ok(None);
    };
    if panels.is_empty() {
        log::warn!("bot: no panel API is set (PANEL_API_URL, or api_url in the routes file): /user says so");
    }
    let actors = settings.actors.len();
    log::info!(
        "bot: {} for application {}; {actors} role or user ids may act (DISCORD_ACTORS): {}",
        transports(settings),
        settings.application_id,
        settings.actions.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
    );
    // The default panel first (its label PANEL_NAME's, or none), then each routes file panel with
    // an API of its own.
    let mut bot = Bot::new(settings.clone(), panels.clone()).map_err(anyhow::Error::msg)?.with_reports(reports);
    if settings.bot_token.is_some() {
        tokio::spawn(bot::register_commands_for(settings.clone(), bot.panel_labels()));
    }
    if let Some(audit) = audit {
        log::info!("bot: every action is posted as an audit line to destination {}", audit.destination());
        bot = bot.with_audit(audit);
    }
    Ok(Some(web::Data::new(bot)))
}

/// How the bot receives interactions, for the start-up line.
fn transports(settings: &bot::BotSettings) -> &'static str {
    match (settings.gateway.is_some(), settings.public_key.is_some()) {
        (true, true) => "the gateway and POST /interactions",
        (true, false) => "the gateway",
        (false, _) => "POST /interactions",
    }
}

/// Starts the gateway connection, supervised like a delivery task (as `task:gateway`), when the
/// bot has a token and `DISCORD_GATEWAY` is on.
pub(super) fn start_gateway(
    bot: Option<&web::Data<Bot>>,
    health: &Arc<Health>,
    metrics: &Arc<Metrics>,
    gateway_metrics: GatewayMetrics,
) -> Option<Producing> {
    let bot = bot?.clone().into_inner();
    let settings = bot.settings().gateway.clone()?;
    let gateway = Gateway::new(bot, &settings, health.clone(), gateway_metrics)?;
    let stop = CancellationToken::new();
    let (health, metrics, shutdown) = (health.clone(), metrics.clone(), stop.clone());
    let task = tokio::spawn(async move {
        keep_running(GATEWAY_TASK, &health, &metrics, &shutdown, || gateway.clone().run(shutdown.clone())).await;
    });
    Some((stop, task))
}

/// Where the bot posts its audit lines, when it runs: the panel's default destination
/// (`DISCORD_WEBHOOK_URL`, named `default`), else the routes file's first destination.
pub(super) fn audit_sink(config: &Config, router: &Router, outbox: &Outbox, dispatch: Dispatch) -> Option<Audit> {
    config.bot.as_ref()?;
    let destinations = router.destinations();
    let destination = destinations.iter().find(|d| d.name == DEFAULT_DESTINATION).or_else(|| destinations.first())?;
    Some(Audit::new(outbox.clone(), destination.clone(), Some(dispatch)))
}
