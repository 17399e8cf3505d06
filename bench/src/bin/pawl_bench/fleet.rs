//! Connections spread over child processes, so that no process nears the
//! 20,000 descriptor limit, and over source addresses, so that no source
//! runs out of ephemeral ports.
//!
//! The parent starts `pawl_bench worker` children and talks to them in
//! lines: a worker prints `ready` once all its connections are upgraded,
//! answers `echo` (one message per connection, each reply checked) with
//! `echoed`, prints `got SEQ NS` once every one of its connections has
//! broadcast message SEQ (NS: CLOCK_MONOTONIC of the last arrival), and
//! answers `quit` with `closed` after a clean close of every connection.
//! With several publishers (`--publishers`), `got` lines are about the
//! first publisher's messages; `expect N` asks for `done NS` once every
//! connection has N messages in all (NS: the last arrival), and more than
//! N is an error.
//! A worker that fails prints `error ...` and exits non-zero.
//!
//! With `--deflate` a worker's connections offer permessage-deflate; its
//! `echo` message is then compressed with one compressor per process that
//! starts afresh at every message (RFC 7692 lets any sender do so, and a
//! window kept per connection would cost the client gigabytes at 19,000
//! connections), and compressed replies are inflated and checked.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

use crate::conn::{Event, Phase, WsConn};
use crate::deflate::Deflater;
use crate::tally::Tally;
use crate::wire::{OP_TEXT, Payloads};
use crate::{Error, Target, procfs};

/// Connection id that marks the broadcast sender's payloads.
pub const SENDER: u32 = u32::MAX;
/// Handshakes a worker keeps in progress while opening; more would only
/// overflow the server's listen backlog.
const OPENING: usize = 128;
const STDIN: Token = Token(usize::MAX);

#[derive(clap::Args, Debug)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub target: Target,
    #[arg(long)]
    pub conns: usize,
    /// Id of this worker's first connection (ids are global).
    #[arg(long, default_value_t = 0)]
    pub first_id: usize,
    /// Broadcast payload size; incoming messages are checked against it.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds allowed for opening all connections.
    #[arg(long, default_value_t = 120)]
    pub open_secs: u64,
    /// Publishers whose messages arrive (see `tally.rs`).
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    #[command(flatten)]
    pub options: FleetOptions,
}

/// How a fleet's connections talk, beyond the broadcast size.
#[derive(clap::Args, Debug, Clone)]
pub struct FleetOptions {
    /// Offer permessage-deflate and speak it where the server agrees.
    #[arg(long)]
    pub deflate: bool,
    /// Size of the one message each connection echoes on `echo`.
    #[arg(long, default_value_t = 32)]
    pub echo_size: usize,
    /// JSON-like text for the echo message instead of the alphabet.
    #[arg(long)]
    pub json: bool,
}

impl Default for FleetOptions {
    fn default() -> Self {
        FleetOptions {
            deflate: false,
            echo_size: 32,
            json: false,
        }
    }
}

impl FleetOptions {
    fn to_args(&self) -> Vec<String> {
        let mut args = vec!["--echo-size".to_owned(), self.echo_size.to_string()];
        if self.deflate {
            args.push("--deflate".into());
        }
        if self.json {
            args.push("--json".into());
        }
        args
    }
}

struct Member {
    conn: WsConn,
    /// What arrived from each publisher.
    tally: Tally,
}

pub fn worker(args: &WorkerArgs) -> Result<(), Error> {
    let result = run_worker(args);
    if let Err(e) = &result {
        println!("error {e}");
    }
    result
}

