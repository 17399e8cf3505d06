//! The chat of issue 3 on `/chat?room=NAME`: names with tokens, profiles,
//! public messages with a backlog, direct messages (kept for offline
//! users), history paging and `since` resumption, over the JSON protocol in
//! [`protocol`]. It uses only pawl's public API.
//!
//! This is the `pawl-chat` crate beside the library; the `pawl` server
//! binary (`server/`) puts it on an app with [`setup::mount`], which mounts
//! it with [`pawl::App::mount`] and hands the returned `Route<Chat>` to the
//! Redis store and cluster, whose replies reach the chat through it.
//!
//! Rooms are the library's topics: a joined connection subscribes to its
//! room's [`room_topic`], and a public message is one
//! [`publish`](pawl::Context::publish) to it, which, with a broker
//! ([`pawl::App::broker`]), reaches the room on every node. The chat
//! watches its rooms' topics to keep its backlog, ids and presence (see
//! [`cluster`]).
//! Each connection's [`Session`] (room, name, rate limit) lives with the
//! connection, not in a map of the chat's.

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod budget;
pub mod claim;
pub mod cluster;
mod join;
mod limit;
pub mod names;
pub mod page;
pub mod protocol;
pub mod redis_store;
mod remote;
pub mod room;
mod rooms;
pub mod setup;
pub mod store;

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::{debug, warn};
use pawl::{CloseCode, CloseReason, Component, ConnId, Context, Message};
use serde::Deserialize;

use cluster::{Cluster, Envelope, Event};
use limit::RateLimit;
use protocol::{ChatMessage, ClientMessage, DirectMessage, ErrorCode, ServerMessage};
use redis_store::StoredMember;
use remote::send_dm_to;
use room::{Loaded, Room};
use store::Store;

/// The room of a connection that names none.
pub const DEFAULT_ROOM: &str = "lobby";

/// Every topic of the chat starts with this. They are the chat's alone: a
/// program that lets clients name topics (the `pawl` binary's
/// `/broadcast?topic=`) must refuse these, or a client could read DMs and
/// speak as anyone ([`is_chat_topic`]).
pub const TOPIC_PREFIX: &str = "chat:";

/// The topic of a room's public messages, as clients get them.
pub fn room_topic(room: &str) -> String {
    format!("{TOPIC_PREFIX}room:{room}")
}

/// The topic of a room's events between nodes (DMs, presence); only the
/// chat watches it.
pub fn events_topic(room: &str) -> String {
    format!("{TOPIC_PREFIX}events:{room}")
}

/// True for a topic of the chat's, which nobody else may subscribe or
/// publish to.
pub fn is_chat_topic(topic: &str) -> bool {
    topic.starts_with(TOPIC_PREFIX)
}

/// What the chat publishes on a room's topic and reads back from other
/// nodes: the client's own `message`.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Published {
    Message(ChatMessage),
}

pub use names::MAX_NAME;

/// Longest room name, in characters.
const MAX_ROOM: usize = 64;

/// Most messages a `history` answer carries, and its default.
const MAX_HISTORY: usize = 100;
const DEFAULT_HISTORY: usize = 50;

/// Messages held per room while it loads from the store; past this the
/// sender is told to retry.
const MAX_WAITING: usize = 1024;

/// The chat's limits.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// Public messages kept per room, and DMs per user. Default 100.
    pub backlog: usize,
    /// Largest `text` in bytes. Default 4096.
    pub max_text: usize,
    /// Messages per second a connection may send on average. Default 10.
    pub rate: f64,
    /// Messages a connection may send at once. Default 20.
    pub burst: u32,
    /// Bytes the chat may hold (rooms, backlogs, members, DMs), by its own
    /// count; past it, the oldest idle are forgotten (see `budget`).
    /// Default 64 MiB.
    pub memory: usize,
    /// Connections per second one client address may open on average.
    /// Default 20.
    pub connect_rate: f64,
    /// Connections one client address may open at once. Default 200
    /// (many users may share an address behind a NAT).
    pub connect_burst: u32,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            backlog: 100,
            max_text: 4096,
            rate: 10.0,
            burst: 20,
            memory: 64 << 20,
            connect_rate: 20.0,
            connect_burst: 200,
        }
    }
}

