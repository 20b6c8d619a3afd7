//! `send-test`: post one sample message to every configured destination, to see that the webhooks
//! work and how the embeds look, before the panel sends anything.

use std::process::ExitCode;

use crate::config::Config;
use crate::deliver::{build_message, new_post};
use crate::destination::{Mentions, Target};
use crate::discord::{Client, Outcome};
use crate::render::{samples, PostTitle, Renderer};
use crate::startup;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The action whose sample event is sent.
    #[arg(long, value_name = "ACTION", default_value = "user_created")]
    action: String,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let config = Config::from_env()?;
    let renderer = Renderer::load(&config.templates_dir, config.template_lang).renderer;
    let event = match samples::event_for(&args.action, time::OffsetDateTime::now_utc()) {
        Ok(event) => event,
        Err(err) => {
            eprintln!("{err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let part = renderer.render(&event);
    let client = Client::new(config.delivery.timeouts)?;
    let router = startup::router(&config);
    let mut failed = false;
    super::runtime()?.block_on(async {
        for destination in router.destinations() {
            let url = match &destination.target {
                Target::Webhook(url) => url,
                Target::Channel(id) => {
                    println!(
                        "{}: channel {id}, where `serve` makes the relay's own webhook; nothing sent (send-test only \
                         uses webhook URLs)",
                        destination.name
                    );
                    continue;
                }
                Target::DryRun => {
                    println!("{}: no webhook configured (the relay would run dry); nothing sent", destination.name);
                    continue;
                }
            };
            let mut message = build_message([&part], &Mentions::default(), destination);
            let mut into = String::new();
            if destination.forum.is_some() {
                // A post of its own, not remembered: the relay's posts for real users are not touched.
                let title = PostTitle::user(&event.username, event.panel.as_deref(), event.action.as_str());
                let name = renderer.thread_name(&title.several_panels(config.delivery.several_panels));
                into = format!(", in a new forum post {name:?}");
                message = new_post(message, &name, &[]);
            }
            let reply = client.execute(url, destination.thread_id, &message).await;
            match reply.outcome {
                Outcome::Delivered => println!("{}: delivered to {url}{into}", destination.name),
                outcome => {
                    failed = true;
                    println!("{}: not delivered to {url}: {outcome:?}", destination.name);
                }
            }
        }
    });
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