fn run_worker(args: &WorkerArgs) -> Result<(), Error> {
    let (server, path) = args.target.parse()?;
    let payloads = Payloads::new(args.size);
    let opts = &args.options;
    let echo_payloads = if opts.json {
        Payloads::json(opts.echo_size)
    } else {
        Payloads::new(opts.echo_size)
    };
    // One compressor per client window the servers asked for.
    let mut deflaters: Vec<(Option<u8>, Deflater)> = Vec::new();
    let mut poll = Poll::new()?;
    let stdin = std::io::stdin();
    set_nonblocking(stdin.as_raw_fd())?;
    poll.registry()
        .register(&mut SourceFd(&stdin.as_raw_fd()), STDIN, Interest::READABLE)?;

    let mut members: Vec<Member> = Vec::with_capacity(args.conns);
    let mut upgraded = 0;
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; 64 * 1024];
    let mut buf = Vec::new();
    let mut commands = String::new();
    // Per broadcast sequence number: members that have it, last arrival.
    let mut arrivals: Vec<(usize, u64)> = Vec::new();
    let mut echoing: Option<usize> = None;
    let mut closing = false;
    // `expect N`: messages every member must get; members that have them.
    let mut expected: Option<u64> = None;
    let mut complete = 0;
    let mut last_arrival = 0;
    let open_deadline = Instant::now() + Duration::from_secs(args.open_secs);
    let mut close_deadline = None;

    loop {
        while members.len() < args.conns && members.len() - upgraded < OPENING {
            let i = members.len();
            let id = args.first_id + i;
            let conn = WsConn::connect(
                poll.registry(),
                Token(i),
                server,
                args.target.source(id),
                &path,
                id as u64,
                opts.deflate,
            )?;
            members.push(Member {
                conn,
                tally: Tally::new(args.publishers),
            });
        }
        if upgraded < args.conns && Instant::now() > open_deadline {
            return Err(Error::Timeout(format!(
                "only {upgraded} of {} connections upgraded",
                args.conns
            )));
        }
        if close_deadline.is_some_and(|d| Instant::now() > d) {
            return Err(Error::Timeout(
                "server did not answer every close frame".into(),
            ));
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            if event.token() == STDIN {
                read_commands(&mut commands)?;
                while let Some(end) = commands.find('\n') {
                    let command: String = commands.drain(..=end).collect();
                    match command.trim() {
                        "echo" => {
                            for (i, m) in members.iter_mut().enumerate() {
                                echo_payloads.build((args.first_id + i) as u32, 0, &mut buf);
                                match m.conn.writer.agreed {
                                    Some(agreed) => {
                                        let bits = agreed.client_max_window_bits;
                                        let at = match deflaters.iter().position(|d| d.0 == bits) {
                                            Some(at) => at,
                                            None => {
                                                deflaters
                                                    .push((bits, Deflater::new(&agreed, false)));
                                                deflaters.len() - 1
                                            }
                                        };
                                        let z = deflaters[at].1.compress(&buf)?;
                                        m.conn.writer.send_compressed(OP_TEXT, z);
                                    }
                                    None => m.conn.writer.send(OP_TEXT, &buf)?,
                                }
                                m.conn.flush()?;
                            }
                            echoing = Some(members.len());
                        }
                        command if command.starts_with("expect ") => {
                            let n: u64 = command["expect ".len()..]
                                .parse()
                                .map_err(|_| Error::Usage(format!("bad {command:?}")))?;
                            if let Some(m) = members.iter().find(|m| m.tally.total > n) {
                                return Err(Error::Check(format!(
                                    "a connection got {} messages, {n} were sent",
                                    m.tally.total
                                )));
                            }
                            complete = members.iter().filter(|m| m.tally.total == n).count();
                            expected = Some(n);
                            if complete == args.conns {
                                println!("done {last_arrival}");
                            }
                        }
                        "quit" => {
                            for m in members.iter_mut() {
                                m.conn.close();
                                m.conn.flush()?;
                            }
                            closing = true;
                            close_deadline = Some(Instant::now() + Duration::from_secs(20));
                        }
                        other => return Err(Error::Usage(format!("unknown command {other:?}"))),
                    }
                }
                continue;
            }
            let i = event.token().0;
            let id = (args.first_id + i) as u32;
            let member = &mut members[i];
            let was_open = member.conn.phase() == Phase::Open;
            let tally = &mut member.tally;
            member.conn.ready(&mut scratch, &mut |ev, _| match ev {
                Event::Upgraded => Ok(()),
                Event::Message(_, got) if echoing.is_some() && path != "/chat" => {
                    if !echo_payloads.matches(id, 0, got) {
                        return Err(Error::Check(format!("connection {id}: wrong echo")));
                    }
                    echoing = echoing.map(|n| n - 1);
                    Ok(())
                }
                Event::Message(op, got) => {
                    if op != OP_TEXT {
                        return Err(Error::Check(format!("connection {id}: not text")));
                    }
                    let (publisher, seq) = tally
                        .check(&payloads, got)
                        .map_err(|e| Error::Check(format!("connection {id}: {e}")))?;
                    if let Some(n) = expected {
                        last_arrival = procfs::monotonic_ns();
                        if tally.total > n {
                            return Err(Error::Check(format!(
                                "connection {id}: more than the {n} messages sent"
                            )));
                        }
                        if tally.total == n {
                            complete += 1;
                            if complete == args.conns {
                                println!("done {last_arrival}");
                            }
                        }
                    }
                    if publisher != 0 {
                        return Ok(());
                    }
                    let seq = seq as usize;
                    if arrivals.len() <= seq {
                        arrivals.resize(seq + 1, (0, 0));
                    }
                    arrivals[seq].0 += 1;
                    if arrivals[seq].0 == args.conns {
                        arrivals[seq].1 = procfs::monotonic_ns();
                        println!("got {seq} {}", arrivals[seq].1);
                    }
                    Ok(())
                }
                Event::Close(_) if closing => Ok(()),
                Event::Close(code) => Err(Error::Protocol(format!(
                    "connection {id}: server closed with {code:?}"
                ))),
            })?;
            if !was_open && member.conn.phase() == Phase::Open {
                upgraded += 1;
                if upgraded == args.conns {
                    println!("ready");
                }
            }
        }
        if echoing == Some(0) {
            echoing = None;
            println!("echoed");
        }
        if closing && members.iter().all(|m| m.conn.phase() == Phase::Closed) {
            println!("closed");
            return Ok(());
        }
    }
}