/// The chat component.
pub struct Chat {
    config: ChatConfig,
    rooms: HashMap<String, RoomEntry>,
    store: Box<dyn Store>,
    /// Other nodes on the same Redis, with `--redis`.
    cluster: Option<Cluster>,
    /// The last presence version seen from each other node.
    versions: HashMap<String, u64>,
    /// Connection rates per client address.
    addresses: budget::Addresses,
    /// The budget's periodic check is set.
    budget_started: bool,
}

struct RoomEntry {
    room: Room,
    /// Waiting for the store: messages are held in `waiting`.
    loading: bool,
    waiting: Vec<(ConnId, String)>,
    /// Open connections on the room, joined or not.
    open: usize,
    /// When the room was last read again for a gap in its ids.
    gap_reload: Option<Instant>,
    /// When its last connection here closed (its open count hit 0).
    idle_since: Instant,
    /// Members were forgotten for the budget: a name memory does not know
    /// may be in the store.
    forgotten: bool,
    /// The last name read from the store for that (not read twice in a row).
    fetched: Option<String>,
}

/// What the chat keeps per connection: its room, its name once joined,
/// its rate limit, and what it sent while its join waited for Redis.
#[derive(Debug)]
pub struct Session {
    room: String,
    /// Set by a successful join.
    name: Option<String>,
    limit: RateLimit,
    /// Refused since the last message that passed; logged once per flood.
    refused: u64,
    /// A join waits for the name's claim in Redis; later messages wait in
    /// `held`.
    joining: bool,
    held: Vec<String>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("config", &self.config)
            .field("rooms", &self.rooms.len())
            .finish()
    }
}

impl Chat {
    /// A chat keeping its backlog in `store`.
    pub fn new(config: ChatConfig, store: Box<dyn Store>) -> Chat {
        Chat {
            config,
            rooms: HashMap::new(),
            store,
            cluster: None,
            versions: HashMap::new(),
            addresses: budget::Addresses::default(),
            budget_started: false,
        }
    }

    /// Shares rooms, ids and presence with the other nodes of `cluster`.
    pub fn with_cluster(mut self, cluster: Cluster) -> Chat {
        self.cluster = Some(cluster);
        self
    }

    /// The state of the chat's Redis link, with `--redis`.
    pub fn redis_stats(&self) -> Option<pawl::RedisStats> {
        self.cluster.as_ref().map(Cluster::redis_stats)
    }

