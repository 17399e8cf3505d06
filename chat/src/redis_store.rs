//! The backlog in Redis, through pawl's non-blocking client on the loop.
//!
//! Memory stays the live state; Redis is write-through persistence that
//! survives a restart of pawl. Keys, per room (the braces make every key of
//! a room one Redis Cluster slot):
//!
//! - `pawl:chat:rooms`: a set of room names.
//! - `pawl:chat:{ROOM}:messages`: a sorted set of public messages (JSON),
//!   scored by id, trimmed to the backlog size.
//! - `pawl:chat:{ROOM}:members`: a hash of name to `{"token","profile"}`.
//! - `pawl:chat:{ROOM}:dms:NAME`: a sorted set of NAME's direct messages.
//! - `pawl:chat:{ROOM}:seq`: the last id handed out; only ever raised
//!   (several nodes may share it, see [`cluster`](super::cluster)).
//!
//! Every write is idempotent, and sent with the client's `*_idempotent`
//! calls, so one written into a connection that broke (or stalled) is sent
//! again: sorted sets scored by id, `SADD`, a sequence only ever raised,
//! members through the conditional write of [`claim`]. When
//! Redis comes back, the whole room is written again from memory (see
//! [`Chat::resync`](super::Chat::resync)) without duplicating what the
//! client's queue also replays, so a Redis that restarted empty gets
//! everything back. Reads are not sent again: a load that fails goes on
//! from memory, and the next reconnect reloads.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::{debug, warn};
use pawl::reactor::LoopHandle;
use pawl::redis::{RedisClient, RedisError, Value};
use pawl::{Context, Route};
use serde::{Deserialize, Serialize};

use super::Chat;
use super::claim;
use super::cluster::RAISE_SEQ;
use super::protocol::{ChatMessage, DirectMessage, Profile};
use super::room::{Loaded, Member, Room};
use super::store::Store;

/// How long a room's first use waits for Redis before it goes on with
/// what memory has (what Redis had is merged in when it answers).
const LOAD_TIMEOUT: Duration = Duration::from_secs(2);

const ROOMS_KEY: &str = "pawl:chat:rooms";

/// A member as stored in the members hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredMember {
    /// The name's secret.
    pub token: String,
    /// The profile.
    #[serde(default)]
    pub profile: Profile,
}

/// The Redis store. Its replies reach the chat through the chat's route,
/// which every load takes from the context that asked for it.
/// Clones share the client.
#[derive(Debug, Clone)]
pub struct RedisStore {
    client: RedisClient,
    keep: usize,
}

impl RedisStore {
    /// A store writing through `client`, keeping `keep` messages per list.
    pub fn new(client: RedisClient, keep: usize) -> RedisStore {
        RedisStore { client, keep }
    }

    /// On each (re)connect: claims the names taken while Redis could not
    /// check them, then writes every room of the chat on `route` back and
    /// reloads it. The claims go first on the connection, so their answers
    /// come before the reloads', which must not merge a name's DMs into a
    /// member that turns out not to own it.
    pub fn listen(&self, route: Route<Chat>) {
        self.client.on_connect(move |lp: &mut LoopHandle| {
            debug!(
                "redis connected; checking provisional names, writing rooms back, reloading them"
            );
            lp.with(route, |chat, ctx| {
                chat.verify_claims(ctx);
                chat.resync(ctx);
            });
        });
    }

    fn key(room: &str, what: &str) -> String {
        format!("pawl:chat:{{{room}}}:{what}")
    }

    fn dm_key(room: &str, owner: &str) -> String {
        format!("pawl:chat:{{{room}}}:dms:{owner}")
    }

    /// ZADD of (id, JSON) pairs, then a trim to the newest `keep`.
    fn zadd<'a>(&self, key: &str, entries: impl Iterator<Item = (u64, String)> + 'a) {
        let entries: Vec<(String, String)> =
            entries.map(|(id, json)| (id.to_string(), json)).collect();
        if entries.is_empty() {
            return;
        }
        let mut args: Vec<&[u8]> = vec![b"ZADD", key.as_bytes()];
        for (score, json) in &entries {
            args.push(score.as_bytes());
            args.push(json.as_bytes());
        }
        self.client.send_idempotent(&args);
        let stop = format!("-{}", self.keep + 1);
        self.client
            .send_idempotent(&[b"ZREMRANGEBYRANK", key.as_bytes(), b"0", stop.as_bytes()]);
    }

    /// Raises the room's sequence to `id`: a plain SET could lower it
    /// under an id another node has handed out since.
    fn set_seq(&self, room: &str, id: u64) {
        let key = Self::key(room, "seq");
        let id = id.to_string();
        self.client.send_idempotent(&[
            b"EVAL",
            RAISE_SEQ.as_bytes(),
            b"1",
            key.as_bytes(),
            id.as_bytes(),
        ]);
    }

    /// Writes a member unless its name is someone else's (see
    /// [`claim`]); `update` also replaces the profile of a
    /// record with the same token, which writing a room back from memory
    /// must not do (another node may have changed it since).
    fn write_member(&self, room: &str, member: &Member, update: bool) {
        let stored = StoredMember {
            token: member.token.clone(),
            profile: member.user.profile.clone(),
        };
        claim::write_member(&self.client, room, &member.user.name, &stored, update);
    }
}

