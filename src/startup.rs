//! Wiring: builds every stage from a [`Config`], binds the listener (or takes one, so tests can
//! bind port 0), and runs until a shutdown token is cancelled.

mod producers;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::bot;
use crate::bot::ReportSource;
use crate::config::Config;
use crate::deliver::{AppWebhooks, Delivery, Retention, Services};
use crate::destination::{Destination, Origin, OwnerDestinations, OwnerMetrics, Target, DEFAULT_DESTINATION};
use crate::discord::{self, WebhookUrl};
use crate::ingest::{self, Auth, PanelBodies, RootAuth, State, Unverified};
use crate::metrics::{Health, Metrics};
use crate::nodes::{NodeMetrics, Watcher};
use crate::outbox::Outbox;
use crate::panel::{PanelApiSettings, PanelClient};
use crate::render::Templates;
use crate::routing::Router;
use producers::{audit_sink, start_bot, start_gateway, start_reports, start_watchers, Producing};
pub use producers::{panel_clients, PanelClients};

/// Connections each HTTP worker serves at once; more wait in the kernel's backlog. Panels hold one
/// or two; this bounds what a flood of idle connections can make the relay hold: actix buffers up
/// to about 128 KiB of an unfinished request head per connection, so at most 4 workers × 256 ×
/// 128 KiB = 128 MiB in all (a head must be in within 5 s).
const MAX_CONNECTIONS_PER_WORKER: usize = 256;

/// How long in-flight requests get to finish at shutdown.
const HTTP_SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// The relay, built and listening, not yet running.
pub struct Application {
    server: Server,
    port: u16,
    delivery: Delivery,
    templates: Arc<Templates>,
    /// The producers' tasks (reports, node watch) and their stop tokens, when configured.
    producers: Vec<Producing>,
}

impl Application {
    /// Builds the relay and binds `config.listen_addr`.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.listen_addr)
            .with_context(|| format!("cannot listen on {} (LISTEN_ADDR)", config.listen_addr))?;
        Self::build_with_listener(config, listener).await
    }

    /// Builds the relay on an already bound listener. Must run inside a tokio runtime.
    pub async fn build_with_listener(config: Config, listener: TcpListener) -> anyhow::Result<Self> {
        Self::build_with_worker_start(config, listener, || {}).await
    }

    /// [`Application::build_with_listener`], calling `on_worker_start` on each HTTP worker thread
    /// as it starts. The tests use it to tell which test the lines those threads log belong to.
    pub async fn build_with_worker_start(
        config: Config,
        listener: TcpListener,
        on_worker_start: impl Fn() + Clone + Send + 'static,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let outbox = Outbox::open_capped(&config.data_dir, config.outbox_max_bytes)
            .context("cannot open the outbox (DATA_DIR)")?;
        let templates = Arc::new(load_templates(&config));
        let node_metrics = NodeMetrics::default();
        let gateway_metrics = bot::GatewayMetrics::default();
        let metrics = {
            let mut metrics = Metrics::new();
            node_metrics.register(metrics.registry_mut());
            if config.bot.as_ref().is_some_and(|bot| bot.gateway.is_some()) {
                gateway_metrics.register(metrics.registry_mut());
            }
            Arc::new(metrics)
        };
        let router = Arc::new(router_counted(&config, metrics.owners.clone()));
        announce(&config, &outbox, &router).await;
        let stored = stored_destinations(&outbox).await;

        let health = Arc::new(Health::default());
        let services = Services {
            outbox: outbox.clone(),
            client: discord::Client::new(config.delivery.timeouts).context("cannot build the HTTP client")?,
            templates: templates.clone(),
            settings: Arc::new(config.delivery.clone()),
            metrics: metrics.clone(),
            health: health.clone(),
            app_webhooks: app_webhooks(&config, &outbox)?,
        };
        let delivery = Delivery::start(
            &router,
            stored,
            services,
            Retention { delivered: config.delivered_retention, user_states: config.user_state_retention },
        );
        let reports = start_reports(&config, &router, &outbox, &templates, &delivery, &health, &metrics);
        // One client per panel, for node watch and the bot: one login, one JWT.
        let panels = panel_clients(&config)?;
        let watcher = |settings: &PanelApiSettings, client: &Arc<PanelClient>| Watcher {
            client: client.clone(),
            outbox: outbox.clone(),
            templates: templates.clone(),
            router: router.clone(),
            dispatch: Some(delivery.dispatch()),
            metrics: node_metrics.clone(),
            health: health.clone(),
            settings: config.node_watch.clone(),
            call_timeout: settings.timeout,
            panel: settings.label.clone(),
        };
        let nodes = start_watchers(&config, &panels, watcher, &health, &metrics);
        let mut producers: Vec<Producing> = reports.into_iter().chain(nodes).collect();
        let audit = audit_sink(&config, &router, &outbox, delivery.dispatch());
        let state = web::Data::new(State {
            auth: auth(&config),
            templates: templates.clone(),
            panel_name: config.panel_name.clone(),
            router,
            outbox,
            dispatch: delivery.dispatch(),
            metrics: metrics.clone(),
            health: health.clone(),
            max_body_bytes: config.max_body_bytes,
            body_timeout: config.body_timeout,
            dedup_window: config.dedup_window,
            fold_updates: config.fold_updates,
            user_states: !config.user_state_retention.is_zero(),
            unverified: Unverified::new(config.unverified_body_bytes),
            panel_bodies: panel_bodies(&config),
            answered_503: Default::default(),
            refusals: Default::default(),
        });

        let reports = ReportSource::new(state.outbox.clone(), templates.clone(), config.reports.clone());
        // The bot asks every panel with an API, the default one (PANEL_API_URL's, else the routes
        // file's first) first.
        let bot = start_bot(&config, &panels, audit, reports)?;
        producers.extend(start_gateway(bot.as_ref(), &health, &metrics, gateway_metrics));
        let app_state = state.clone();
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
        let server = HttpServer::new(move || {
            on_worker_start();
            let app = App::new().app_data(app_state.clone()).configure(ingest::routes);
            match &bot {
                Some(bot) => app.app_data(bot.clone()).configure(bot::routes),
                None => app,
            }
        })
        .workers(workers)
        .max_connections(MAX_CONNECTIONS_PER_WORKER)
        .disable_signals()
        .shutdown_timeout(HTTP_SHUTDOWN_TIMEOUT_SECS)
        .listen(listener)?
        .run();
        log::info!("listening on port {port}");
        Ok(Self { server, port, delivery, templates, producers })
    }

    /// The live template set, to reload it.
    pub fn templates(&self) -> Arc<Templates> {
        self.templates.clone()
    }

    /// The port the relay listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled: then stops accepting and lets requests in flight
    /// finish (each answers only after its commit) while, at the same time, delivery stops (the
    /// Discord request in flight gets its grace), leaving unsent rows pending.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let (producers, delivery) = (self.producers, self.delivery);
        // The producers and the delivery tasks stop side by side: a report or a node event still
        // being stored must not eat into the grace of the Discord request in flight.
        let stop_background = async move {
            let stop_producers = async move {
                for (stop, _) in &producers {
                    stop.cancel();
                }
                for (_, task) in producers {
                    let _ = task.await;
                }
            };
            tokio::join!(stop_producers, delivery.stop());
        };
        let served = tokio::select! {
            served = &mut server => {
                stop_background.await;
                served
            }
            () = shutdown.cancelled() => {
                log::info!("shutting down: no new requests; waiting for requests in flight");
                let drain = async {
                    handle.stop(true).await;
                    server.await
                };
                tokio::join!(drain, stop_background).0
            }
        };
        log::info!("stopped");
        served.context("the HTTP server task failed")?.context("the HTTP server failed")
    }
}

