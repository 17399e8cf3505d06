//! `--workers N`: N single-threaded pawl processes on one port.
//!
//! Each worker is this same binary, run again with `PAWL_WORKER` set; it
//! binds its own listening socket with `SO_REUSEPORT`, so the kernel spreads
//! new connections over the workers and each worker is a full, independent
//! reactor. The supervisor (the process the operator started) serves no
//! connections: it keeps the port reserved, restarts a worker that dies
//! (backing off when one keeps dying), and turns SIGTERM/SIGINT into a
//! graceful stop of every worker, exiting 0 once all are gone.
//!
//! Workers share no memory. Topics (`/broadcast`, `POST /publish`) cross
//! them through `--redis` when it is given, and otherwise through the
//! supervisor's relay (`relay.rs`), whose address the workers get in
//! their environment.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use log::{error, info, warn};
use pawl::{App, Error, HttpRequest, HttpResponse};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use socket2::{Domain, Protocol, Socket, Type};

/// Set in a worker's environment to its index (0-based).
const WORKER_ENV: &str = "PAWL_WORKER";
/// Set in a worker's environment to the address to bind (port 0 resolved).
const ADDR_ENV: &str = "PAWL_WORKER_ADDR";
/// Set in a worker's environment to the supervisor's relay, when topics
/// cross workers through it rather than through `--redis`.
const RELAY_ENV: &str = "PAWL_WORKER_RELAY";

/// How often the supervisor looks at its children and signals.
const POLL: Duration = Duration::from_millis(50);
/// First restart delay of a worker that died; doubles per quick death.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A worker that ran this long before dying was healthy: restart it at
/// once and forget earlier deaths.
const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// The index of this process if it is a worker.
pub fn worker_index() -> Option<usize> {
    std::env::var(WORKER_ENV).ok()?.parse().ok()
}

/// The supervisor's relay, if this is a worker of one that runs it.
pub fn relay_url() -> Option<String> {
    worker_index()?;
    std::env::var(RELAY_ENV).ok()
}

/// The app for this process: a worker listens on its own `SO_REUSEPORT`
/// socket; a single process binds `host:port` as usual.
pub fn app(host: &str, port: u16) -> pawl::Result<App> {
    let Some(index) = worker_index() else {
        return Ok(App::new(host, port));
    };
    info!("worker {index}, pid {}", std::process::id());
    // Stop with the supervisor even if it is killed with SIGKILL.
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    let addr: SocketAddr = std::env::var(ADDR_ENV)
        .ok()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| Error::Config(format!("worker without a valid {ADDR_ENV}")))?;
    let listener = reuseport_listener(addr, true)
        .map_err(|e| Error::Config(format!("worker cannot listen on {addr}: {e}")))?;
    Ok(App::from_listener(listener))
}

/// `GET /health`: `ok pid N`, so a client (or a test) can tell which
/// process served it.
pub fn health(_: &HttpRequest) -> HttpResponse {
    HttpResponse::text(200, format!("ok pid {}\n", std::process::id()))
}

/// A TCP socket bound to `addr` with `SO_REUSEPORT`, listening if `listen`.
fn reuseport_listener(addr: SocketAddr, listen: bool) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    if listen {
        socket.listen(1024)?;
    }
    Ok(socket.into())
}

/// One worker slot: the running child, or when to start the next one.
struct Slot {
    child: Option<Child>,
    started: Instant,
    restart_at: Option<Instant>,
    backoff: Duration,
}

/// Runs `count` workers until SIGTERM or SIGINT; `Ok` once all exited.
/// `relay` is the URL of the supervisor's relay for topics, if it runs one.
pub fn supervise(host: &str, port: u16, count: usize, relay: Option<String>) -> pawl::Result<()> {
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Config(format!("cannot resolve {host}:{port}: {e}")))?
        .next()
        .ok_or_else(|| Error::Config(format!("{host}:{port} resolves to no address")))?;
    // Bound, not listening: it takes no connections, but it fixes the port
    // (port 0 becomes a real one) and holds it between worker restarts.
    let reserved = reuseport_listener(addr, false)
        .map_err(|e| Error::Config(format!("cannot bind {addr}: {e}")))?;
    let addr = reserved.local_addr()?;
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    let exe = std::env::current_exe()?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    info!(
        "pawl supervisor (pid {}): {count} workers on {addr}",
        std::process::id()
    );

    let spawn = |index: usize| -> std::io::Result<Child> {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(&exe);
        if let Some(relay) = &relay {
            command.env(RELAY_ENV, relay);
        }
        let child = command
            .args(&args)
            .env(WORKER_ENV, index.to_string())
            .env(ADDR_ENV, addr.to_string())
            // Own process group: a terminal's Ctrl-C reaches the supervisor
            // only, which then stops each worker once, gracefully (a second
            // signal would make a worker stop at once).
            .process_group(0)
            .spawn()?;
        info!("worker {index} started, pid {}", child.id());
        Ok(child)
    };

    let now = Instant::now();
    let mut slots: Vec<Slot> = (0..count)
        .map(|_| Slot {
            child: None,
            started: now,
            restart_at: Some(now),
            backoff: BACKOFF_MIN,
        })
        .collect();
    let mut stopping = false;
    loop {
        for signal in signals.pending() {
            let name = if signal == SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            };
            info!("{name}: stopping {count} workers");
            stopping = true;
            for slot in &mut slots {
                slot.restart_at = None;
                if let Some(child) = &slot.child {
                    signal_child(child, libc::SIGTERM);
                }
            }
        }
        let now = Instant::now();
        for (index, slot) in slots.iter_mut().enumerate() {
            if let Some(child) = &mut slot.child {
                match child.try_wait() {
                    Ok(None) => continue,
                    Ok(Some(status)) => {
                        slot.child = None;
                        if !stopping {
                            schedule_restart(index, slot, status, now);
                        }
                    }
                    Err(e) => {
                        error!("worker {index}: wait failed: {e}");
                        continue;
                    }
                }
            }
            if !stopping && slot.restart_at.is_some_and(|at| at <= now) {
                match spawn(index) {
                    Ok(child) => {
                        slot.child = Some(child);
                        slot.started = now;
                        slot.restart_at = None;
                    }
                    Err(e) => {
                        error!("worker {index}: cannot start: {e}");
                        slot.restart_at = Some(now + slot.backoff);
                        slot.backoff = (slot.backoff * 2).min(BACKOFF_MAX);
                    }
                }
            }
        }
        if stopping && slots.iter().all(|s| s.child.is_none()) {
            info!("all workers stopped");
            drop(reserved);
            return Ok(());
        }
        std::thread::sleep(POLL);
    }
}

fn schedule_restart(index: usize, slot: &mut Slot, status: ExitStatus, now: Instant) {
    if now.duration_since(slot.started) >= HEALTHY_RUN {
        slot.backoff = BACKOFF_MIN;
        slot.restart_at = Some(now);
    } else {
        slot.restart_at = Some(now + slot.backoff);
        slot.backoff = (slot.backoff * 2).min(BACKOFF_MAX);
    }
    let delay = slot
        .restart_at
        .map_or(Duration::ZERO, |at| at.duration_since(now));
    warn!("worker {index} exited ({status}); restarting in {delay:?}");
}

fn signal_child(child: &Child, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill only sends a signal; the child is ours and not yet
    // reaped, so the pid cannot name another process.
    unsafe {
        libc::kill(pid, signal);
    }
}
