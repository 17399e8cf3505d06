//! The `pawl` server binary: `/echo` and `/chat` on 127.0.0.1:8080 by default.
//!
//! ```text
//! cargo run --release -- --help
//! ```

mod cli;

use std::process::ExitCode;

use clap::Parser;
use log::error;

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
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> pawl::Result<()> {
    let config = args.server_config()?;
    let (host, port) = args.host_port()?;
    let origins: Vec<&str> = args.origin.iter().map(String::as_str).collect();
    let mut app = pawl::App::new(&host, port);
    app.config(config);
    app.route("/echo", pawl::EchoServer, &origins);
    app.route("/chat", broadcast::Broadcast::default(), &origins);
    app.route("/broadcast", broadcast::Broadcast::default(), &origins);
    app.run()
}

mod broadcast {
    //! The seed's `MyChat`: every message goes to every client, the sender too.

    use std::collections::BTreeSet;

    use pawl::{CloseReason, Component, ConnId, Context, Message};

    /// Ratchet's chat example.
    #[derive(Debug, Default)]
    pub struct Broadcast {
        clients: BTreeSet<ConnId>,
    }

    impl Component for Broadcast {
        fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId) {
            self.clients.insert(conn);
        }

        fn on_message(&mut self, ctx: &mut Context<'_>, _: ConnId, message: Message<'_>) {
            ctx.broadcast(self.clients.iter().copied(), message);
        }

        fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, _: &CloseReason) {
            self.clients.remove(&conn);
        }
    }
}
