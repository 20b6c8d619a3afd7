//! marzban-discord-relay: Marzban-family panel webhooks in, Discord embeds out, nothing lost.
//!
//! # Layout
//!
//! Rooms in layers, top to bottom; a room imports its own layer and the ones below, never one
//! above, and no two rooms import each other (`tests/architecture.rs` fails otherwise; the why is
//! in `docs/ARCHITECTURE.md`).
//!
//! * [`cli`]: the commands (`serve`, `check`, `render`, `send-test`, `report`, `outbox …`).
//! * [`startup`] wires the stages together with an injected listener and shutdown token;
//!   [`config`] reads the environment and assembles each stage's settings (each stage owns its
//!   settings type and parser; no stage imports `config`).
//! * What makes events:
//!   * [`ingest`]: the HTTP surface (actix-web). Checks the panel's secret, parses the batch,
//!     routes, renders and stores it, and answers only once the outbox has committed it.
//!   * [`reports`]: a producer inside the process: scheduled reports written into the outbox.
//!   * [`nodes`]: the node watcher, a producer beside `reports`: asks the panel (through
//!     [`panel`]) about its nodes and core every `NODE_POLL_INTERVAL` and writes node events
//!     (`node_down`, `node_recovered`, …, `panel_unreachable`) into the outbox like the panel's own,
//!     with its state in the same transaction.
//!   * [`bot`]: the Discord application: the gateway (an outbound websocket, the default) or
//!     `POST /interactions` (Ed25519-verified), `/user` and the user card's buttons, turned into
//!     panel calls through `panel/`.
//! * What decides and delivers:
//!   * [`routing`]: which destinations get an event, with which mentions.
//!   * [`deliver`]: one task per destination: takes the oldest pending rows, packs them into as
//!     few Discord messages as the limits allow, sends, and records the outcome. A destination
//!     given as a channel gets the relay's own webhook, found or made on first need, and the
//!     "Act on a user…" menu under its user events.
//!   * [`panel`]: the panel API client for Marzban, PasarGuard and Marzneshin (the family set or
//!     detected): login and JWT renewal or an API key, the nodes, the core; the only holder of
//!     panel credentials, and it reads the panel's answers as hostile input.
//! * [`outbox`]: the only module that speaks SQL. One SQLite file, one writer thread that commits
//!   many requests per transaction, and a read connection of its own. In forum mode it also
//!   remembers which forum post holds each user's messages. [`render`]: pure. Picks the template
//!   of an event's action, renders it leaf by leaf with minijinja and clamps the result to
//!   Discord's limits ([`render::limits`]).
//! * The shared vocabulary: [`event`] (the panels' payloads normalised into [`event::Event`], every
//!   secret field removed), [`destination`] (where messages go and whom they may mention),
//!   [`discord`] (the webhook URL, the HTTP client for one webhook, the one place Discord's
//!   answers are classified, and a channel's webhooks with the bot token), [`secret`] (the shared secret, its constant-time check, values given
//!   inline or in a file) and [`metrics`] (Prometheus metrics and the `/readyz` health state; it
//!   knows destinations by name, no stage and no task).

pub mod bot;
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