    /// The cluster, when Redis is up (otherwise the chat goes on alone).
    fn live_cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref().filter(|c| c.is_connected())
    }

    /// The store came back (or connected for the first time): write every
    /// room in memory back to it, then load each again to merge in what
    /// only the store had. Rooms stay usable meanwhile.
    pub fn resync(&mut self, ctx: &mut Context<'_, Chat>) {
        let Chat {
            rooms,
            store,
            cluster,
            ..
        } = self;
        for (name, entry) in rooms.iter() {
            if !entry.loading {
                store.save_room(ctx, name, &entry.room);
                store.load(ctx, name);
                // Others may have read the room before it was written back
                // (at most once: the next message's id shows a gap anyway).
                if let Some(cluster) = cluster {
                    cluster.publish(ctx, name, Event::Reload);
                }
            }
        }
    }

    /// True while `room` waits for the store.
    pub fn is_loading(&self, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|e| e.loading)
    }

    /// A room as the store had it: merged into memory, then the messages
    /// held while it loaded are handled.
    pub fn room_loaded(&mut self, ctx: &mut Context<'_, Chat>, room: &str, loaded: Loaded) {
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        for (owner, dm) in entry.room.merge(loaded) {
            send_dm_to(ctx, entry.room.member(&owner), &dm);
        }
        entry.loading = false;
        let waiting = std::mem::take(&mut entry.waiting);
        debug!("room {room:?} loaded, {} held messages", waiting.len());
        for (conn, text) in waiting {
            ctx.with_session(conn, |ctx, session| self.handle(ctx, conn, session, &text));
        }
    }

    fn handle(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        conn: ConnId,
        session: &mut Session,
        text: &str,
    ) {
        let request = match ClientMessage::parse(text) {
            Ok(request) => request,
            Err(e) => {
                let what = format!("not a chat message: {e}");
                return error(ctx, conn, ErrorCode::BadRequest, &what);
            }
        };
        let room_name = session.room.clone();
        let name = session.name.clone();
        let (name, request) = match (name, request) {
            (
                None,
                ClientMessage::Join {
                    name,
                    profile,
                    token,
                    since,
                },
            ) => {
                let name = match names::normalize(&name) {
                    Ok(name) => name,
                    Err(what) => return error(ctx, conn, ErrorCode::BadRequest, &what),
                };
                if self.fetch_member(ctx, conn, &room_name, &name, text) {
                    return;
                }
                let lookalike = self
                    .rooms
                    .get(&room_name)
                    .and_then(|e| e.room.lookalike(&name));
                if let Some(other) = lookalike {
                    let what = format!("{name:?} looks like {other:?}, who is in this room");
                    return error(ctx, conn, ErrorCode::NameTaken, &what);
                }
                let request = join::JoinRequest {
                    name,
                    profile,
                    token,
                    since,
                };
                return self.join(ctx, conn, session, &room_name, request);
            }
            (Some(name), ClientMessage::Join { .. }) => {
                let what = format!("already joined as {name}");
                return error(ctx, conn, ErrorCode::BadRequest, &what);
            }
            (None, _) => {
                return error(ctx, conn, ErrorCode::NotJoined, "send a join first");
            }
            (Some(name), request) => (name, request),
        };
        let Some(entry) = self.rooms.get_mut(&room_name) else {
            return;
        };
        let room = &mut entry.room;
        let max_text = self.config.max_text;
        match request {
            ClientMessage::Join { .. } => {}
            ClientMessage::Say { text } => {
                if let Err((code, what)) = check_text(&text, max_text) {
                    return error(ctx, conn, code, &what);
                }
                let room = room_name.clone();
                self.numbered(ctx, &room_name, move |chat, ctx, id| {
                    chat.post_say(ctx, &room, name, text, id);
                });
            }
            ClientMessage::Dm { to, text: said } => {
                if self.fetch_member(ctx, conn, &room_name, &to, text) {
                    return;
                }
                let text = said;
                let Some(entry) = self.rooms.get_mut(&room_name) else {
                    return;
                };
                let room = &mut entry.room;
                if room.member(&to).is_none() {
                    let what = format!("nobody called {to:?} in this room");
                    return error(ctx, conn, ErrorCode::NoSuchUser, &what);
                }
                if let Err((code, what)) = check_text(&text, max_text) {
                    return error(ctx, conn, code, &what);
                }
                let room = room_name.clone();
                self.numbered(ctx, &room_name, move |chat, ctx, id| {
                    chat.post_dm(ctx, &room, name, to, text, id);
                });
            }
            ClientMessage::Profile { profile } => {
                let Some(member) = room.member_mut(&name) else {
                    return;
                };
                member.user.profile = profile.sanitized();
                self.store.save_member(ctx, &room_name, member);
                let user = member.user.clone();
                let provisional = member.provisional;
                let json = ServerMessage::Profile { user: &user }.to_json();
                ctx.broadcast(room.connections(), json.as_str());
                if let Some(cluster) = self.cluster.as_ref().filter(|_| !provisional) {
                    cluster.publish(ctx, &room_name, Event::Profile { user });
                }
            }
            ClientMessage::History { before, limit } => {
                let before = before.unwrap_or(u64::MAX);
                let limit = limit.unwrap_or(DEFAULT_HISTORY).min(MAX_HISTORY);
                let messages = room.history(before, limit);
                send(ctx, conn, &ServerMessage::History { messages });
            }
        }
    }

    /// Runs `then` with the room's next id: from Redis when it is up (so
    /// ids increase across nodes), else at once from memory (`None`).
    fn numbered(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        room_name: &str,
        then: impl FnOnce(&mut Chat, &mut Context<'_, Chat>, Option<u64>) + 'static,
    ) {
        let floor = self.rooms.get(room_name).map_or(0, |e| e.room.last_id());
        match self.live_cluster() {
            Some(cluster) => cluster.next_id(ctx.route(), room_name, floor, then),
            None => then(self, ctx, None),
        }
    }

    /// A public message gets its id: stored, and published on the room's
    /// topic (to this node's users and, with a broker, every other node's).
    fn post_say(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        room_name: &str,
        from: String,
        text: String,
        id: Option<u64>,
    ) {
        let Some(entry) = self.rooms.get_mut(room_name) else {
            return;
        };
        let room = &mut entry.room;
        let message = ChatMessage {
            id: assign(room, id),
            from,
            text,
            ts: now_ms(),
        };
        self.store.save_message(ctx, room_name, &message);
        let json = ServerMessage::Message(&message).to_json();
        ctx.publish(&room_topic(room_name), &json);
        room.insert_message(message);
    }

    /// A direct message gets its id: sent to both parties' connections
    /// here, filed with both, announced to the other nodes.
    fn post_dm(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        room_name: &str,
        from: String,
        to: String,
        text: String,
        id: Option<u64>,
    ) {
        let Some(entry) = self.rooms.get_mut(room_name) else {
            return;
        };
        let room = &mut entry.room;
        let dm = DirectMessage {
            id: assign(room, id),
            from,
            to,
            text,
            ts: now_ms(),
        };
        remote::deliver_dm(ctx, room, &dm);
        // A provisional party's copy is written, and the DM published,
        // once its claim is confirmed (see `claim`).
        let provisional = |name: &str| room.member(name).is_some_and(|m| m.provisional);
        let held = provisional(&dm.from) || provisional(&dm.to);
        if !provisional(&dm.from) {
            self.store.save_dm(ctx, room_name, &dm.from, &dm);
        }
        if dm.to != dm.from && !provisional(&dm.to) {
            self.store.save_dm(ctx, room_name, &dm.to, &dm);
        }
        room.push_dm(&dm);
        if let Some(cluster) = self.cluster.as_ref().filter(|_| !held) {
            cluster.publish(ctx, room_name, Event::Dm { dm });
        }
    }
}