fn read_commands(commands: &mut String) -> Result<(), Error> {
    let mut chunk = [0u8; 256];
    loop {
        match std::io::stdin().lock().read(&mut chunk) {
            Ok(0) => return Err(Error::Protocol("parent went away".into())),
            Ok(n) => commands.push_str(&String::from_utf8_lossy(&chunk[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::Io(e)),
        }
    }
}

fn set_nonblocking(fd: i32) -> Result<(), Error> {
    // SAFETY: fcntl on an open descriptor with integer arguments.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) >= 0
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Io(std::io::Error::last_os_error()))
    }
}

/// The parent's handle on its workers.
pub struct Fleet {
    children: Vec<(Child, ChildStdin)>,
    lines: mpsc::Receiver<(usize, Option<String>)>,
}

impl Fleet {
    /// Starts enough workers to hold `conns` connections, at most
    /// `per_process` each, with global ids from `first_id`.
    pub fn spawn(
        target: &Target,
        conns: usize,
        per_process: usize,
        size: usize,
        first_id: usize,
        options: &FleetOptions,
    ) -> Result<Fleet, Error> {
        Fleet::spawn_for(target, conns, per_process, size, first_id, 1, options)
    }

    /// Like [`Fleet::spawn`], with messages from `publishers` publishers.
    pub fn spawn_for(
        target: &Target,
        conns: usize,
        per_process: usize,
        size: usize,
        first_id: usize,
        publishers: usize,
        options: &FleetOptions,
    ) -> Result<Fleet, Error> {
        let procs = conns.div_ceil(per_process.max(1)).max(1);
        let exe = std::env::current_exe()?;
        let (tx, lines) = mpsc::channel();
        let mut children = Vec::with_capacity(procs);
        for w in 0..procs {
            let share = conns / procs + usize::from(w < conns % procs);
            let first = first_id + w * (conns / procs) + w.min(conns % procs);
            let mut command = Command::new(&exe);
            command
                .args([
                    "worker",
                    "--url",
                    &target.url,
                    "--sources",
                    &target.sources.to_string(),
                ])
                .args([
                    "--conns",
                    &share.to_string(),
                    "--first-id",
                    &first.to_string(),
                ])
                .args(["--size", &size.to_string()])
                .args(["--publishers", &publishers.to_string()])
                .args(options.to_args())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            let mut child = command.spawn()?;
            let stdin = child.stdin.take().unwrap();
            let stdout = child.stdout.take().unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((w, Some(line))).is_err() {
                        return;
                    }
                }
                let _ = tx.send((w, None));
            });
            children.push((child, stdin));
        }
        Ok(Fleet { children, lines })
    }

    pub fn len(&self) -> usize {
        self.children.len()
    }

    /// Sends `command` to every worker.
    pub fn command(&mut self, command: &str) -> Result<(), Error> {
        for (_, stdin) in &mut self.children {
            writeln!(stdin, "{command}")?;
            stdin.flush()?;
        }
        Ok(())
    }

    /// Waits for the next line from any worker until `deadline`; `None` on
    /// timeout. An `error` line or a worker gone quiet is an error.
    pub fn next_line(&self, deadline: Instant) -> Result<Option<(usize, String)>, Error> {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(wait) {
            Ok((w, Some(line))) if line.starts_with("error") => {
                Err(Error::Check(format!("worker {w}: {line}")))
            }
            Ok((w, Some(line))) => Ok(Some((w, line))),
            Ok((w, None)) => Err(Error::Check(format!("worker {w} exited early"))),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                Err(Error::Check("all workers gone".into()))
            }
        }
    }

    /// Waits until every worker has printed `line`.
    pub fn wait_all(&self, line: &str, within: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + within;
        let mut seen = vec![false; self.len()];
        while seen.iter().any(|s| !s) {
            match self.next_line(deadline)? {
                Some((w, got)) if got == line => seen[w] = true,
                Some((w, got)) => {
                    return Err(Error::Check(format!(
                        "worker {w}: {got:?} while waiting for {line:?}"
                    )));
                }
                None => {
                    return Err(Error::Timeout(format!(
                        "workers did not report {line:?} within {within:?}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Closes every connection cleanly and reaps the workers.
    pub fn quit(mut self) -> Result<(), Error> {
        self.command("quit")?;
        // A worker's end of output may overtake another's "closed" line:
        // the end counts as failure only before its own "closed".
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut closed = vec![false; self.len()];
        while closed.iter().any(|c| !c) {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(wait) {
                Ok((w, Some(line))) if line == "closed" => closed[w] = true,
                Ok((w, None)) if closed[w] => {}
                Ok((w, other)) => {
                    return Err(Error::Check(format!("worker {w}: {other:?} while closing")));
                }
                Err(_) => return Err(Error::Timeout("workers did not close in 30 s".into())),
            }
        }
        for (child, _) in &mut self.children {
            let status = child.wait()?;
            if !status.success() {
                return Err(Error::Check(format!("worker exited with {status}")));
            }
        }
        Ok(())
    }
}

impl Drop for Fleet {
    /// A run that failed leaves no workers behind.
    fn drop(&mut self) {
        for (child, _) in &mut self.children {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
