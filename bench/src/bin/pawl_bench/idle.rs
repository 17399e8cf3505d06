//! Idle memory: open `--conns` upgraded connections from several worker
//! processes and source addresses, let the server settle, and read its RSS;
//! then one checked echo per connection (proof that all are alive) and RSS
//! again, since many servers allocate buffers only on first use. With
//! `--deflate` every connection offers permessage-deflate (the figure is
//! then memory per connection with deflate negotiated) and the one echo is
//! compressed; `--echo-size` and `--json` choose that message. A third
//! reading, `--rest-ms` after the echo, shows what a server gives back once
//! its connections are quiet again (pawl's dedicated compression mode frees
//! an idle connection's zlib streams within two sweeps, at most 2 s).

use std::time::{Duration, Instant};

use crate::fleet::{Fleet, FleetOptions};
use crate::{Error, Target, procfs, result_line};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    #[arg(long, default_value_t = 19_000)]
    pub conns: usize,
    /// Connections per worker process (each process must stay well under
    /// the 20,000 descriptor limit).
    #[arg(long, default_value_t = 5_000)]
    pub per_process: usize,
    /// Milliseconds to wait before each RSS reading.
    #[arg(long, default_value_t = 500)]
    pub settle_ms: u64,
    /// Milliseconds after the echo's RSS reading before the last one
    /// (`bytes_per_conn_rested`; the same reading again with 0).
    #[arg(long, default_value_t = 0)]
    pub rest_ms: u64,
    #[command(flatten)]
    pub options: FleetOptions,
}

pub fn run(args: &Args) -> Result<(), Error> {
    let pid = args
        .target
        .pid
        .ok_or_else(|| Error::Usage("idle needs --pid".into()))?;
    let settle = Duration::from_millis(args.settle_ms);
    let rss_before = procfs::rss_bytes(pid)?;
    let start = Instant::now();
    let fleet = Fleet::spawn(
        &args.target,
        args.conns,
        args.per_process,
        32,
        0,
        &args.options,
    )?;
    fleet.wait_all("ready", Duration::from_secs(150))?;
    let open_secs = start.elapsed().as_secs_f64();
    std::thread::sleep(settle);
    let rss_idle = procfs::rss_bytes(pid)?;
    let mut fleet = fleet;
    fleet.command("echo")?;
    fleet.wait_all("echoed", Duration::from_secs(30))?;
    std::thread::sleep(settle);
    let rss_used = procfs::rss_bytes(pid)?;
    std::thread::sleep(Duration::from_millis(args.rest_ms));
    let rss_rested = procfs::rss_bytes(pid)?;
    fleet.quit()?;
    let (server, path) = args.target.parse()?;
    let agreed = crate::conn::probe_extension(server, &path, args.options.deflate)?
        .unwrap_or_else(|| "none".into());

    let per_conn = |rss: u64| (rss as f64 - rss_before as f64) / args.conns as f64;
    eprintln!(
        "idle: deflate {agreed}; {} conns opened in {open_secs:.1} s by {} processes; server RSS {:.1} MiB before, {:.1} MiB idle ({:.0} B/conn), {:.1} MiB after one echo each ({:.0} B/conn), {:.1} MiB {} ms later ({:.0} B/conn)",
        args.conns,
        args.conns.div_ceil(args.per_process),
        rss_before as f64 / 1048576.0,
        rss_idle as f64 / 1048576.0,
        per_conn(rss_idle),
        rss_used as f64 / 1048576.0,
        per_conn(rss_used),
        rss_rested as f64 / 1048576.0,
        args.rest_ms,
        per_conn(rss_rested),
    );
    println!(
        "{}",
        result_line(&[
            ("scenario", "idle".into()),
            ("conns", args.conns.to_string()),
            ("rss_before", rss_before.to_string()),
            ("rss_idle", rss_idle.to_string()),
            ("bytes_per_conn", format!("{:.0}", per_conn(rss_idle))),
            ("bytes_per_conn_used", format!("{:.0}", per_conn(rss_used))),
            (
                "bytes_per_conn_rested",
                format!("{:.0}", per_conn(rss_rested))
            ),
            ("open_secs", format!("{open_secs:.2}")),
            ("deflate", agreed),
        ])
    );
    Ok(())
}
