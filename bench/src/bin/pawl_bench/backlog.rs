//! A chat backlog on the wire: bytes a client receives for the `pawl`
//! binary's `/chat` room history, with permessage-deflate offered (what a
//! browser does) or not.
//!
//! An observer joins a fresh room, then `--talkers` users join and say
//! `--messages` typical chat messages in turn (each waits until the
//! observer has the previous one, so the order is fixed; 8 talkers stay
//! under the chat's default burst of 20 messages per connection). The
//! observer counts the frame bytes of those messages as they arrive live,
//! one frame each. Then a newcomer joins and counts the frame bytes of its
//! `welcome`, which carries the whole backlog. Every message is checked:
//! the observer must get each text in order, and the welcome must hold all
//! of them in order.

use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use crate::conn::{Event, Phase, WsConn};
use crate::wire::OP_TEXT;
use crate::{Error, Target, result_line};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: Target,
    /// Messages said in the room, all of them in the backlog.
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// Users taking turns to say them (with 8, each says 13 of 100, under
    /// the chat's default burst of 20 with its join).
    #[arg(long, default_value_t = 8)]
    pub talkers: usize,
    /// Offer permessage-deflate and speak it where the server agrees.
    #[arg(long)]
    pub deflate: bool,
}

/// Longest wait for any one step.
const STEP: Duration = Duration::from_secs(10);

const USERS: [(&str, &str, &str); 8] = [
    ("alice", "#e91e63", "on call this week"),
    ("bob", "#3f51b5", "in meetings until 3"),
    ("carol", "#009688", "shipping the release"),
    ("dave", "#ff9800", ""),
    ("erin", "#795548", "reviewing PRs"),
    ("frank", "#607d8b", "out tomorrow"),
    ("grace", "#8bc34a", "coffee first"),
    ("heidi", "#9c27b0", "remote today"),
];

const OPENERS: [&str; 10] = [
    "", "ok ", "hey, ", "lol ", "so ", "hmm, ", "yes! ", "wait, ", "fwiw ", "also ",
];

const BODIES: [&str; 25] = [
    "did anyone look at the deploy logs from last night",
    "the build is green again",
    "I pushed a fix for the login redirect",
    "can someone review my PR before lunch",
    "standup in 5 minutes",
    "who broke the staging database",
    "I think the cache is serving stale pages after the migration",
    "let's move the retro to Thursday",
    "works on my machine",
    "the new dashboard looks great",
    "I'm seeing timeouts on the payments API, anyone else",
    "merging now",
    "rolling back, the error rate doubled",
    "the customer confirmed the bug is gone",
    "can we bump the rate limit for the mobile app",
    "lunch at the usual place",
    "the docs still mention the old config flag",
    "I'll take the on-call swap next week",
    "benchmarks are in the sheet, numbers look better than last release",
    "anyone have the VPN config for the new office",
    "that test is flaky, it passed on retry",
    "release notes are drafted, please add your items",
    "the load balancer health checks were misconfigured",
    "pairing on the websocket reconnect logic this afternoon",
    "good morning everyone",
];

const CLOSERS: [&str; 8] = ["", " :)", " thanks!", "?", " — brb", "!!", " 👍", " 🙏"];

/// The `i`-th message of the run: a sentence a team's chat might carry,
/// all different, none needing JSON escapes.
fn text(i: usize) -> String {
    let h = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
    let h = h as usize;
    format!(
        "{}{}{}",
        OPENERS[h % OPENERS.len()],
        BODIES[i % BODIES.len()],
        CLOSERS[(h / 16) % CLOSERS.len()]
    )
}

/// The connections of a run and the text messages each has received.
struct Room {
    poll: Poll,
    conns: Vec<WsConn>,
    inbox: Vec<Vec<String>>,
    scratch: Vec<u8>,
    deflate: bool,
}

