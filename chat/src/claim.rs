//! Names in the shared members hash, `pawl:chat:{ROOM}:members`, where a
//! name maps to its token (and profile) for every node.
//!
//! Every write of a member goes through [`CLAIM`], a conditional write: the
//! name is set when nobody holds it or when its holder has the same token,
//! and otherwise Redis answers with the holder and changes nothing. So:
//!
//! - a claim that runs twice (sent again after a broken connection, or run
//!   by a stalled Redis after pawl gave up on it) finds its own token and
//!   is still a success: running it twice is harmless;
//! - a name taken on a node that could not ask Redis (an outage) is never
//!   written over a claim made before: that node's queued write is refused.
//!
//! A name taken while Redis cannot be asked is *provisional*
//! ([`Member::provisional`](super::room::Member::provisional)). Each time
//! the Redis client connects, the node claims its provisional names again
//! ([`Chat::verify_claims`]): won, the member is confirmed and announced
//! (its direct messages, held back meanwhile, are written and published);
//! taken, every session that used the name loses it with a `name_taken`
//! error, and the name's owner's record replaces it. A provisional member
//! never receives the owner's direct messages: the store's are not merged
//! into it and other nodes' are not delivered to it.

use log::{info, warn};
use pawl::redis::{RedisClient, Value};
use pawl::{Context, Route};

use super::cluster::Event;
use super::protocol::{ErrorCode, ServerMessage};
use super::redis_store::StoredMember;
use super::{Chat, error, room_topic};

/// The conditional write of a member: `KEYS[1]` the members hash,
/// `ARGV[1]` the name, `ARGV[2]` its token, `ARGV[3]` the JSON to store,
/// `ARGV[4]` `1` to update the record when the token is the same (a new
/// profile) or `0` to leave it (writing a room back from memory, which may
/// be older than what another node wrote). Answers 1 when the name is this
/// token's, else the holder's JSON.
pub const CLAIM: &str = "local held = redis.call('HGET', KEYS[1], ARGV[1]) \
    if held then \
      local ok, m = pcall(cjson.decode, held) \
      if not (ok and type(m) == 'table' and m.token == ARGV[2]) then return held end \
      if ARGV[4] ~= '1' then return 1 end \
    end \
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) \
    return 1";

/// How a name claim in the shared members hash went.
#[derive(Debug)]
pub enum Claim {
    /// The name is ours: it was free, or held by the token we offered.
    Won,
    /// Someone else has it: here is what is stored.
    Taken(StoredMember),
    /// Redis did not answer: go on from memory, provisionally.
    Failed,
}

fn members_key(room: &str) -> String {
    format!("pawl:chat:{{{room}}}:members")
}

/// The arguments of a [`CLAIM`] run.
fn claim_args<'a>(
    key: &'a str,
    name: &'a str,
    token: &'a str,
    json: &'a str,
    update: bool,
) -> [&'a [u8]; 8] {
    [
        b"EVAL",
        CLAIM.as_bytes(),
        b"1",
        key.as_bytes(),
        name.as_bytes(),
        token.as_bytes(),
        json.as_bytes(),
        if update { b"1" } else { b"0" },
    ]
}

/// Writes a member unless its name is someone else's (fire and forget).
/// It is safe to run twice, so it is sent again after a broken connection.
pub fn write_member(
    client: &RedisClient,
    room: &str,
    name: &str,
    stored: &StoredMember,
    update: bool,
) {
    let key = members_key(room);
    let json = serde_json::to_string(stored).unwrap_or_default();
    client.send_idempotent(&claim_args(&key, name, &stored.token, &json, update));
}

