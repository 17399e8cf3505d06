//! Echo load: `--conns` connections, each keeping `--outstanding` messages
//! of `--size` bytes in flight; every reply must be the next message sent
//! on that connection, byte for byte and with the same opcode. With
//! `--deflate` every connection offers permessage-deflate as a browser
//! does, compresses what it sends once the server agrees, and inflates
//! compressed replies before checking them.

use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::conn::{Event, Phase, WsConn};
use crate::wire::{OP_BINARY, OP_TEXT, Payloads};
use crate::{Error, Target, procfs, result_line};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    #[arg(long, default_value_t = 100)]
    pub conns: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Messages in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub outstanding: u64,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Send binary frames instead of text.
    #[arg(long)]
    pub binary: bool,
    /// JSON-like text payloads (compressible as chat JSON is) instead of
    /// the alphabet.
    #[arg(long)]
    pub json: bool,
    /// Offer permessage-deflate and speak it where the server agrees.
    #[arg(long)]
    pub deflate: bool,
}

/// Longest wait for any progress before the run is declared stalled.
const STALL: Duration = Duration::from_secs(5);

struct Slot {
    conn: WsConn,
    /// Sequence number of the next message to send.
    sent: u64,
    /// Sequence number of the next reply expected.
    echoed: u64,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let (server, path) = args.target.parse()?;
    let opcode = if args.binary { OP_BINARY } else { OP_TEXT };
    let payloads = if args.json {
        Payloads::json(args.size)
    } else {
        Payloads::new(args.size)
    };
    let mut poll = Poll::new()?;
    let mut slots = Vec::with_capacity(args.conns);
    for i in 0..args.conns {
        let conn = WsConn::connect(
            poll.registry(),
            Token(i),
            server,
            args.target.source(i),
            &path,
            i as u64,
            args.deflate,
        )?;
        slots.push(Slot {
            conn,
            sent: 0,
            echoed: 0,
        });
    }
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 256 * 1024];
    let mut buf = Vec::with_capacity(args.size);
    let mut sending = true;
    let mut total: u64 = 0;
    let mut last_progress = Instant::now();
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let measure_to = measure_from + Duration::from_secs_f64(args.secs);
    let mut first: Option<(Instant, u64, Option<u64>)> = None;
    let mut last: Option<(Instant, u64, Option<u64>)> = None;
    let cpu = |pid: Option<u32>| pid.map(procfs::cpu_ns).transpose();

    // Load, then drain: stop sending at `measure_to` and wait for every
    // outstanding reply.
    loop {
        let now = Instant::now();
        if first.is_none() && now >= measure_from {
            first = Some((now, total, cpu(args.target.pid)?));
        }
        if sending && now >= measure_to {
            last = Some((now, total, cpu(args.target.pid)?));
            sending = false;
        }
        if !sending && slots.iter().all(|s| s.echoed == s.sent) {
            break;
        }
        if now - last_progress > STALL {
            let missing: u64 = slots.iter().map(|s| s.sent - s.echoed).sum();
            return Err(Error::Timeout(format!(
                "no reply for {STALL:?}; {missing} messages outstanding"
            )));
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for event in events.iter() {
            let i = event.token().0;
            let slot = &mut slots[i];
            let (sent, echoed) = (&mut slot.sent, &mut slot.echoed);
            slot.conn.ready(&mut scratch, &mut |ev, w| match ev {
                Event::Upgraded => {
                    for _ in 0..args.outstanding {
                        payloads.build(i as u32, *sent, &mut buf);
                        w.send(opcode, &buf)?;
                        *sent += 1;
                    }
                    Ok(())
                }
                Event::Message(op, got) => {
                    if op != opcode || !payloads.matches(i as u32, *echoed, got) {
                        return Err(Error::Check(format!(
                            "connection {i}: the reply to message {} differs from what was sent ({} bytes, opcode {op})",
                            *echoed,
                            got.len()
                        )));
                    }
                    *echoed += 1;
                    total += 1;
                    last_progress = Instant::now();
                    if sending {
                        payloads.build(i as u32, *sent, &mut buf);
                        w.send(opcode, &buf)?;
                        *sent += 1;
                    }
                    Ok(())
                }
                Event::Close(code) => Err(Error::Protocol(format!(
                    "connection {i}: server closed with {code:?} mid-run"
                ))),
            })?;
        }
    }
    let (Some((t0, n0, c0)), Some((t1, n1, c1))) = (first, last) else {
        return Err(Error::Check("run ended before the measured window".into()));
    };
    let open = slots
        .iter()
        .filter(|s| s.conn.phase() == Phase::Open)
        .count();
    if open != args.conns {
        return Err(Error::Check(format!(
            "only {open} of {} connections upgraded",
            args.conns
        )));
    }
    let deflate_conns = slots
        .iter()
        .filter(|s| s.conn.writer.agreed.is_some())
        .count();
    let received = slots.iter().fold((0u64, 0u64, 0u64), |(b, m, z), s| {
        let r = &s.conn.received;
        (b + r.frame_bytes, m + r.messages, z + r.compressed)
    });
    let (frame_bytes, replies, compressed) = received;
    close_all(&mut poll, &mut slots, &mut scratch)?;
    let wire_per_reply = frame_bytes as f64 / replies.max(1) as f64;
    let compressed_pct = 100.0 * compressed as f64 / replies.max(1) as f64;

    let msgs = n1 - n0;
    let rate = msgs as f64 / (t1 - t0).as_secs_f64();
    let cpu_us = match (c0, c1) {
        (Some(c0), Some(c1)) if msgs > 0 => format!("{:.3}", (c1 - c0) as f64 / 1e3 / msgs as f64),
        _ => "nan".into(),
    };
    eprintln!(
        "echo: {} conns x {} outstanding, {} B: {rate:.0} msgs/s, server CPU {cpu_us} us/msg ({msgs} msgs checked in the window, {total} in all); deflate agreed on {deflate_conns} conns, {compressed_pct:.0}% of replies compressed, {wire_per_reply:.1} wire bytes per reply",
        args.conns, args.outstanding, args.size
    );
    println!(
        "{}",
        result_line(&[
            ("scenario", "echo".into()),
            ("size", args.size.to_string()),
            ("conns", args.conns.to_string()),
            ("outstanding", args.outstanding.to_string()),
            ("msgs_per_s", format!("{rate:.0}")),
            ("cpu_us_per_msg", cpu_us),
            ("checked", total.to_string()),
            ("deflate_conns", deflate_conns.to_string()),
            ("compressed_pct", format!("{compressed_pct:.0}")),
            ("wire_bytes_per_reply", format!("{wire_per_reply:.1}")),
        ])
    );
    Ok(())
}

/// Sends close frames on every connection and waits for the server's.
fn close_all(poll: &mut Poll, slots: &mut [Slot], scratch: &mut [u8]) -> Result<(), Error> {
    for slot in slots.iter_mut() {
        slot.conn.close();
        slot.conn.flush()?;
    }
    let deadline = Instant::now() + STALL;
    let mut events = Events::with_capacity(1024);
    while slots.iter().any(|s| s.conn.phase() != Phase::Closed) {
        if Instant::now() > deadline {
            return Err(Error::Timeout(
                "server did not answer the close frames".into(),
            ));
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for event in events.iter() {
            let i = event.token().0;
            slots[i].conn.ready(scratch, &mut |ev, _| match ev {
                Event::Message(..) => {
                    Err(Error::Check(format!("connection {i}: message after close")))
                }
                _ => Ok(()),
            })?;
        }
    }
    Ok(())
}
