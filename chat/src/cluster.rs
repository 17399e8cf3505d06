//! Several pawl processes (nodes) sharing one Redis: what one node's users
//! say, who is online there and who they are reach every other node.
//!
//! Every node is a full chat with its rooms in memory; Redis is the shared
//! store (see [`redis_store`](super::redis_store)) and the bus between
//! nodes. Keys and channels, beside the store's:
//!
//! - `pawl:chat:{ROOM}:events`: a channel per room; every node
//!   `PSUBSCRIBE`s to `pawl:chat:{*}:events` and publishes an [`Envelope`]
//!   (its node id, the room, an [`Event`]) for each message, DM, join,
//!   leave and profile change of its own users. A node ignores envelopes
//!   with its own id: its users got those from memory already.
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

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use pawl::reactor::LoopHandle;
use pawl::redis::{RedisClient, RedisConfig, RedisError, RedisSubscriber, Value};
use pawl::{Context, RedisStats, Route};
use serde::{Deserialize, Serialize};

use super::Chat;
use super::protocol::{ChatMessage, DirectMessage, Profile, User};
use super::redis_store::StoredMember;

/// The set of node ids.
const NODES_KEY: &str = "pawl:chat:nodes";

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

/// What travels between nodes on a room's channel.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node.
    pub node: String,
    /// The room.
    pub room: String,
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
    /// A public message, already stored.
    Message {
        /// The message.
        message: ChatMessage,
    },
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

/// How a name claim in the shared members hash went.
#[derive(Debug)]
pub enum Claim {
    /// The name was free and is now ours with the token we offered.
    Won,
    /// Someone (maybe this user, earlier) has it: here is what is stored.
    Taken(StoredMember),
    /// Redis did not answer: go on from memory.
    Failed,
}

/// This node's link to the others. Clones share everything.
#[derive(Debug, Clone)]
pub struct Cluster {
    node: Rc<str>,
    client: RedisClient,
    subscriber: RedisSubscriber,
    ttl: Duration,
    version: Rc<Cell<u64>>,
    /// When the client last connected: a node that was cut off itself does
    /// not declare the others dead until it has been back for `ttl`.
    connected_at: Rc<Cell<Option<Instant>>>,
    /// Set when a graceful stop began: the node has said goodbye and must
    /// not put its presence key back while its connections close.
    stopping: Rc<Cell<bool>>,
}

impl Cluster {
    /// The state of its Redis link (shared with the store): up while both
    /// its command and subscriber connections are; the commands waiting.
    pub fn redis_stats(&self) -> RedisStats {
        let connected = self.client.is_connected() && self.subscriber.is_connected();
        RedisStats::new(connected, self.client.pending())
    }

    /// Joins the nodes on `url`, sharing `client` with the store (so a
    /// message is stored before it is announced). `ttl` is the presence
    /// expiry; keys are refreshed every `ttl / 3` once [`Cluster::listen`]
    /// knows the chat's route.
    pub fn connect(
        reactor: &mut LoopHandle,
        url: &str,
        client: RedisClient,
        ttl: Duration,
    ) -> Result<Cluster, RedisError> {
        let subscriber = RedisSubscriber::connect(reactor, url, RedisConfig::default())?;
        let node = super::new_token()[..16].to_owned();
        info!("cluster node {node}: presence expires after {ttl:?}");
        let cluster = Cluster {
            node: node.into(),
            client,
            subscriber,
            ttl,
            version: Rc::new(Cell::new(0)),
            connected_at: Rc::new(Cell::new(None)),
            stopping: Rc::new(Cell::new(false)),
        };
        Ok(cluster)
    }

    /// True while commands reach Redis now rather than after a reconnect.
    pub fn is_connected(&self) -> bool {
        self.client.is_connected()
    }

    /// Subscribes to the other nodes' events, which reach the chat on
    /// `route`, and refreshes presence.
    pub fn listen(&self, reactor: &mut LoopHandle, route: Route<Chat>) {
        let this = self.clone();
        self.subscriber
            .psubscribe(b"pawl:chat:{*}:events", move |reactor, _, payload| {
                this.on_event(reactor, route, payload);
            });
        // Events published while the subscriber was away are lost: read
        // every room again from Redis.
        let this = self.clone();
        self.subscriber.on_connect(move |reactor| {
            debug!("cluster: subscribed; reloading rooms");
            reactor.with(route, |chat, ctx| chat.reload_all(ctx));
            this.refresh(reactor, route);
        });
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
            reactor.with(route, move |chat, _| {
                for (room, users) in chat.snapshot(0).rooms {
                    for present in users {
                        let name = present.user.name;
                        this.publish(&room, Event::Left { name });
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

    /// Claims `name` in `room` for a new member with `token`, atomically
    /// across nodes (`HSETNX`); `then` gets the outcome later on the loop.
    pub fn claim(
        &self,
        route: Route<Chat>,
        room: &str,
        name: &str,
        stored: &StoredMember,
        then: impl FnOnce(&mut Chat, &mut Context<'_, Chat>, Claim) + 'static,
    ) {
        let key = format!("pawl:chat:{{{room}}}:members");
        let json = serde_json::to_string(stored).unwrap_or_default();
        let (client, name_owned, hash) = (self.client.clone(), name.to_owned(), key.clone());
        self.client.command(
            &[b"HSETNX", key.as_bytes(), name.as_bytes(), json.as_bytes()],
            move |reactor, reply| match reply.map(|v| v.as_int()) {
                Ok(Some(1)) => {
                    reactor.with(route, move |chat, ctx| then(chat, ctx, Claim::Won));
                }
                Ok(_) => {
                    let hget: [&[u8]; 3] = [b"HGET", hash.as_bytes(), name_owned.as_bytes()];
                    client.command(&hget, move |reactor, reply| {
                        let claim = match reply {
                            Ok(value) => value
                                .as_bytes()
                                .and_then(|b| serde_json::from_slice(b).ok())
                                .map_or(Claim::Failed, Claim::Taken),
                            Err(_) => Claim::Failed,
                        };
                        reactor.with(route, move |chat, ctx| then(chat, ctx, claim));
                    });
                }
                Err(e) => {
                    warn!("cluster: cannot claim a name in redis: {e}");
                    reactor.with(route, move |chat, ctx| then(chat, ctx, Claim::Failed));
                }
            },
        );
    }

    /// Tells the other nodes; `presence` events bump this node's version.
    pub fn publish(&self, room: &str, event: Event) {
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
            room: room.to_owned(),
            v,
            event,
        };
        let json = serde_json::to_string(&envelope).unwrap_or_default();
        let channel = format!("pawl:chat:{{{room}}}:events");
        self.client
            .send(&[b"PUBLISH", channel.as_bytes(), json.as_bytes()]);
    }

    fn on_event(&self, reactor: &mut LoopHandle, route: Route<Chat>, payload: &[u8]) {
        let envelope: Envelope = match serde_json::from_slice(payload) {
            Ok(envelope) => envelope,
            Err(e) => return warn!("cluster: bad event from redis: {e}"),
        };
        if *envelope.node == *self.node {
            return;
        }
        reactor.with(route, |chat, ctx| chat.remote_event(ctx, envelope));
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