/// Claims `name` in `room` for `stored.token`; `then` gets the outcome
/// later on the loop, through `route`.
///
/// The claim is idempotent, but it is not sent again after a broken
/// connection: the join waiting for it goes on provisionally instead of
/// waiting for Redis to come back, and the name is claimed again once it
/// does ([`Chat::verify_claims`]).
pub fn claim(
    client: &RedisClient,
    route: Route<Chat>,
    room: &str,
    name: &str,
    stored: &StoredMember,
    then: impl FnOnce(&mut Chat, &mut Context<'_, Chat>, Claim) + 'static,
) {
    let key = members_key(room);
    let json = serde_json::to_string(stored).unwrap_or_default();
    let args = claim_args(&key, name, &stored.token, &json, true);
    client.command(&args, move |lp, reply| {
        let claim = match reply {
            Ok(Value::Int(1)) => Claim::Won,
            Ok(held) => match held.as_bytes().map(serde_json::from_slice) {
                Some(Ok(stored)) => Claim::Taken(stored),
                _ => {
                    warn!("claims: an unreadable member record in redis: {held:?}");
                    Claim::Failed
                }
            },
            Err(e) => {
                warn!("claims: cannot claim a name in redis ({e}); going on provisionally");
                Claim::Failed
            }
        };
        lp.with(route, move |chat, ctx| then(chat, ctx, claim));
    });
}

impl Chat {
    /// Claims every provisional name again (the Redis client just
    /// connected): each is confirmed or given up when Redis answers.
    pub fn verify_claims(&mut self, ctx: &mut Context<'_, Chat>) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        for (room, entry) in &self.rooms {
            for member in entry.room.members().filter(|m| m.provisional) {
                let stored = StoredMember {
                    token: member.token.clone(),
                    profile: member.user.profile.clone(),
                };
                let name = &member.user.name;
                let (room_name, owned_name, token) =
                    (room.clone(), name.clone(), member.token.clone());
                cluster.claim(ctx.route(), room, name, &stored, move |chat, ctx, claim| {
                    chat.claim_checked(ctx, &room_name, &owned_name, &token, claim);
                });
            }
        }
    }

    /// The answer to a provisional name's claim.
    fn claim_checked(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        room_name: &str,
        name: &str,
        token: &str,
        claim: Claim,
    ) {
        let still = self
            .rooms
            .get(room_name)
            .and_then(|e| e.room.member(name))
            .is_some_and(|m| m.provisional && m.token == token);
        if !still {
            return;
        }
        match claim {
            Claim::Won => self.confirm(ctx, room_name, name),
            Claim::Taken(owner) => self.give_up(ctx, room_name, name, owner),
            Claim::Failed => {}
        }
    }

    /// A provisional name is ours after all: announce the member, and write
    /// and publish the direct messages held back meanwhile.
    fn confirm(&mut self, ctx: &mut Context<'_, Chat>, room_name: &str, name: &str) {
        let Chat {
            rooms,
            store,
            cluster,
            ..
        } = self;
        let Some(entry) = rooms.get_mut(room_name) else {
            return;
        };
        let room = &mut entry.room;
        let Some(member) = room.member_mut(name) else {
            return;
        };
        member.provisional = false;
        info!("claims: {name:?} in {room_name:?}, taken while redis was unreachable, is confirmed");
        let (user, token, online) = (
            member.user.clone(),
            member.token.clone(),
            !member.conns.is_empty(),
        );
        let dms: Vec<_> = member.dms.iter().cloned().collect();
        for dm in &dms {
            store.save_dm(ctx, room_name, name, dm);
        }
        let Some(cluster) = cluster else {
            return;
        };
        if online {
            cluster.publish(ctx, room_name, Event::Joined { user, token });
        }
        for dm in dms {
            let other = if dm.from == name { &dm.to } else { &dm.from };
            if !room.member(other).is_some_and(|m| m.provisional) {
                cluster.publish(ctx, room_name, Event::Dm { dm });
            }
        }
    }

    /// A provisional name is someone else's: every session that used it
    /// loses it (`name_taken`; it may join again under another name) and
    /// leaves the room's topic (its public messages are for joined
    /// connections), and the owner's record replaces the provisional one,
    /// whose direct messages go with it (the other party keeps its copy).
    fn give_up(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        room_name: &str,
        name: &str,
        owner: StoredMember,
    ) {
        let Some(entry) = self.rooms.get_mut(room_name) else {
            return;
        };
        let room = &mut entry.room;
        let Some(before) = room.member(name).map(|m| m.user.clone()) else {
            return;
        };
        let conns = room.hand_over(name, owner.token, owner.profile.sanitized());
        warn!(
            "claims: {name:?} in {room_name:?} was taken here while redis was unreachable, \
             but it is someone else's; {} sessions lose it",
            conns.len()
        );
        let topic = room_topic(room_name);
        for &conn in &conns {
            let what = format!(
                "{name:?} was already someone else's when it was taken here while the chat \
                 could not check it; join again with another name"
            );
            error(ctx, conn, ErrorCode::NameTaken, &what);
            ctx.unsubscribe(conn, &topic);
            ctx.with_session(conn, |_, session| session.name = None);
        }
        let Some(member) = room.member(name) else {
            return;
        };
        let (after, online) = (member.user.clone(), member.online());
        let others: Vec<_> = room.connections().collect();
        if !conns.is_empty() && !online {
            let json = ServerMessage::Left { name }.to_json();
            ctx.broadcast(others, json.as_str());
        } else if after != before {
            let json = ServerMessage::Profile { user: &after }.to_json();
            ctx.broadcast(others, json.as_str());
        }
    }
}
