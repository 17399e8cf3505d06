//! Several pawl processes (nodes) sharing one Redis: who is online on each
//! node, message ids, and what travels between nodes beside the rooms'
//! public messages.
//!
//! Every node is a full chat with its rooms in memory; Redis is the shared
//! store (see [`redis_store`](super::redis_store)), and the library's
//! topics carry everything between nodes (its broker, channels
//! `pawl:topic:NAME`):
//!
//! - [`room_topic`](super::room_topic) (`chat:room:ROOM`): the room's
//!   public messages, exactly as clients get them. Joined connections
//!   subscribe to it; the chat watches it to keep its backlog.
//! - [`events_topic`] (`chat:events:ROOM`): an
//!   [`Envelope`] (the node id and an [`Event`]) for each DM, join, leave
//!   and profile change of a node's users. Only the chat watches it: each
//!   node works out what its own users see (a user online on two nodes has
//!   not left when one of them says so) and hands DMs to their two parties.
//!
//! Beside the topics, in Redis:
//!
//! - `pawl:chat:{ROOM}:seq`: `INCR`ed (through [`NEXT_ID`], which never
//!   goes below what the node has seen) for every message's id, so ids
//!   are strictly increasing per room across nodes.
//! - `pawl:chat:node:ID`: the node's presence, a [`Snapshot`] of who is
//!   online there, set every `ttl / 3` with an expiry of `ttl`.
//! - `pawl:chat:nodes`: the set of node ids; each node reads it and the
//!   presence keys on every refresh. A node whose key is gone (it died, or
//!   lost Redis for longer than `ttl`) is dropped from presence: at most
//!   `ttl + ttl / 3` after its last refresh (4 s with the default 3 s).
//!
//! A node id is 64 random bits, new for each process, so a restarted node
//! never inherits a dead one's presence.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{info, warn};
use pawl::reactor::LoopHandle;
use pawl::redis::{RedisClient, Value};
use pawl::{Context, RedisStats, Route};
use serde::{Deserialize, Serialize};

use super::claim::{self, Claim};
use super::protocol::{DirectMessage, Profile, User};
use super::redis_store::StoredMember;
use super::{Chat, events_topic};

/// The set of node ids.
const NODES_KEY: &str = "pawl:chat:nodes";

/// The most event bytes (JSON) held while the topics' link is down; past
/// it the oldest are dropped, and the other nodes catch up on them from
/// the store instead. A DM is at most a few KB.
const MAX_HELD_BYTES: usize = 1 << 20;

/// `INCR` of a room's sequence that never hands out an id at or below
/// `ARGV[1]`, the last id the node has seen: a Redis that restarted empty
/// goes on above every id the nodes still remember.
pub const NEXT_ID: &str = "local n = redis.call('INCR', KEYS[1]) \
    local floor = tonumber(ARGV[1]) \
    if n <= floor then n = floor + 1 redis.call('SET', KEYS[1], n) end \
    return n";

/// Raises a room's sequence to `ARGV[1]` unless it is higher already.
pub const RAISE_SEQ: &str = "local v = tonumber(ARGV[1]) \
    if v > tonumber(redis.call('GET', KEYS[1]) or '0') then redis.call('SET', KEYS[1], v) end \
    return 1";

/// What travels between nodes on a room's events topic.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node.
    pub node: String,
    /// The node's presence version after this event (0 for non-presence
    /// events); a presence key with a lower version is older news.
    #[serde(default)]
    pub v: u64,
    /// What happened.
    pub event: Event,
}

/// Something a node's user did.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// A direct message, already stored with both parties.
    Dm {
        /// The message.
        dm: DirectMessage,
    },
    /// A user's first connection on the node (the token lets other nodes
    /// check the name without asking Redis).
    Joined {
        /// Who.
        user: User,
        /// The name's secret.
        token: String,
    },
    /// A user's last connection on the node closed.
    Left {
        /// Who.
        name: String,
    },
    /// A user changed their profile.
    Profile {
        /// The user with the new profile.
        user: User,
    },
    /// The node wrote the room back after Redis returned: read it again.
    Reload,
}

/// A node's presence key: who is online there, by room.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// The node's presence version when it was written.
    pub v: u64,
    /// Room name to the members online on the node.
    pub rooms: BTreeMap<String, Vec<Present>>,
}

/// A member online on a node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Present {
    /// Name and profile.
    pub user: User,
    /// The name's secret.
    pub token: String,
}

/// This node's link to the others. Clones share everything.
#[derive(Debug, Clone)]
pub struct Cluster {
    node: Rc<str>,
    client: RedisClient,
    ttl: Duration,
    version: Rc<Cell<u64>>,
    /// When the client last connected: a node that was cut off itself does
    /// not declare the others dead until it has been back for `ttl`.
    connected_at: Rc<Cell<Option<Instant>>>,
    /// Set when a graceful stop began: the node has said goodbye and must
    /// not put its presence key back while its connections close.
    stopping: Rc<Cell<bool>>,
    /// Events made while the topics' link was down, to send when it is back.
    held: Rc<RefCell<Held>>,
}

