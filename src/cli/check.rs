//! `check`: is the configuration usable, and does every template render valid Discord messages?

use std::process::ExitCode;

use crate::config::Config;
use crate::destination::Target;
use crate::render::Renderer;
use crate::reports;
use crate::startup;

pub fn run() -> anyhow::Result<ExitCode> {
    let config = match Config::from_env_for_preview() {
        Ok(config) => config,
        Err(err) => {
            println!("configuration: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!("configuration: ok");
    for warning in &config.warnings {
        println!("  warning: {warning}");
    }
    for destination in startup::router(&config).destinations() {
        match &destination.target {
            Target::Webhook(url) => println!("  destination {}: {url}", destination.name),
            Target::Channel(id) => {
                println!("  destination {}: the relay's own webhook in channel {id}", destination.name)
            }
            Target::DryRun => println!("  no DISCORD_WEBHOOK_URL and no routes: the relay would run dry"),
        }
    }
    if let Some(routes) = &config.routes {
        let mut muted: Vec<&str> = routes.mute.iter().map(String::as_str).collect();
        muted.sort_unstable();
        println!(
            "  routes: {} rules; muted: {}",
            routes.rules.len(),
            if muted.is_empty() { "none".into() } else { muted.join(", ") }
        );
    }
    for (label, _) in &config.panels {
        println!("  panel {label}: POST /webhook/{label}");
    }
    print_reports(&config);
    println!("  templates: {} over the built-in {} set", config.templates_dir.display(), config.template_lang);

    let loaded = Renderer::load(&config.templates_dir, config.template_lang);
    for warning in &loaded.warnings {
        println!("  warning: {warning}");
    }
    let mut problems = loaded.problems;
    problems.extend(loaded.renderer.check());
    for (name, origin) in loaded.renderer.templates() {
        let failed = problems.iter().any(|p| p.origin == origin);
        println!("{} {name:<22} {origin}", if failed { "FAIL" } else { "ok  " });
    }
    if problems.is_empty() {
        println!("all templates render valid Discord messages for every sample and edge event");
        return Ok(ExitCode::SUCCESS);
    }
    println!();
    for problem in &problems {
        println!("error: {problem}");
    }
    println!("{} problem(s); the relay would use the built-in template wherever one of yours fails", problems.len());
    Ok(ExitCode::FAILURE)
}

/// `REPORTS`: which reports, when, and to whom.
fn print_reports(config: &Config) {
    let settings = &config.reports;
    if settings.schedules.is_empty() {
        return;
    }
    let when: Vec<String> = settings.schedules.iter().map(ToString::to_string).collect();
    let tz = settings.time_zone.iana_name().unwrap_or("UTC");
    println!("  reports: {} ({tz})", when.join(", "));
    let recipients = reports::recipients(&startup::router(config), config.routes.as_ref(), settings);
    if recipients.is_empty() {
        println!("  warning: REPORTS is set but no destination gets reports");
    }
    for recipient in recipients {
        let kinds: Vec<&str> = recipient.reports.iter().map(|kind| kind.name()).collect();
        println!("  reports to {}: {}", recipient.destination.name, kinds.join(", "));
    }
}