impl Store for RedisStore {
    fn load(&mut self, ctx: &mut Context<'_, Chat>, room: &str) -> bool {
        let route = ctx.route();
        let load = Rc::new(RefCell::new(Load {
            room: room.to_owned(),
            loaded: Loaded::default(),
            outstanding: 3,
            failed: false,
            route,
        }));
        let messages = Self::key(room, "messages");
        let l = Rc::clone(&load);
        self.client.command(
            &[b"ZRANGE", messages.as_bytes(), b"0", b"-1"],
            move |reactor, reply| {
                match array(reply) {
                    Ok(items) => {
                        l.borrow_mut().loaded.messages = items.iter().filter_map(json).collect();
                    }
                    Err(e) => l.borrow_mut().fail("messages", &e),
                }
                Load::done(&l, reactor);
            },
        );
        let seq = Self::key(room, "seq");
        let l = Rc::clone(&load);
        self.client
            .command(&[b"GET", seq.as_bytes()], move |reactor, reply| {
                match reply {
                    Ok(value) => {
                        let last = value.as_int().unwrap_or(0).max(0) as u64;
                        l.borrow_mut().loaded.last_id = last;
                    }
                    Err(e) => l.borrow_mut().fail("seq", &e.to_string()),
                }
                Load::done(&l, reactor);
            });
        let members = Self::key(room, "members");
        let l = Rc::clone(&load);
        let client = self.client.clone();
        let room_name = room.to_owned();
        self.client
            .command(&[b"HGETALL", members.as_bytes()], move |reactor, reply| {
                match array(reply) {
                    Ok(items) => {
                        let mut pairs = items.chunks_exact(2);
                        let mut names = Vec::new();
                        for pair in &mut pairs {
                            let (Some(name), Some(stored)) = (
                                pair[0].as_str(),
                                pair[1]
                                    .as_bytes()
                                    .and_then(|b| serde_json::from_slice::<StoredMember>(b).ok()),
                            ) else {
                                continue;
                            };
                            names.push(name.to_owned());
                            l.borrow_mut().loaded.members.push((
                                name.to_owned(),
                                stored.token,
                                stored.profile.sanitized(),
                            ));
                        }
                        l.borrow_mut().outstanding += names.len();
                        for name in names {
                            load_dms(&client, &room_name, name, Rc::clone(&l));
                        }
                    }
                    Err(e) => l.borrow_mut().fail("members", &e),
                }
                Load::done(&l, reactor);
            });
        give_up_after_timeout(ctx, room);
        true
    }

    fn load_member(&mut self, ctx: &mut Context<'_, Chat>, room: &str, name: &str) -> bool {
        let load = Rc::new(RefCell::new(Load {
            room: room.to_owned(),
            loaded: Loaded::default(),
            outstanding: 2,
            failed: false,
            route: ctx.route(),
        }));
        let members = Self::key(room, "members");
        let (l, owner) = (Rc::clone(&load), name.to_owned());
        self.client.command(
            &[b"HGET", members.as_bytes(), name.as_bytes()],
            move |reactor, reply| {
                match reply {
                    Ok(value) => {
                        let stored = value
                            .as_bytes()
                            .and_then(|b| serde_json::from_slice::<StoredMember>(b).ok());
                        if let Some(s) = stored {
                            let member = (owner, s.token, s.profile.sanitized());
                            l.borrow_mut().loaded.members.push(member);
                        }
                    }
                    Err(e) => l.borrow_mut().fail("member", &e.to_string()),
                }
                Load::done(&l, reactor);
            },
        );
        load_dms(&self.client, room, name.to_owned(), Rc::clone(&load));
        give_up_after_timeout(ctx, room);
        true
    }

    fn save_message(&mut self, _: &mut Context<'_, Chat>, room: &str, message: &ChatMessage) {
        let json = serde_json::to_string(message).unwrap_or_default();
        self.client
            .send_idempotent(&[b"SADD", ROOMS_KEY.as_bytes(), room.as_bytes()]);
        self.zadd(
            &Self::key(room, "messages"),
            std::iter::once((message.id, json)),
        );
        self.set_seq(room, message.id);
    }