impl Room {
    /// Opens one more connection and waits for its upgrade.
    fn connect(
        &mut self,
        args: &Args,
        server: std::net::SocketAddrV4,
        path: &str,
    ) -> Result<usize, Error> {
        let i = self.conns.len();
        let conn = WsConn::connect(
            self.poll.registry(),
            Token(i),
            server,
            args.target.source(i),
            path,
            i as u64,
            self.deflate,
        )?;
        self.conns.push(conn);
        self.inbox.push(Vec::new());
        self.pump(|room| room.conns[i].phase() == Phase::Open)?;
        Ok(i)
    }

    /// Sends a text message from connection `i`.
    fn send(&mut self, i: usize, text: &str) -> Result<(), Error> {
        self.conns[i].writer.send(OP_TEXT, text.as_bytes())?;
        self.conns[i].flush()
    }

    /// Runs the connections until `done` holds, for at most `STEP`.
    fn pump(&mut self, done: impl Fn(&Room) -> bool) -> Result<(), Error> {
        let deadline = Instant::now() + STEP;
        let mut events = Events::with_capacity(64);
        while !done(self) {
            if Instant::now() > deadline {
                return Err(Error::Timeout(format!("no progress for {STEP:?}")));
            }
            self.poll
                .poll(&mut events, Some(Duration::from_millis(50)))?;
            for event in events.iter() {
                let i = event.token().0;
                let inbox = &mut self.inbox[i];
                self.conns[i].ready(&mut self.scratch, &mut |ev, _| match ev {
                    Event::Upgraded => Ok(()),
                    Event::Message(OP_TEXT, got) => {
                        inbox.push(String::from_utf8_lossy(got).into_owned());
                        Ok(())
                    }
                    Event::Message(op, _) => Err(Error::Check(format!(
                        "connection {i}: opcode {op} from the chat"
                    ))),
                    Event::Close(code) => Err(Error::Protocol(format!(
                        "connection {i}: the chat closed with {code:?}"
                    ))),
                })?;
            }
        }
        Ok(())
    }