impl Component for Chat {
    type Session = Session;

    fn on_open(&mut self, ctx: &mut Context<'_, Chat>, conn: ConnId) -> Session {
        self.start_budget(ctx);
        let room = ctx
            .request(conn)
            .and_then(|r| r.query_param("room").map(|r| r.into_owned()))
            .unwrap_or_else(|| DEFAULT_ROOM.to_owned());
        let count = room.chars().count();
        let bad = count == 0 || count > MAX_ROOM || room.chars().any(char::is_control);
        // A connection refused here has a session in no room (no room is
        // called ""), so its close touches none.
        let room = if !self.admit(ctx, conn) {
            String::new()
        } else if bad {
            warn!("{conn}: bad room name {room:?}");
            ctx.close(conn, CloseCode::POLICY, "bad room name");
            String::new()
        } else {
            self.open_room(ctx, &room);
            room
        };
        Session {
            room,
            name: None,
            limit: RateLimit::new(self.config.burst, Instant::now()),
            refused: 0,
            joining: false,
            held: Vec::new(),
        }
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        conn: ConnId,
        session: &mut Session,
        message: Message<'_>,
    ) {
        // A connection refused in on_open (a bad room name) has no room.
        if !self.rooms.contains_key(&session.room) {
            return;
        }
        if !session
            .limit
            .allow(self.config.rate, self.config.burst, Instant::now())
        {
            // One line per flood, not one per refused message.
            if session.refused == 0 {
                warn!("{conn}: over the rate limit; refusing until it slows down");
            }
            session.refused += 1;
            return error(ctx, conn, ErrorCode::RateLimited, "slow down");
        }
        if session.refused > 0 {
            debug!("{conn}: {} messages were refused", session.refused);
            session.refused = 0;
        }
        let Message::Text(text) = message else {
            return error(ctx, conn, ErrorCode::BadRequest, "send JSON text frames");
        };
        if session.joining {
            if session.held.len() >= MAX_WAITING {
                return error(ctx, conn, ErrorCode::RateLimited, "still joining");
            }
            session.held.push(text.to_owned());
            return;
        }
        if let Some(entry) = self.rooms.get_mut(&session.room)
            && entry.loading
        {
            if entry.waiting.len() >= MAX_WAITING {
                return error(ctx, conn, ErrorCode::RateLimited, "room is loading");
            }
            entry.waiting.push((conn, text.to_owned()));
            return;
        }
        self.handle(ctx, conn, session, text);
    }