    fn save_dm(&mut self, _: &mut Context<'_, Chat>, room: &str, owner: &str, dm: &DirectMessage) {
        let json = serde_json::to_string(dm).unwrap_or_default();
        self.zadd(&Self::dm_key(room, owner), std::iter::once((dm.id, json)));
        self.set_seq(room, dm.id);
    }

    fn save_member(&mut self, _: &mut Context<'_, Chat>, room: &str, member: &Member) {
        self.client
            .send_idempotent(&[b"SADD", ROOMS_KEY.as_bytes(), room.as_bytes()]);
        self.write_member(room, member, true);
    }

    fn save_room(&mut self, _: &mut Context<'_, Chat>, name: &str, room: &Room) {
        if room.last_id() == 0 && room.members().next().is_none() {
            return;
        }
        self.client
            .send_idempotent(&[b"SADD", ROOMS_KEY.as_bytes(), name.as_bytes()]);
        for member in room.members() {
            self.write_member(name, member, false);
            // A provisional member's DMs are written once its claim is
            // confirmed: the name, and so its DM list, may be someone else's.
            if member.provisional {
                continue;
            }
            let dms = member
                .dms
                .iter()
                .map(|dm| (dm.id, serde_json::to_string(dm).unwrap_or_default()));
            self.zadd(&Self::dm_key(name, &member.user.name), dms);
        }
        let messages = room
            .backlog()
            .map(|m| (m.id, serde_json::to_string(m).unwrap_or_default()));
        self.zadd(&Self::key(name, "messages"), messages);
        self.set_seq(name, room.last_id());
    }
}

/// One room's load in progress: replies fill `loaded`; the last one hands
/// it to the chat.
struct Load {
    room: String,
    loaded: Loaded,
    outstanding: usize,
    failed: bool,
    route: Route<Chat>,
}

impl Load {
    fn fail(&mut self, what: &str, error: &str) {
        if !self.failed {
            warn!("loading room {:?} from redis ({what}): {error}", self.room);
        }
        self.failed = true;
    }

    fn done(load: &Rc<RefCell<Load>>, lp: &mut LoopHandle) {
        let mut this = load.borrow_mut();
        this.outstanding -= 1;
        if this.outstanding > 0 {
            return;
        }
        let loaded = std::mem::take(&mut this.loaded);
        let room = this.room.clone();
        let route = this.route;
        drop(this);
        debug!(
            "room {room:?} from redis: {} messages, {} members, {} dms",
            loaded.messages.len(),
            loaded.members.len(),
            loaded.dms.len()
        );
        if !lp.with(route, move |chat, ctx| chat.room_loaded(ctx, &room, loaded)) {
            warn!("the chat is gone; a room loaded from redis is dropped");
        }
    }
}

/// The elements of an array reply, or why there are none.
fn array(reply: Result<Value, RedisError>) -> Result<Vec<Value>, String> {
    match reply {
        Ok(value) => value
            .into_array()
            .map_err(|v| format!("not an array: {v:?}")),
        Err(e) => Err(e.to_string()),
    }
}

fn json<T: serde::de::DeserializeOwned>(value: &Value) -> Option<T> {
    serde_json::from_slice(value.as_bytes()?).ok()
}

/// If Redis does not answer a load of `room` within [`LOAD_TIMEOUT`], the
/// room goes on from memory; the answer, when it comes, is merged all the
/// same.
fn give_up_after_timeout(ctx: &mut Context<'_, Chat>, room: &str) {
    let room_name = room.to_owned();
    ctx.set_timer(LOAD_TIMEOUT, move |chat, ctx| {
        if chat.is_loading(&room_name) {
            warn!("redis did not answer within {LOAD_TIMEOUT:?}; room {room_name:?} goes on from memory");
            chat.room_loaded(ctx, &room_name, Loaded::default());
        }
    });
}

/// Reads `name`'s direct messages in `room` into the load `l`, and counts
/// that reply done.
fn load_dms(client: &RedisClient, room: &str, name: String, l: Rc<RefCell<Load>>) {
    let key = RedisStore::dm_key(room, &name);
    client.command(
        &[b"ZRANGE", key.as_bytes(), b"0", b"-1"],
        move |reactor, reply| {
            match array(reply) {
                Ok(items) => {
                    let dms = items
                        .iter()
                        .filter_map(json::<DirectMessage>)
                        .map(|dm| (name.clone(), dm));
                    l.borrow_mut().loaded.dms.extend(dms);
                }
                Err(e) => l.borrow_mut().fail("dms", &e),
            }
            Load::done(&l, reactor);
        },
    );
}
