//! End-to-end tests: the relay on port 0 with its own data folder, talking to a fake Discord on
//! 127.0.0.1, fed with the real request bodies in `tests/fixtures/`.

mod fake_bot_more;
mod fake_bot_peers;
mod fake_discord;
mod fake_panel;
mod helpers;

mod act_menu;
mod app_webhooks;
mod bot;
mod bot_actions;
mod bot_commands;
mod bot_panels;
mod burst;
mod changes;
mod cli;
mod conformance;
mod dedup;
mod delivery;
mod dry_run;
mod engine;
mod faults;
mod forum;
mod forum_faults;
mod forum_room;
mod gateway;
mod hostile;
mod ingest;
mod look;
mod marzneshin;
mod nodes;
mod operations;
mod owners;
mod pacing;
mod pasarguard;
mod preview;
mod readiness;
mod report_faults;
mod reports;
mod review;
mod safety;
mod storage;
mod templates;
mod write_failures;