/// `default` (from `DISCORD_WEBHOOK_URL`, or the dry-run log when nothing else is configured) and
/// the routes file's destinations and rules.
pub fn router(config: &Config) -> Router {
    router_counted(config, OwnerMetrics::default())
}

/// [`router`], counting owner-admin delivery in `owner_metrics`.
fn router_counted(config: &Config, owner_metrics: OwnerMetrics) -> Router {
    let default = match (&config.discord_webhook_url, config.discord_channel_id) {
        (Some(url), _) => Some(Target::Webhook(url.clone())),
        (None, Some(channel)) => Some(Target::Channel(channel)),
        (None, None) if config.is_dry_run() => Some(Target::DryRun),
        (None, None) => None,
    };
    let destinations = default
        .map(|target| Destination {
            forum: config.discord_forum.clone(),
            ..Destination::new(DEFAULT_DESTINATION, target)
        })
        .into_iter()
        .collect();
    let owners = config
        .deliver_to_owner_admin
        .then(|| Arc::new(OwnerDestinations::new(config.owner_destinations_max, owner_metrics)));
    Router::new(destinations, config.routes.as_ref(), owners)
}

/// What finds or makes the relay's own webhooks, when a destination is a channel.
fn app_webhooks(config: &Config, outbox: &Outbox) -> anyhow::Result<Option<AppWebhooks>> {
    let Some(settings) = &config.app_webhooks else { return Ok(None) };
    AppWebhooks::new(settings, config.delivery.timeouts, outbox.clone()).map(Some).map_err(anyhow::Error::msg)
}

fn auth(config: &Config) -> Auth {
    let root = match &config.webhook_secret {
        Some(secret) => RootAuth::Secret(secret.clone()),
        None if !config.panels.is_empty() && !config.allow_no_secret => RootAuth::Closed,
        None => RootAuth::Open,
    };
    Auth { root, panels: config.panels.iter().cloned().collect() }
}

