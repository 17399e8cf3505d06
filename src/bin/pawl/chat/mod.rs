//! The chat of issue 3 on `/chat?room=NAME`: names with tokens, profiles,
//! public messages with a backlog, direct messages (kept for offline
//! users), history paging and `since` resumption, over the JSON protocol in
//! [`protocol`]. It uses only pawl's public API.

mod limit;
pub mod page;
pub mod protocol;
pub mod redis_store;
pub mod room;
pub mod setup;
pub mod store;

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::{debug, warn};
use pawl::{CloseReason, Component, ConnId, Context, Message};

use limit::RateLimit;
use protocol::{ChatMessage, ClientMessage, DirectMessage, ErrorCode, Profile, ServerMessage};
use room::{Loaded, Room};
use store::Store;

/// The room of a connection that names none.
pub const DEFAULT_ROOM: &str = "lobby";

/// Longest name, in characters.
pub const MAX_NAME: usize = 32;

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
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            backlog: 100,
            max_text: 4096,
            rate: 10.0,
            burst: 20,
        }
    }
}

/// The chat component.
pub struct Chat {
    config: ChatConfig,
    rooms: HashMap<String, RoomEntry>,
    sessions: HashMap<ConnId, Session>,
    store: Box<dyn Store>,
}

struct RoomEntry {
    room: Room,
    /// Waiting for the store: messages are held in `waiting`.
    loading: bool,
    waiting: Vec<(ConnId, String)>,
    /// Open connections on the room, joined or not.
    open: usize,
}

