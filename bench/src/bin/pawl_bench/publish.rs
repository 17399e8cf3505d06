//! Publish: `--conns` subscribers of one topic (in fleet processes, over
//! several source addresses) and `--publishers` publishing connections of
//! the same topic (here), against one server or `--workers N` sharing a
//! broker; every message is checked by every subscriber.
//!
//! 1. Latency: `--messages` times, one message from the first publisher,
//!    timed from the send until the last subscriber has it.
//! 2. Sustained: for `--secs`, every publisher sends its next message as
//!    soon as its previous one has come back to it; then the run waits
//!    until every subscriber has every message. Messages per second are
//!    the messages sent over the time from the first send to the last
//!    arrival anywhere, so a backlog that builds up is paid for.
//!
//! CPU time is read for every `--pid` (each worker) and `--redis-pid`.

use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::conn::{Event, Phase, WsConn};
use crate::fleet::{Fleet, FleetOptions, SENDER};
use crate::tally::Tally;
use crate::wire::{OP_TEXT, Payloads};
use crate::{Error, Target, procfs, result_line};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Subscribers, besides the publishers (which subscribe too).
    #[arg(long, default_value_t = 100_000)]
    pub conns: usize,
    #[arg(long, default_value_t = 5_000)]
    pub per_process: usize,
    #[arg(long, default_value_t = 100)]
    pub publishers: usize,
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Messages timed one at a time.
    #[arg(long, default_value_t = 5)]
    pub messages: u64,
    /// Quiet milliseconds before each timed message.
    #[arg(long, default_value_t = 200)]
    pub gap_ms: u64,
    /// Seconds of sustained publishing.
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// Every process that serves (each worker); repeat the flag.
    #[arg(long = "worker-pid")]
    pub worker_pids: Vec<u32>,
    /// The Redis server, for its CPU time.
    #[arg(long)]
    pub redis_pid: Option<u32>,
}

const LIMIT: Duration = Duration::from_secs(60);

/// The publishing connections, each a subscriber too.
struct Publishers {
    poll: Poll,
    events: Events,
    conns: Vec<WsConn>,
    tallies: Vec<Tally>,
    scratch: Vec<u8>,
    last_arrival: u64,
}

impl Publishers {
    /// Handles what arrived within `wait`.
    fn pump(&mut self, payloads: &Payloads, wait: Duration) -> Result<(), Error> {
        self.poll.poll(&mut self.events, Some(wait))?;
        for event in self.events.iter() {
            let i = event.token().0;
            let tally = &mut self.tallies[i];
            let last = &mut self.last_arrival;
            self.conns[i].ready(&mut self.scratch, &mut |ev, _| match ev {
                Event::Upgraded => Ok(()),
                Event::Message(op, got) if op == OP_TEXT => {
                    tally
                        .check(payloads, got)
                        .map_err(|e| Error::Check(format!("publisher {i}: {e}")))?;
                    *last = procfs::monotonic_ns();
                    Ok(())
                }
                Event::Message(..) => Err(Error::Check(format!("publisher {i}: not text"))),
                Event::Close(code) => Err(Error::Protocol(format!(
                    "publisher {i}: server closed with {code:?}"
                ))),
            })?;
        }
        Ok(())
    }

    /// Publisher `p` has message `seq` of its own back.
    fn has_own(&self, p: usize, sent: u64) -> bool {
        self.tallies[p].next_of(p) >= sent
    }
}

fn cpu(pids: &[u32]) -> Result<Vec<u64>, Error> {
    pids.iter().map(|&pid| procfs::cpu_ns(pid)).collect()
}