/// Each panel's share of `PANEL_BODY_BYTES`, keyed as its events are labelled: `POST /` by
/// `PANEL_NAME`, `POST /webhook/<label>` by its label.
fn panel_bodies(config: &Config) -> PanelBodies {
    let labels = config.panels.iter().map(|(label, _)| Some(label.clone()));
    PanelBodies::new(
        config.panel_body_bytes,
        config.panel_requests_max,
        std::iter::once(config.panel_name.clone()).chain(labels),
    )
}

/// Owner admins' webhooks that still have pending rows, to deliver them after a restart.
async fn stored_destinations(outbox: &Outbox) -> Vec<Destination> {
    let stored = outbox.stored_destinations().await.unwrap_or_else(|err| {
        log::error!("cannot read the remembered destinations: {err}");
        Vec::new()
    });
    stored
        .into_iter()
        .filter_map(|stored| match WebhookUrl::parse_discord_only(&stored.url) {
            Ok(url) => {
                Some(Destination { thread_id: stored.thread_id, ..Destination::new(stored.name, Target::Webhook(url)) })
            }
            Err(err) => {
                log::error!("destination {} has an unusable stored URL ({err}); its rows stay pending", stored.name);
                None
            }
        })
        .collect()
}

fn load_templates(config: &Config) -> Templates {
    let (templates, problems, overrides) = Templates::load(config.templates_dir.clone(), config.template_lang);
    for problem in &problems {
        log::error!("template {problem}; the built-in template is used instead");
    }
    if overrides.is_empty() {
        log::info!("using the built-in {} templates", config.template_lang);
    } else {
        log::info!("using the built-in {} templates, replaced by {}", config.template_lang, overrides.join(", "));
    }
    templates
}

async fn announce(config: &Config, outbox: &Outbox, router: &Router) {
    for destination in router.destinations() {
        let name = &destination.name;
        match &destination.target {
            Target::DryRun => log::warn!(
                "no DISCORD_WEBHOOK_URL and no routes: running dry. Events are accepted, stored and logged as the \
                 Discord messages they would be; nothing is delivered"
            ),
            Target::Webhook(url) if url.is_discord_host() => log::info!("destination {name}: {url}"),
            Target::Webhook(url) => log::warn!("destination {name}: {url} ({} is not Discord's own host)", url.host()),
            Target::Channel(id) => log::info!("destination {name}: the relay's own webhook in channel {id}"),
        }
    }
    for warning in &config.warnings {
        log::warn!("{warning}");
    }
    match (&config.webhook_secret, config.panels.is_empty()) {
        (Some(_), _) => {}
        (None, true) => log::warn!("WEBHOOK_SECRET is not set: every request is accepted without a secret"),
        (None, false) if config.allow_no_secret => {
            log::warn!("WEBHOOK_SECRET is not set: POST / accepts every request without a secret")
        }
        (None, false) => log::info!("WEBHOOK_SECRET is not set: only the panels' own paths take events"),
    }
    for (label, _) in &config.panels {
        log::info!("panel {label}: POST /webhook/{label}");
    }
    if config.deliver_to_owner_admin {
        log::info!(
            "events also go to the Discord webhook of the admin who owns the user (at most {} webhooks, \
             OWNER_DESTINATIONS_MAX)",
            config.owner_destinations_max
        );
    }
    if let Ok(pending) = outbox.pending_destinations().await {
        let known: Vec<&str> = router.destinations().iter().map(|d| d.name.as_str()).collect();
        let forgotten =
            pending.iter().filter(|name| !known.contains(&name.as_str()) && Origin::of(name) == Origin::Configured);
        for name in forgotten {
            log::warn!(
                "the outbox has pending rows for destination {name:?}, which is no longer configured; they are kept"
            );
        }
    }
    log::info!("outbox at {}", outbox.path().display());
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::HTTP_SHUTDOWN_TIMEOUT_SECS;
    use crate::config::parse_duration;
    use crate::deliver::DeliverySettings;
    use crate::discord::Timeouts;

    #[test]
    fn a_stop_outlasts_a_discord_request_and_ends_within_the_compose_grace_period() {
        // The request in flight may have been carried out by Discord: abandoning it would make a
        // forum post again after the restart. And compose must not kill the relay before that.
        let grace = DeliverySettings::default().shutdown_grace;
        assert!(grace > Timeouts::default().request, "{grace:?}");
        let compose = include_str!("../docker-compose.yml");
        let period = compose
            .lines()
            .find_map(|line| line.trim().strip_prefix("stop_grace_period:"))
            .map(|value| parse_duration(value.trim()).unwrap())
            .expect("docker-compose.yml sets stop_grace_period");
        let stop = grace.max(Duration::from_secs(HTTP_SHUTDOWN_TIMEOUT_SECS));
        assert!(stop + Duration::from_secs(2) <= period, "a stop takes up to {stop:?}; compose gives {period:?}");
    }
}