    /// Joins as `name` on connection `i` and waits for the welcome.
    fn join(&mut self, i: usize, name: &str, color: &str, status: &str) -> Result<(), Error> {
        let join = format!(
            r#"{{"type":"join","name":"{name}","profile":{{"color":"{color}","status":"{status}"}}}}"#
        );
        self.send(i, &join)?;
        self.pump(|room| {
            room.inbox[i]
                .iter()
                .any(|m| m.starts_with(r#"{"type":"welcome""#))
        })?;
        if let Some(err) = self.inbox[i]
            .iter()
            .find(|m| m.contains(r#""type":"error""#))
        {
            return Err(Error::Check(format!("{name}: {err}")));
        }
        Ok(())
    }
}

/// True when `texts` appear in `haystack` as JSON `"text"` fields, in order.
fn holds_in_order(haystack: &str, texts: &[String]) -> bool {
    let mut rest = haystack;
    for t in texts {
        let field = format!(r#""text":"{t}""#);
        match rest.find(&field) {
            Some(at) => rest = &rest[at + field.len()..],
            None => return false,
        }
    }
    true
}

pub fn run(args: &Args) -> Result<(), Error> {
    if args.talkers == 0 || args.talkers > USERS.len() {
        return Err(Error::Usage(format!(
            "--talkers must be 1 to {}",
            USERS.len()
        )));
    }
    let (server, path) = args.target.parse()?;
    // A room of its own per run, so a backlog from an earlier run on the
    // same server cannot count.
    let room_name = format!("bench{}", std::process::id());
    let path = if path.contains('?') {
        format!("{path}&room={room_name}")
    } else {
        format!("{path}?room={room_name}")
    };
    let mut room = Room {
        poll: Poll::new()?,
        conns: Vec::new(),
        inbox: Vec::new(),
        scratch: vec![0u8; 256 * 1024],
        deflate: args.deflate,
    };
    let observer = room.connect(args, server, &path)?;
    room.join(observer, "observer", "#000000", "")?;
    let mut talkers = Vec::new();
    for (name, color, status) in USERS.iter().take(args.talkers) {
        let t = room.connect(args, server, &path)?;
        room.join(t, name, color, status)?;
        talkers.push(t);
    }
    // Everyone's `joined` has reached the observer before counting starts.
    let joined = |room: &Room| {
        room.inbox[observer]
            .iter()
            .filter(|m| m.starts_with(r#"{"type":"joined""#))
            .count()
            == args.talkers
    };
    room.pump(joined)?;
    let before = room.conns[observer].received;
    let seen_before = room.inbox[observer].len();
    let texts: Vec<String> = (0..args.messages).map(text).collect();
    for (k, t) in texts.iter().enumerate() {
        let talker = talkers[k % talkers.len()];
        room.send(talker, &format!(r#"{{"type":"say","text":"{t}"}}"#))?;
        let want = seen_before + k + 1;
        let refused = |room: &Room| {
            room.inbox[talker]
                .iter()
                .any(|m| m.contains(r#""type":"error""#))
        };
        room.pump(|room| room.inbox[observer].len() >= want || refused(room))?;
        if let Some(err) = room.inbox[talker]
            .iter()
            .find(|m| m.contains(r#""type":"error""#))
        {
            return Err(Error::Check(format!("talker {talker}: {err}")));
        }
        let got = &room.inbox[observer][want - 1];
        if !got.starts_with(r#"{"type":"message""#) || !holds_in_order(got, std::slice::from_ref(t))
        {
            return Err(Error::Check(format!("observer: message {k} is {got:?}")));
        }
    }
    let after = room.conns[observer].received;
    let live_frames = after.frame_bytes - before.frame_bytes;
    let live_json = after.message_bytes - before.message_bytes;
    let live_compressed = after.compressed - before.compressed;

    let newcomer = room.connect(args, server, &path)?;
    let agreed = room.conns[newcomer].writer.agreed;
    room.join(newcomer, "newcomer", "#123456", "just arrived")?;
    let welcome = room.inbox[newcomer]
        .iter()
        .find(|m| m.starts_with(r#"{"type":"welcome""#))
        .ok_or_else(|| Error::Check("newcomer: no welcome".into()))?;
    if !holds_in_order(welcome, &texts) {
        return Err(Error::Check(format!(
            "newcomer: the welcome lacks part of the backlog ({} bytes)",
            welcome.len()
        )));
    }
    let got = room.conns[newcomer].received;
    if got.messages != 1 {
        return Err(Error::Check(format!(
            "newcomer: {} messages before its welcome was counted",
            got.messages
        )));
    }
    let agreed = agreed.map_or_else(|| "none".to_owned(), |a| a.to_string());
    eprintln!(
        "backlog: deflate {agreed}; {} messages: the welcome with the backlog is {} frame bytes ({} of JSON), the same messages live {} frame bytes ({} of JSON, {live_compressed} of {} frames compressed)",
        args.messages, got.frame_bytes, got.message_bytes, live_frames, live_json, args.messages
    );
    println!(
        "{}",
        result_line(&[
            ("scenario", "backlog".into()),
            ("messages", args.messages.to_string()),
            ("deflate", agreed),
            ("backlog_bytes", got.frame_bytes.to_string()),
            ("backlog_json", got.message_bytes.to_string()),
            ("live_bytes", live_frames.to_string()),
            ("live_json", live_json.to_string()),
            ("live_compressed", live_compressed.to_string()),
        ])
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_differ_and_need_no_escapes() {
        let texts: Vec<String> = (0..100).map(text).collect();
        let mut unique = texts.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 100);
        assert!(texts.iter().all(|t| !t.contains(['"', '\\'])));
        assert!(holds_in_order(
            r#""text":"a","text":"b""#,
            &["a".into(), "b".into()]
        ));
        assert!(!holds_in_order(
            r#""text":"b","text":"a""#,
            &["a".into(), "b".into()]
        ));
    }
}