    fn on_remote_publish(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        topic: &str,
        message: Message<'_>,
    ) {
        let Message::Text(text) = message else {
            return;
        };
        let rest = topic.strip_prefix(TOPIC_PREFIX).unwrap_or_default();
        if let Some(room) = rest.strip_prefix("room:") {
            match serde_json::from_str::<Published>(text) {
                Ok(Published::Message(message)) => self.remote_message(ctx, room, message),
                Err(e) => warn!("a bad message from another node on {topic:?}: {e}"),
            }
        } else if let Some(room) = rest.strip_prefix("events:") {
            match serde_json::from_str::<Envelope>(text) {
                Ok(envelope) => self.remote_event(ctx, room, envelope),
                Err(e) => warn!("a bad event from another node on {topic:?}: {e}"),
            }
        }
    }

    /// The link to the other nodes is back: what this node's users did
    /// meanwhile is sent now, and what the others published meanwhile was
    /// missed here, so the rooms are read again from the store (when it is
    /// connected; otherwise its own reconnect reads them).
    fn on_topics_connected(&mut self, ctx: &mut Context<'_, Chat>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        cluster.send_held(ctx);
        if cluster.is_connected() {
            for (name, entry) in &self.rooms {
                if !entry.loading {
                    self.store.load(ctx, name);
                }
            }
        }
    }

    fn on_close(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        conn: ConnId,
        session: Session,
        _: &CloseReason,
    ) {
        let Some(entry) = self.rooms.get_mut(&session.room) else {
            return;
        };
        if let Some(name) = session.name {
            let (last_here, offline) = entry.room.leave(conn, &name);
            if offline {
                let json = ServerMessage::Left { name: &name }.to_json();
                ctx.broadcast(entry.room.connections(), json.as_str());
            }
            // A provisional member was never announced to the other nodes.
            let announced = entry.room.member(&name).is_some_and(|m| !m.provisional);
            if last_here
                && announced
                && let Some(cluster) = &self.cluster
            {
                cluster.publish(ctx, &session.room, Event::Left { name });
            }
        }
        self.close_room(ctx, &session.room);
    }
}

/// The id a message takes: the one Redis handed out (raising the room's
/// sequence to it), else the room's next.
fn assign(room: &mut Room, id: Option<u64>) -> u64 {
    match id {
        Some(id) => {
            room.note_id(id);
            id
        }
        None => room.next_id(),
    }
}

fn send(ctx: &mut Context<'_, Chat>, conn: ConnId, message: &ServerMessage<'_>) {
    // A slow reader is bounded by max_backpressure; a chat has no better
    // answer to backpressure than that.
    let _ = ctx.send(conn, &message.to_json());
}

fn error(ctx: &mut Context<'_, Chat>, conn: ConnId, code: ErrorCode, message: &str) {
    send(ctx, conn, &ServerMessage::Error { code, message });
}

/// A name as [`names::normalize`] keeps it is unchanged by it.
fn check_name(name: &str) -> Result<(), String> {
    names::normalize(name).map(drop)
}

fn check_text(text: &str, max: usize) -> Result<(), (ErrorCode, String)> {
    if text.trim().is_empty() {
        return Err((ErrorCode::BadRequest, "empty text".into()));
    }
    if text.len() > max {
        let what = format!("text is {} bytes; the limit is {max}", text.len());
        return Err((ErrorCode::TooLong, what));
    }
    Ok(())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A client's token worth adopting: 16 to 64 letters and digits.
fn plausible_token(token: &str) -> bool {
    (16..=64).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// 128 random bits in hex, from the kernel; a hash of the time and a
/// process-random key if /dev/urandom cannot be read.
fn new_token() -> String {
    use std::io::Read;

    let mut bytes = [0u8; 16];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        use std::hash::{BuildHasher, Hasher};
        for half in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_texts() {
        assert!(check_name("alice").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(&"x".repeat(33)).is_err());
        assert!(check_name(&"é".repeat(32)).is_ok());
        assert!(check_name(" alice").is_err());
        assert!(check_name("a\nb").is_err());
        assert_eq!(check_text("hi", 4), Ok(()));
        assert_eq!(
            check_text("  ", 4).map_err(|e| e.0),
            Err(ErrorCode::BadRequest)
        );
        assert_eq!(
            check_text("hello", 4).map_err(|e| e.0),
            Err(ErrorCode::TooLong)
        );
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 32);
        assert!(plausible_token(&a));
        assert!(!plausible_token("short"));
        assert!(!plausible_token(&"x;".repeat(10)));
        assert_ne!(a, b);
    }
}
