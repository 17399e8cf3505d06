//! The `pawl` server binary on 127.0.0.1:8080 by default: the chat page at
//! `/`, the chat on `/chat`, the seed's broadcast chat on `/broadcast`,
//! `/echo`, `/health`, the counters on `/metrics`, and `POST /publish` with
//! `--publish-secret`.
//!
//! ```text
//! cargo run --release -- --help
//! cargo run --release -- --redis redis://127.0.0.1:6379
//! ```

mod broadcast;
mod cli;
mod metrics;
mod publish;
mod relay;
mod workers;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use log::{error, info};
use pawl::Origins;
use pawl::reactor::Reactor;

use cli::Args;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = simple_logger::SimpleLogger::new()
        .with_level(args.log_level)
        .with_utc_timestamps()
        .init()
    {
        eprintln!("pawl: cannot start logging: {e}");
    }
    let result = if args.workers > 1 && workers::worker_index().is_none() {
        supervise(&args)
    } else {
        run(&args)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `--workers N`: check the flags once here, so a mistake is one error
/// rather than N workers failing and being restarted forever.
fn supervise(args: &Args) -> pawl::Result<()> {
    args.server_config()?;
    args.tls_config()?;
    args.publish_secret()?;
    let (host, port) = args.host_port()?;
    // Without Redis, topics cross the workers through the supervisor.
    let relay = match args.redis {
        Some(_) => None,
        None => Some(relay::start(args.max_message_size)?),
    };
    workers::supervise(&host, port, usize::from(args.workers), relay)
}

fn run(args: &Args) -> pawl::Result<()> {
    let config = args.server_config()?;
    let chat_config = args.chat_config()?;
    let (host, port) = args.host_port()?;
    let origins = Origins::list(&args.origin);
    let mut reactor = Reactor::new()?;
    reactor.stop_on_signals()?;
    let latest = metrics::Latest::default();
    let mut app = workers::app(&host, port)?
        .config(config)
        .http("/health", workers::health)
        .http("/metrics", latest.handler())
        .route("/echo", pawl::EchoServer, &origins)
        .route("/broadcast", broadcast::Broadcast, &origins);
    if let Some(tls) = args.tls_config()? {
        app = app.tls(tls);
    }
    if let Some(secret) = args.publish_secret()? {
        app = publish::route(app, secret);
    }
    // Topics (/broadcast, /publish) span every process sharing this
    // Redis, or, without one, the workers of this supervisor.
    if let Some(url) = args.redis.clone().or_else(workers::relay_url) {
        app = app.broker(&url);
    }
    let (app, chat) = pawl_chat::setup::mount(
        app,
        &mut reactor,
        chat_config,
        &args.store_config(),
        &origins,
    )?;
    let server = app.listen(&mut reactor)?;
    let interval = Duration::from_secs(args.stats_interval);
    metrics::start(&mut reactor, chat, latest, interval);
    reactor.run()?;
    server.close_all_now(&mut reactor);
    info!("pawl stopped");
    Ok(())
}
