//! `check`: is the configuration usable, and does every template render valid Discord messages?

use std::process::ExitCode;

use crate::config::Config;
use crate::render::Renderer;

pub fn run() -> anyhow::Result<ExitCode> {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            println!("configuration: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    println!("configuration: ok");
    match &config.discord_webhook_url {
        Some(url) => println!("  delivering to {url}"),
        None => println!("  DISCORD_WEBHOOK_URL is not set: the relay would run dry"),
    }
    println!("  templates: {} over the built-in {} set", config.templates_dir.display(), config.template_lang);

    let loaded = Renderer::load(&config.templates_dir, config.template_lang);
    let mut problems = loaded.problems;
    problems.extend(loaded.renderer.check());
    for (name, origin) in loaded.renderer.templates() {
        let failed = problems.iter().any(|p| p.origin == origin);
        println!("{} {name:<22} {origin}", if failed { "FAIL" } else { "ok  " });
    }
    if problems.is_empty() {
        println!("all templates render valid Discord messages for every sample event");
        return Ok(ExitCode::SUCCESS);
    }
    println!();
    for problem in &problems {
        println!("error: {problem}");
    }
    println!("{} problem(s); the relay would use the built-in template wherever one of yours fails", problems.len());
    Ok(ExitCode::FAILURE)
}