/// Events waiting for the topics' link: (events topic, envelope JSON),
/// oldest first, with their total size.
#[derive(Debug, Default)]
struct Held {
    events: VecDeque<(String, String)>,
    bytes: usize,
    dropped: u64,
}

impl Held {
    fn push(&mut self, topic: String, json: String) {
        self.bytes += json.len();
        self.events.push_back((topic, json));
        while self.bytes > MAX_HELD_BYTES {
            let Some((_, oldest)) = self.events.pop_front() else {
                break;
            };
            self.bytes -= oldest.len();
            self.dropped += 1;
        }
    }
}

impl Cluster {
    /// The state of its Redis link (shared with the store): up while it is
    /// connected; the commands waiting.
    pub fn redis_stats(&self) -> RedisStats {
        RedisStats::new(self.client.is_connected(), self.client.pending())
    }

    /// Joins the nodes sharing `client`'s Redis (shared with the store,
    /// so a message is stored before its id moves on). `ttl` is the
    /// presence expiry; keys are refreshed every `ttl / 3` once
    /// [`Cluster::listen`] knows the chat's route.
    pub fn new(client: RedisClient, ttl: Duration) -> Cluster {
        let node = super::new_token()[..16].to_owned();
        info!("cluster node {node}: presence expires after {ttl:?}");
        Cluster {
            node: node.into(),
            client,
            ttl,
            version: Rc::new(Cell::new(0)),
            connected_at: Rc::new(Cell::new(None)),
            stopping: Rc::new(Cell::new(false)),
            held: Rc::default(),
        }
    }

    /// True while commands reach Redis now rather than after a reconnect.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Refreshes presence; the other nodes' events reach the chat on
    /// `route` through the topics it watches.
    pub fn listen(&self, reactor: &mut LoopHandle, route: Route<Chat>) {
        let this = self.clone();
        self.client.on_connect(move |reactor| {
            this.connected_at.set(Some(Instant::now()));
            this.refresh(reactor, route);
        });
        let this = self.clone();
        reactor.add_periodic(self.ttl / 3, move |reactor| this.refresh(reactor, route));
        // A graceful stop says goodbye at once rather than after `ttl`
        // (the loop still turns while connections close, which flushes it).
        let this = self.clone();
        // The stop may begin inside one of the chat's own callbacks (the
        // chat is lent out then): `with` runs this right after it.
        reactor.add_stop_hook(move |reactor| {
            this.stopping.set(true);
            reactor.with(route, move |chat, ctx| {
                for (room, users) in chat.snapshot(0).rooms {
                    for present in users {
                        let name = present.user.name;
                        this.publish(ctx, &room, Event::Left { name });
                    }
                }
                let key = node_key(&this.node);
                this.client.send(&[b"DEL", key.as_bytes()]);
                this.client
                    .send(&[b"SREM", NODES_KEY.as_bytes(), this.node.as_bytes()]);
            });
        });
    }