pub fn run(args: &Args) -> Result<(), Error> {
    if args.publishers == 0 || args.conns == 0 {
        return Err(Error::Usage(
            "publish needs publishers and subscribers".into(),
        ));
    }
    let (server, path) = args.target.parse()?;
    let payloads = Payloads::new(args.size);
    let mut fleet = Fleet::spawn_for(
        &args.target,
        args.conns,
        args.per_process,
        args.size,
        args.publishers,
        args.publishers,
        &FleetOptions::default(),
    )?;
    let processes = fleet.len();

    let poll = Poll::new()?;
    let mut conns = Vec::with_capacity(args.publishers);
    for p in 0..args.publishers {
        conns.push(WsConn::connect(
            poll.registry(),
            Token(p),
            server,
            args.target.source(p),
            &path,
            p as u64,
            false,
        )?);
    }
    let mut publishers = Publishers {
        poll,
        events: Events::with_capacity(256),
        conns,
        tallies: (0..args.publishers)
            .map(|_| Tally::new(args.publishers))
            .collect(),
        scratch: vec![0u8; 64 << 10],
        last_arrival: 0,
    };
    let deadline = Instant::now() + LIMIT;
    while publishers.conns.iter().any(|c| c.phase() != Phase::Open) {
        if Instant::now() > deadline {
            return Err(Error::Timeout("publishers did not upgrade".into()));
        }
        publishers.pump(&payloads, Duration::from_millis(1))?;
    }
    fleet.wait_all("ready", Duration::from_secs(300))?;
    // Every worker asks the broker for the topic when its first subscriber
    // arrives, long before the last of them is upgraded; a moment more for
    // the broker to have every request.
    std::thread::sleep(Duration::from_millis(500));

    // 1. One message at a time, from publisher 0.
    let cpu0 = cpu(&args.worker_pids)?;
    let mut latencies = Vec::new();
    let mut buf = Vec::new();
    let mut sent = vec![0u64; args.publishers];
    for seq in 0..args.messages {
        std::thread::sleep(Duration::from_millis(args.gap_ms));
        payloads.build(SENDER, seq, &mut buf);
        let t0 = procfs::monotonic_ns();
        publishers.conns[0].writer.send(OP_TEXT, &buf)?;
        publishers.conns[0].flush()?;
        sent[0] += 1;
        let deadline = Instant::now() + LIMIT;
        let mut last = 0;
        let mut reported = 0;
        let all_here = |p: &Publishers| p.tallies.iter().all(|t| t.next_of(0) > seq);
        while reported < processes || !all_here(&publishers) {
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!(
                    "message {seq}: {reported} of {processes} processes had it"
                )));
            }
            publishers.pump(&payloads, Duration::from_millis(1))?;
            while reported < processes {
                let Some((w, line)) = fleet.next_line(Instant::now())? else {
                    break;
                };
                let ns = line
                    .strip_prefix(&format!("got {seq} "))
                    .and_then(|ns| ns.parse::<u64>().ok())
                    .ok_or_else(|| Error::Check(format!("process {w}: {line:?} for {seq}")))?;
                last = last.max(ns);
                reported += 1;
            }
        }
        last = last.max(publishers.last_arrival);
        latencies.push(last.saturating_sub(t0) as f64 / 1e6);
    }
    let cpu1 = cpu(&args.worker_pids)?;

    // 2. Every publisher, as fast as its own messages come back.
    let redis0 = args.redis_pid.map(procfs::cpu_ns).transpose()?;
    let start = procfs::monotonic_ns();
    let until = Instant::now() + Duration::from_secs(args.secs);
    let hard_stop = until + LIMIT;
    while Instant::now() < until {
        for (p, sent) in sent.iter_mut().enumerate() {
            if publishers.has_own(p, *sent) {
                payloads.build(SENDER - p as u32, *sent, &mut buf);
                publishers.conns[p].writer.send(OP_TEXT, &buf)?;
                publishers.conns[p].flush()?;
                *sent += 1;
            }
        }
        publishers.pump(&payloads, Duration::from_millis(1))?;
        // `got` lines about publisher 0's messages: not needed here.
        while fleet.next_line(Instant::now())?.is_some() {}
    }
    let total: u64 = sent.iter().sum();
    fleet.command(&format!("expect {total}"))?;
    let mut done = 0;
    let mut last = 0;
    while done < processes || publishers.tallies.iter().any(|t| t.total < total) {
        if Instant::now() > hard_stop {
            return Err(Error::Timeout(format!(
                "{done} of {processes} processes had all {total} messages after {LIMIT:?}"
            )));
        }
        publishers.pump(&payloads, Duration::from_millis(1))?;
        while let Some((w, line)) = fleet.next_line(Instant::now())? {
            if line.starts_with("got ") {
                continue;
            }
            let ns = line
                .strip_prefix("done ")
                .and_then(|ns| ns.parse::<u64>().ok())
                .ok_or_else(|| Error::Check(format!("process {w}: {line:?} at the end")))?;
            last = last.max(ns);
            done += 1;
        }
    }
    if let Some(t) = publishers.tallies.iter().find(|t| t.total > total) {
        return Err(Error::Check(format!(
            "a publisher got {} of {total}",
            t.total
        )));
    }
    last = last.max(publishers.last_arrival);
    let cpu2 = cpu(&args.worker_pids)?;
    let redis1 = args.redis_pid.map(procfs::cpu_ns).transpose()?;
    for conn in &mut publishers.conns {
        conn.close();
        conn.flush()?;
    }
    fleet.quit()?;

    let subscribers = (args.conns + args.publishers) as u64;
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
    let max = sorted.last().copied().unwrap_or(f64::NAN);
    let secs = last.saturating_sub(start) as f64 / 1e9;
    let per_s = total as f64 / secs;
    let delivered = (total * subscribers) as f64;
    let timed = (args.messages * subscribers) as f64;
    let spent = |a: &[u64], b: &[u64]| -> Vec<f64> {
        a.iter()
            .zip(b)
            .map(|(x, y)| y.saturating_sub(*x) as f64)
            .collect()
    };
    let (timed_cpu, sustained_cpu) = (spent(&cpu0, &cpu1), spent(&cpu1, &cpu2));
    let workers = args.worker_pids.len().max(1) as f64;
    // Per delivered message: the workers' CPU over every delivery.
    let us_per_delivery = sustained_cpu.iter().sum::<f64>() / 1e3 / delivered;
    let timed_us = timed_cpu.iter().sum::<f64>() / 1e3 / timed;
    let per_worker: Vec<String> = sustained_cpu
        .iter()
        .map(|ns| format!("{:.0}", ns / 1e9 / secs * 100.0))
        .collect();
    let redis_us = match (redis0, redis1) {
        (Some(a), Some(b)) => format!("{:.1}", (b - a) as f64 / 1e3 / total as f64),
        _ => "nan".into(),
    };
    eprintln!(
        "publish: {} B to {subscribers} subscribers over {} workers: latency median {median:.1} ms \
         (max {max:.1}) until the last has it; sustained {per_s:.1} messages/s from {} publishers \
         ({:.0} deliveries/s, {total} messages in {secs:.2} s); worker CPU {us_per_delivery:.3} µs per \
         delivered message ({timed_us:.3} µs timed one at a time), each worker busy {}%; \
         redis {redis_us} µs per message",
        args.size,
        workers,
        args.publishers,
        per_s * subscribers as f64,
        per_worker.join("/"),
    );
    println!(
        "{}",
        result_line(&[
            ("scenario", "publish".into()),
            ("subscribers", subscribers.to_string()),
            ("workers", args.worker_pids.len().to_string()),
            ("publishers", args.publishers.to_string()),
            ("size", args.size.to_string()),
            ("median_ms", format!("{median:.3}")),
            ("max_ms", format!("{max:.3}")),
            ("msgs_per_s", format!("{per_s:.2}")),
            (
                "deliveries_per_s",
                format!("{:.0}", per_s * subscribers as f64)
            ),
            ("cpu_us_per_delivery", format!("{us_per_delivery:.4}")),
            ("cpu_us_per_delivery_timed", format!("{timed_us:.4}")),
            ("worker_busy_pct", per_worker.join("/")),
            ("redis_cpu_us_per_msg", redis_us),
            ("checked", (delivered as u64 + timed as u64).to_string()),
        ])
    );
    Ok(())
}
