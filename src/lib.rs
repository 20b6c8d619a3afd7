//! marzban-discord-relay: Marzban-family panel webhooks in, Discord embeds out, nothing lost.
//!
//! # Layout
//!
//! The relay is a pipeline of four stages, one module each, plus the glue around them:
//!
//! * [`ingest`]: the HTTP surface (actix-web). Checks the panel's secret, parses the batch, renders
//!   and stores it, and answers only once the outbox has committed it.
//! * [`event`]: the Marzban / PasarGuard / Marzneshin payload model and its normalisation into
//!   [`event::Event`], with every secret field removed.
//! * [`render`]: pure. Picks the template of an event's action, renders it leaf by leaf with
//!   minijinja and clamps the result to Discord's limits ([`render::limits`]).
//! * [`outbox`]: the only module that speaks SQL. One SQLite file, one writer thread that commits
//!   many requests per transaction, and a read connection of its own so reads never wait for it.
//!   It knows destinations (by name, with their mentions) but not routing or rendering. In forum
//!   mode it also remembers which forum post holds each user's messages.
//! * [`deliver`]: one task per destination: takes the oldest pending rows, packs them into as few
//!   Discord messages as the limits allow, sends, and records the outcome.
//! * [`discord`]: the webhook URL type and the HTTP client for one webhook, including the single
//!   place where Discord's answers are classified.
//!
//! Around them: [`config`] (typed settings from the environment), [`secret`] (the shared secret and
//! its constant-time check), [`destination`] (where messages go and whom they may mention, shared
//! by routing and the outbox), [`routing`] (which destinations get an event, with which mentions),
//! [`metrics`] (Prometheus metrics and readiness), [`startup`] (wires the stages together with an
//! injected listener and shutdown token) and [`cli`] (the commands).

pub mod cli;
pub mod config;
pub mod deliver;
pub mod destination;
pub mod discord;
pub mod event;
pub mod ingest;
pub mod metrics;
pub mod nodes;
pub mod outbox;
pub mod panel;
pub mod render;
pub mod reports;
pub mod routing;
pub mod secret;
pub mod startup;