struct Session {
    room: String,
    /// Set by a successful join.
    name: Option<String>,
    limit: RateLimit,
    /// Refused since the last message that passed; logged once per flood.
    refused: u64,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("config", &self.config)
            .field("rooms", &self.rooms.len())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl Chat {
    /// A chat keeping its backlog in `store`.
    pub fn new(config: ChatConfig, store: Box<dyn Store>) -> Chat {
        Chat {
            config,
            rooms: HashMap::new(),
            sessions: HashMap::new(),
            store,
        }
    }

    /// The store came back (or connected for the first time): write every
    /// room in memory back to it, then load each again to merge in what
    /// only the store had. Rooms stay usable meanwhile.
    pub fn resync(&mut self, ctx: &mut Context<'_>) {
        let Chat { rooms, store, .. } = self;
        for (name, entry) in rooms.iter() {
            if !entry.loading {
                store.save_room(ctx, name, &entry.room);
                store.load(ctx, name);
            }
        }
    }

    /// True while `room` waits for the store.
    pub fn is_loading(&self, room: &str) -> bool {
        self.rooms.get(room).is_some_and(|e| e.loading)
    }

    /// A room as the store had it: merged into memory, then the messages
    /// held while it loaded are handled.
    pub fn room_loaded(&mut self, ctx: &mut Context<'_>, room: &str, loaded: Loaded) {
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        entry.room.merge(loaded);
        entry.loading = false;
        let waiting = std::mem::take(&mut entry.waiting);
        debug!("room {room:?} loaded, {} held messages", waiting.len());
        for (conn, text) in waiting {
            if self.sessions.contains_key(&conn) {
                self.handle(ctx, conn, &text);
            }
        }
    }

    fn handle(&mut self, ctx: &mut Context<'_>, conn: ConnId, text: &str) {
        let request = match serde_json::from_str::<ClientMessage>(text) {
            Ok(request) => request,
            Err(e) => {
                let what = format!("not a chat message: {e}");
                return error(ctx, conn, ErrorCode::BadRequest, &what);
            }
        };
        let Some(session) = self.sessions.get(&conn) else {
            return;
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
                return self.join(ctx, conn, &room_name, name, profile, token, since);
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
        let Chat {
            config,
            rooms,
            store,
            ..
        } = self;
        let Some(entry) = rooms.get_mut(&room_name) else {
            return;
        };
        let room = &mut entry.room;
        match request {
            ClientMessage::Join { .. } => {}
            ClientMessage::Say { text } => {
                if let Err((code, what)) = check_text(&text, config.max_text) {
                    return error(ctx, conn, code, &what);
                }
                let message = ChatMessage {
                    id: room.next_id(),
                    from: name,
                    text,
                    ts: now_ms(),
                };
                let json = ServerMessage::Message(&message).to_json();
                ctx.broadcast(room.connections(), json.as_str());
                store.save_message(ctx, &room_name, &message);
                room.push_message(message);
            }
            ClientMessage::Dm { to, text } => {
                let Some(recipient) = room.member(&to) else {
                    let what = format!("nobody called {to:?} in this room");
                    return error(ctx, conn, ErrorCode::NoSuchUser, &what);
                };
                if let Err((code, what)) = check_text(&text, config.max_text) {
                    return error(ctx, conn, code, &what);
                }
                let mut conns: Vec<ConnId> = recipient.conns.iter().copied().collect();
                if let Some(sender) = room.member(&name) {
                    conns.extend(sender.conns.iter().copied());
                }
                conns.sort();
                conns.dedup();
                let dm = DirectMessage {
                    id: room.next_id(),
                    from: name,
                    to,
                    text,
                    ts: now_ms(),
                };
                let json = ServerMessage::Dm(&dm).to_json();
                ctx.broadcast(conns, json.as_str());
                store.save_dm(ctx, &room_name, &dm.from, &dm);
                if dm.to != dm.from {
                    store.save_dm(ctx, &room_name, &dm.to, &dm);
                }
                room.push_dm(&dm);
            }
            ClientMessage::Profile { profile } => {
                let Some(member) = room.member_mut(&name) else {
                    return;
                };
                member.user.profile = profile.sanitized();
                store.save_member(ctx, &room_name, member);
                let user = member.user.clone();
                let json = ServerMessage::Profile { user: &user }.to_json();
                ctx.broadcast(room.connections(), json.as_str());
            }
            ClientMessage::History { before, limit } => {
                let before = before.unwrap_or(u64::MAX);
                let limit = limit.unwrap_or(DEFAULT_HISTORY).min(MAX_HISTORY);
                let messages = room.history(before, limit);
                send(ctx, conn, &ServerMessage::History { messages });
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        room_name: &str,
        name: String,
        profile: Option<Profile>,
        token: Option<String>,
        since: Option<u64>,
    ) {
        if let Err(what) = check_name(&name) {
            return error(ctx, conn, ErrorCode::BadRequest, &what);
        }
        let Chat { rooms, store, .. } = self;
        let Some(entry) = rooms.get_mut(room_name) else {
            return;
        };
        let room = &mut entry.room;
        let created = room.member(&name).is_none();
        // A `since` past the room's last id comes from another history (a
        // restart without a store): the client gets everything instead, and
        // `last_id` in the welcome tells it to start over.
        let since = since.filter(|&s| s <= room.last_id());
        // A client may bring a token for a name this room does not know (the
        // server restarted without a store): it keeps it, as the name is
        // free anyway, so its saved token stays good.
        let adopt = token.clone().filter(|t| plausible_token(t));
        let make_token = || adopt.unwrap_or_else(new_token);
        let (member, came_online) = match room.join(conn, &name, token.as_deref(), make_token) {
            Ok(joined) => joined,
            Err(code) => {
                let what = format!("{name:?} is taken; joining as it needs its token");
                return error(ctx, conn, code, &what);
            }
        };
        let mut changed = false;
        if let Some(profile) = profile.map(Profile::sanitized) {
            changed = profile != member.user.profile;
            member.user.profile = profile;
        }
        if created || changed {
            store.save_member(ctx, room_name, member);
        }
        let you = member.user.clone();
        let token = member.token.clone();
        let since_id = since.unwrap_or(0);
        let dms: Vec<DirectMessage> = member
            .dms
            .iter()
            .filter(|d| d.id > since_id)
            .cloned()
            .collect();
        let welcome = ServerMessage::Welcome {
            you: &you,
            token: &token,
            last_id: room.last_id(),
            users: room.online_users(),
            backlog: room.backlog_since(since),
            dms: dms.iter().collect(),
        };
        send(ctx, conn, &welcome);
        if came_online {
            let json = ServerMessage::Joined { user: &you }.to_json();
            ctx.broadcast(room.connections().filter(|&c| c != conn), json.as_str());
        } else if changed {
            let json = ServerMessage::Profile { user: &you }.to_json();
            ctx.broadcast(room.connections(), json.as_str());
        }
        debug!("{conn} joined {room_name:?} as {name:?}");
        if let Some(session) = self.sessions.get_mut(&conn) {
            session.name = Some(name);
        }
    }
}

impl Component for Chat {
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let room = ctx
            .request(conn)
            .and_then(|r| r.query_param("room").map(|r| r.into_owned()))
            .unwrap_or_else(|| DEFAULT_ROOM.to_owned());
        let count = room.chars().count();
        if count == 0 || count > MAX_ROOM || room.chars().any(char::is_control) {
            warn!("{conn}: bad room name {room:?}");
            ctx.close(conn, 1008, "bad room name");
            return;
        }
        if !self.rooms.contains_key(&room) {
            let loading = self.store.load(ctx, &room);
            self.rooms.insert(
                room.clone(),
                RoomEntry {
                    room: Room::new(self.config.backlog),
                    loading,
                    waiting: Vec::new(),
                    open: 0,
                },
            );
        }
        if let Some(entry) = self.rooms.get_mut(&room) {
            entry.open += 1;
        }
        let limit = RateLimit::new(self.config.burst, Instant::now());
        self.sessions.insert(
            conn,
            Session {
                room,
                name: None,
                limit,
                refused: 0,
            },
        );
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, message: Message<'_>) {
        let Some(session) = self.sessions.get_mut(&conn) else {
            return;
        };
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
        if let Some(entry) = self.rooms.get_mut(&session.room)
            && entry.loading
        {
            if entry.waiting.len() >= MAX_WAITING {
                return error(ctx, conn, ErrorCode::RateLimited, "room is loading");
            }
            entry.waiting.push((conn, text.to_owned()));
            return;
        }
        self.handle(ctx, conn, text);
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: &CloseReason) {
        let Some(session) = self.sessions.remove(&conn) else {
            return;
        };
        let Some(entry) = self.rooms.get_mut(&session.room) else {
            return;
        };
        entry.open -= 1;
        if let Some(name) = session.name
            && entry.room.leave(conn, &name)
        {
            let json = ServerMessage::Left { name: &name }.to_json();
            ctx.broadcast(entry.room.connections(), json.as_str());
        }
        // A room nobody ever spoke or joined in is forgotten when its last
        // connection goes, so made-up room names cost nothing for long.
        if entry.open == 0 && !entry.loading && entry.room.is_empty() {
            self.rooms.remove(&session.room);
        }
    }
}

fn send(ctx: &mut Context<'_>, conn: ConnId, message: &ServerMessage<'_>) {
    // A slow reader is bounded by max_backpressure; a chat has no better
    // answer to backpressure than that.
    let _ = ctx.send_text(conn, &message.to_json());
}

fn error(ctx: &mut Context<'_>, conn: ConnId, code: ErrorCode, message: &str) {
    send(ctx, conn, &ServerMessage::Error { code, message });
}

fn check_name(name: &str) -> Result<(), String> {
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME {
        return Err(format!("a name has 1 to {MAX_NAME} characters"));
    }
    if name.chars().any(char::is_control) || name.trim() != name {
        return Err("a name has no control characters or outer spaces".into());
    }
    Ok(())
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
