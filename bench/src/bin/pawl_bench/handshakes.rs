//! Handshakes: `--concurrency` connections at a time, each doing connect,
//! upgrade (101 and accept key checked), close frame, the server's close
//! frame, then a reset so the client keeps no TIME_WAIT entries.

use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::conn::{Event, Phase, WsConn};
use crate::{Error, Target, procfs, result_line};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Handshakes in progress at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
}

/// Longest a single connect-upgrade-close may take.
const LIMIT: Duration = Duration::from_secs(5);

pub fn run(args: &Args) -> Result<(), Error> {
    let (server, path) = args.target.parse()?;
    let mut poll = Poll::new()?;
    let mut seed: u64 = 0;
    let mut open = |poll: &Poll, slot: usize| -> Result<(WsConn, Instant), Error> {
        seed += 1;
        let source = args.target.source(seed as usize);
        let conn = WsConn::connect(
            poll.registry(),
            Token(slot),
            server,
            source,
            &path,
            seed,
            false,
        )?;
        Ok((conn, Instant::now()))
    };
    let cpu0 = args.target.pid.map(procfs::cpu_ns).transpose()?;
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(args.secs);
    let mut slots: Vec<Option<(WsConn, Instant)>> = Vec::with_capacity(args.concurrency);
    for slot in 0..args.concurrency {
        slots.push(Some(open(&poll, slot)?));
    }
    let mut done: u64 = 0;
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 16 * 1024];
    while slots.iter().any(Option::is_some) {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for event in events.iter() {
            let slot = event.token().0;
            let Some((conn, _)) = slots[slot].as_mut() else {
                continue;
            };
            conn.ready(&mut scratch, &mut |ev, _| match ev {
                Event::Upgraded | Event::Close(_) => Ok(()),
                Event::Message(..) => Err(Error::Protocol("unexpected message".into())),
            })?;
            match conn.phase() {
                Phase::Open => {
                    conn.close();
                    conn.flush()?;
                }
                Phase::Closed => {
                    done += 1;
                    let (conn, _) = slots[slot].take().unwrap();
                    conn.abort();
                    if Instant::now() < end {
                        slots[slot] = Some(open(&poll, slot)?);
                    }
                }
                _ => {}
            }
        }
        let now = Instant::now();
        if let Some((conn, _)) = slots.iter().flatten().find(|(_, t)| now - *t > LIMIT) {
            return Err(Error::Timeout(format!(
                "a handshake stuck in {:?} for {LIMIT:?}",
                conn.phase()
            )));
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu1 = args.target.pid.map(procfs::cpu_ns).transpose()?;
    let rate = done as f64 / secs;
    let cpu_us = match (cpu0, cpu1) {
        (Some(c0), Some(c1)) if done > 0 => format!("{:.2}", (c1 - c0) as f64 / 1e3 / done as f64),
        _ => "nan".into(),
    };
    eprintln!(
        "handshakes: {done} in {secs:.2} s = {rate:.0}/s, server CPU {cpu_us} us each ({} at a time)",
        args.concurrency
    );
    println!(
        "{}",
        result_line(&[
            ("scenario", "handshakes".into()),
            ("handshakes_per_s", format!("{rate:.0}")),
            ("cpu_us_per_handshake", cpu_us),
            ("checked", done.to_string()),
        ])
    );
    Ok(())
}
