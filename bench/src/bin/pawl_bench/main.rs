//! pawl-bench: the load generator of issue 4, a hand-written mio WebSocket
//! client that checks every reply.
//!
//! ```text
//! cargo run --release -p pawl-bench --bin pawl_bench -- echo --url ws://127.0.0.1:9001/echo --pid PID
//! cargo run --release -p pawl-bench --bin pawl_bench -- idle --url ws://127.0.0.1:9001/echo --conns 19000 --pid PID
//! cargo run --release -p pawl-bench --bin pawl_bench -- handshakes --url ws://127.0.0.1:9001/echo --pid PID
//! cargo run --release -p pawl-bench --bin pawl_bench -- broadcast --url ws://127.0.0.1:9001/chat --conns 19000 --pid PID
//! cargo run --release -p pawl-bench --bin pawl_bench -- publish --url ws://127.0.0.1:9001/broadcast?topic=t --worker-pid PID
//! cargo run --release -p pawl-bench --bin pawl_bench -- echo --json --deflate --size 16384 --url ws://127.0.0.1:9001/echo --pid PID
//! cargo run --release -p pawl-bench --bin pawl_bench -- backlog --deflate --url ws://127.0.0.1:9001/chat
//! ```
//!
//! `--deflate` (echo, idle, backlog) offers permessage-deflate as a browser
//! does and speaks it where the server agrees (see `deflate.rs`).
//!
//! Each run prints its figures on stderr and one `RESULT key=value ...` line
//! on stdout for `scripts/bench`. A wrong, missing or late reply, or a
//! connection the server drops, ends the run with an error and a non-zero
//! exit: it never becomes a figure. `--pid` names the server process whose
//! RSS and CPU time are read from /proc. Targets must be loopback addresses.

mod backlog;
mod broadcast;
mod conn;
mod deflate;
mod echo;
mod fleet;
mod handshakes;
mod idle;
mod procfs;
mod publish;
mod tally;
mod wire;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
    /// A reply that is not what was sent, or a count that does not add up.
    #[error("check failed: {0}")]
    Check(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("usage: {0}")]
    Usage(String),
}

#[derive(Parser)]
#[command(
    name = "pawl-bench",
    about = "WebSocket load generator for pawl and its references"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hold N connections idle and report the server's RSS per connection.
    Idle(idle::Args),
    /// Echo load: messages/s and server CPU per echoed message.
    Echo(echo::Args),
    /// Connect, upgrade, close, as fast as the server allows.
    Handshakes(handshakes::Args),
    /// One message to N connections: time until the last one has it.
    Broadcast(broadcast::Args),
    /// A topic's publishers and N subscribers, over one server or workers:
    /// latency and sustained messages/s.
    Publish(publish::Args),
    /// The chat's backlog of typical messages: bytes on the wire (pawl's
    /// /chat only).
    Backlog(backlog::Args),
    /// A child process holding part of the connections (used by idle and
    /// broadcast; speaks line commands on stdin/stdout).
    #[command(hide = true)]
    Worker(fleet::WorkerArgs),
}

/// The server under test and how to reach it.
#[derive(clap::Args, Clone, Debug)]
pub struct Target {
    /// ws://127.x.y.z:PORT/PATH (loopback only).
    #[arg(long)]
    pub url: String,
    /// The server's process id, for RSS and CPU time from /proc.
    #[arg(long)]
    pub pid: Option<u32>,
    /// Spread connections over source addresses 127.0.0.2 .. 127.0.0.(1+N);
    /// 0 leaves the choice to the kernel.
    #[arg(long, default_value_t = 4)]
    pub sources: u8,
}

impl Target {
    /// The server address and path, refusing anything but loopback.
    pub fn parse(&self) -> Result<(SocketAddrV4, String), Error> {
        let rest = self
            .url
            .strip_prefix("ws://")
            .ok_or_else(|| Error::Usage("--url must start with ws://".into()))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr: SocketAddrV4 = authority
            .parse()
            .map_err(|_| Error::Usage(format!("--url needs IPv4:PORT, got {authority:?}")))?;
        if !addr.ip().is_loopback() {
            return Err(Error::Usage(
                "benchmarks may only target 127.0.0.0/8".into(),
            ));
        }
        Ok((addr, path.to_owned()))
    }

    /// The source address for the `i`-th connection.
    pub fn source(&self, i: usize) -> Ipv4Addr {
        match self.sources {
            0 => Ipv4Addr::LOCALHOST,
            n => Ipv4Addr::new(127, 0, 0, 2 + (i % n as usize) as u8),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Idle(args) => idle::run(&args),
        Command::Echo(args) => echo::run(&args),
        Command::Handshakes(args) => handshakes::run(&args),
        Command::Broadcast(args) => broadcast::run(&args),
        Command::Publish(args) => publish::run(&args),
        Command::Backlog(args) => backlog::run(&args),
        Command::Worker(args) => fleet::worker(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pawl-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Formats a `RESULT` line from key/value pairs.
pub fn result_line(pairs: &[(&str, String)]) -> String {
    let mut line = String::from("RESULT");
    for (key, value) in pairs {
        line.push(' ');
        line.push_str(key);
        line.push('=');
        line.push_str(value);
    }
    line
}
