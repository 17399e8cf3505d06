//! Broadcast: `--conns` connections on a chat route (one of them the
//! parent's own, the sender), then `--messages` times: one text message of
//! `--size` bytes from the sender, timed from the send until the last
//! connection has it. Every connection checks every message it gets.

use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::conn::{Event, Phase, WsConn};
use crate::fleet::{Fleet, FleetOptions, SENDER};
use crate::wire::{OP_TEXT, Payloads};
use crate::{Error, Target, procfs, result_line};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Connections in all, the sender included.
    #[arg(long, default_value_t = 19_000)]
    pub conns: usize,
    #[arg(long, default_value_t = 5_000)]
    pub per_process: usize,
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Broadcasts to time.
    #[arg(long, default_value_t = 10)]
    pub messages: u64,
    /// Quiet milliseconds between broadcasts.
    #[arg(long, default_value_t = 100)]
    pub gap_ms: u64,
}

const LIMIT: Duration = Duration::from_secs(20);

pub fn run(args: &Args) -> Result<(), Error> {
    if args.conns < 2 {
        return Err(Error::Usage(
            "broadcast needs at least 2 connections".into(),
        ));
    }
    let (server, path) = args.target.parse()?;
    let payloads = Payloads::new(args.size);
    let fleet = Fleet::spawn(
        &args.target,
        args.conns - 1,
        args.per_process,
        args.size,
        1,
        &FleetOptions::default(),
    )?;
    let workers = fleet.len();

    let mut poll = Poll::new()?;
    let mut sender = WsConn::connect(
        poll.registry(),
        Token(0),
        server,
        args.target.source(0),
        &path,
        0,
        false,
    )?;
    let mut events = Events::with_capacity(64);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut next: u64 = 0;
    let mut self_arrival: Option<u64> = None;
    let mut pump = |poll: &mut Poll,
                    sender: &mut WsConn,
                    self_arrival: &mut Option<u64>,
                    next: &mut u64|
     -> Result<(), Error> {
        poll.poll(&mut events, Some(Duration::from_millis(1)))?;
        for _ in events.iter() {
            sender.ready(&mut scratch, &mut |ev, _| match ev {
                Event::Upgraded => Ok(()),
                Event::Message(op, got)
                    if op == OP_TEXT && payloads.matches(SENDER, *next, got) =>
                {
                    *self_arrival = Some(procfs::monotonic_ns());
                    *next += 1;
                    Ok(())
                }
                Event::Message(_, got) => Err(Error::Check(format!(
                    "sender: message is not broadcast {} ({} bytes)",
                    *next,
                    got.len()
                ))),
                Event::Close(code) => Err(Error::Protocol(format!(
                    "sender: server closed with {code:?}"
                ))),
            })?;
        }
        Ok(())
    };
    let deadline = Instant::now() + LIMIT;
    while sender.phase() != Phase::Open {
        if Instant::now() > deadline {
            return Err(Error::Timeout("sender did not upgrade".into()));
        }
        pump(&mut poll, &mut sender, &mut self_arrival, &mut next)?;
    }
    fleet.wait_all("ready", Duration::from_secs(150))?;

    let mut latencies = Vec::with_capacity(args.messages as usize);
    let mut buf = Vec::new();
    let cpu0 = args.target.pid.map(procfs::cpu_ns).transpose()?;
    for seq in 0..args.messages {
        std::thread::sleep(Duration::from_millis(args.gap_ms));
        payloads.build(SENDER, seq, &mut buf);
        self_arrival = None;
        let t0 = procfs::monotonic_ns();
        sender.writer.send(OP_TEXT, &buf)?;
        sender.flush()?;
        let deadline = Instant::now() + LIMIT;
        let mut last = 0;
        let mut reported = 0;
        while reported < workers || self_arrival.is_none() {
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "broadcast {seq}: {reported} of {workers} workers and {} the sender got it",
                    if self_arrival.is_some() { "" } else { "not" }
                )));
            }
            pump(&mut poll, &mut sender, &mut self_arrival, &mut next)?;
            while reported < workers {
                let Some((w, line)) = fleet.next_line(Instant::now())? else {
                    break;
                };
                let ns = line
                    .strip_prefix(&format!("got {seq} "))
                    .and_then(|ns| ns.parse::<u64>().ok())
                    .ok_or_else(|| {
                        Error::Check(format!(
                            "worker {w}: {line:?} while waiting for broadcast {seq}"
                        ))
                    })?;
                last = last.max(ns);
                reported += 1;
            }
        }
        last = last.max(self_arrival.unwrap_or(0));
        latencies.push(last.saturating_sub(t0) as f64 / 1e6);
    }
    let cpu1 = args.target.pid.map(procfs::cpu_ns).transpose()?;
    sender.close();
    sender.flush()?;
    fleet.quit()?;

    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let cpu_ms = match (cpu0, cpu1) {
        (Some(c0), Some(c1)) => format!("{:.3}", (c1 - c0) as f64 / 1e6 / args.messages as f64),
        _ => "nan".into(),
    };
    eprintln!(
        "broadcast: {} B to {} conns: median {median:.2} ms (min {:.2}, max {:.2}) until the last has it; server CPU {cpu_ms} ms per broadcast",
        args.size,
        args.conns,
        sorted[0],
        sorted[sorted.len() - 1],
    );
    println!(
        "{}",
        result_line(&[
            ("scenario", "broadcast".into()),
            ("conns", args.conns.to_string()),
            ("size", args.size.to_string()),
            ("median_ms", format!("{median:.3}")),
            ("max_ms", format!("{:.3}", sorted[sorted.len() - 1])),
            ("cpu_ms_per_broadcast", cpu_ms),
            ("checked", (args.conns as u64 * args.messages).to_string()),
        ])
    );
    Ok(())
}