    /// The next id of `room` from Redis; `then` gets it later on the loop,
    /// or `None` if Redis failed (the chat then numbers from memory).
    ///
    /// The script is not idempotent (it hands out a new id each run), so
    /// it is never sent again after a broken connection: a stall fails it
    /// and the message goes on with an id from memory, as in an outage. If
    /// the stalled Redis runs it when it resumes, an id is skipped, never
    /// handed out twice by Redis.
    pub fn next_id(
        &self,
        route: Route<Chat>,
        room: &str,
        floor: u64,
        then: impl FnOnce(&mut Chat, &mut Context<'_, Chat>, Option<u64>) + 'static,
    ) {
        let key = format!("pawl:chat:{{{room}}}:seq");
        let floor = floor.to_string();
        let args: [&[u8]; 5] = [
            b"EVAL",
            NEXT_ID.as_bytes(),
            b"1",
            key.as_bytes(),
            floor.as_bytes(),
        ];
        self.client.command(&args, move |reactor, reply| {
            let id = match reply.map(|v| v.as_int()) {
                Ok(Some(id)) if id > 0 => Some(id as u64),
                other => {
                    warn!("cluster: no id from redis ({other:?}); numbering from memory");
                    None
                }
            };
            reactor.with(route, move |chat, ctx| then(chat, ctx, id));
        });
    }

    /// Claims `name` in `room` for `stored.token`, atomically across nodes
    /// and safe to run twice (see [`claim`]); `then` gets the
    /// outcome later on the loop.
    pub fn claim(
        &self,
        route: Route<Chat>,
        room: &str,
        name: &str,
        stored: &StoredMember,
        then: impl FnOnce(&mut Chat, &mut Context<'_, Chat>, Claim) + 'static,
    ) {
        claim::claim(&self.client, route, room, name, stored, then);
    }

    /// Tells the other nodes (on the room's events topic); presence events
    /// bump this node's version. While the topics' link is down the event
    /// is held (up to 1 MiB) and sent when it is back
    /// ([`Cluster::send_held`]): a DM, a join confirmed or a room written
    /// back while Redis was half back must reach the others live, not at
    /// their next reload. The receivers drop what they knew already (DMs
    /// by id, presence by version).
    pub fn publish(&self, ctx: &mut Context<'_, Chat>, room: &str, event: Event) {
        let presence = matches!(
            event,
            Event::Joined { .. } | Event::Left { .. } | Event::Profile { .. }
        );
        let v = if presence {
            self.version.set(self.version.get() + 1);
            self.version.get()
        } else {
            0
        };
        let envelope = Envelope {
            node: self.node.to_string(),
            v,
            event,
        };
        let json = serde_json::to_string(&envelope).unwrap_or_default();
        if ctx.topics_connected() {
            ctx.publish(&events_topic(room), &json);
        } else {
            self.held.borrow_mut().push(events_topic(room), json);
        }
    }

    /// The topics' link is back: sends the events held meanwhile, in order.
    pub fn send_held(&self, ctx: &mut Context<'_, Chat>) {
        let held = std::mem::take(&mut *self.held.borrow_mut());
        if held.events.is_empty() && held.dropped == 0 {
            return;
        }
        info!(
            "cluster: the other nodes are reachable again; sending {} events held meanwhile \
             ({} older ones dropped, past {MAX_HELD_BYTES} bytes)",
            held.events.len(),
            held.dropped
        );
        for (topic, json) in held.events {
            ctx.publish(&topic, &json);
        }
    }

    /// Writes this node's presence key, then reads every node's.
    fn refresh(&self, reactor: &mut LoopHandle, route: Route<Chat>) {
        if !self.client.is_connected() || self.stopping.get() {
            return;
        }
        let version = self.version.get();
        let Some(snapshot) = reactor.try_with(route, |chat, _| chat.snapshot(version)) else {
            return;
        };
        let json = serde_json::to_string(&snapshot).unwrap_or_default();
        let key = node_key(&self.node);
        let ttl = self.ttl.as_millis().max(1).to_string();
        self.client.send(&[
            b"SET",
            key.as_bytes(),
            json.as_bytes(),
            b"PX",
            ttl.as_bytes(),
        ]);
        self.client
            .send(&[b"SADD", NODES_KEY.as_bytes(), self.node.as_bytes()]);
        let this = self.clone();
        self.client.command(
            &[b"SMEMBERS", NODES_KEY.as_bytes()],
            move |reactor, reply| {
                let Ok(Ok(members)) = reply.map(Value::into_array) else {
                    return;
                };
                let others: Vec<String> = members
                    .iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .filter(|id| *id != *this.node)
                    .collect();
                this.read_nodes(reactor, route, others);
            },
        );
    }

    fn read_nodes(&self, reactor: &mut LoopHandle, route: Route<Chat>, others: Vec<String>) {
        let may_drop = self
            .connected_at
            .get()
            .is_some_and(|at| at.elapsed() >= self.ttl);
        if others.is_empty() {
            reactor.with(route, move |chat, ctx| {
                chat.apply_presence(ctx, Vec::new(), may_drop)
            });
            return;
        }
        let keys: Vec<String> = others.iter().map(|id| node_key(id)).collect();
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(keys.iter().map(|k| k.as_bytes()));
        let this = self.clone();
        self.client.command(&args, move |reactor, reply| {
            let Ok(Ok(values)) = reply.map(Value::into_array) else {
                return;
            };
            let mut nodes = Vec::new();
            for (id, value) in others.into_iter().zip(values) {
                match value.as_bytes().map(serde_json::from_slice::<Snapshot>) {
                    Some(Ok(snapshot)) => nodes.push((id, snapshot)),
                    Some(Err(e)) => warn!("cluster: bad presence key of node {id}: {e}"),
                    None if may_drop => {
                        // Expired: the node died or was cut off from Redis.
                        this.client
                            .send(&[b"SREM", NODES_KEY.as_bytes(), id.as_bytes()]);
                    }
                    None => {}
                }
            }
            reactor.with(route, move |chat, ctx| {
                chat.apply_presence(ctx, nodes, may_drop)
            });
        });
    }
}

fn node_key(node: &str) -> String {
    format!("pawl:chat:node:{node}")
}

/// A profile from another node, cleaned as a local one would be.
pub fn clean(user: User) -> User {
    User {
        name: user.name,
        profile: Profile::sanitized(user.profile),
    }
}
