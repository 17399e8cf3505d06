//! What other nodes tell this one (see [`cluster`](super::cluster)), as
//! the topics the chat watches bring it: their users' public messages (for
//! the backlog: the library has delivered them), DMs and profiles, and who
//! is online on each node, from their events and from their presence keys.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use log::{debug, info};
use pawl::{ConnId, Context};

use super::Chat;
use super::cluster::{Envelope, Event, Present, Snapshot, clean};
use super::protocol::{ChatMessage, DirectMessage, ServerMessage, User};
use super::room::{Member, Room};

/// Least time between two reloads of a room for gaps in its ids.
const GAP_RELOAD_EVERY: Duration = Duration::from_secs(1);

impl Chat {
    /// A public message another node's user said; the library delivered it
    /// to the room's connections here. An id past the next one means
    /// something was missed (the topics are at most once: Redis was away,
    /// or this node was not listening yet), so the room is read again from
    /// the store, which has every message.
    pub(super) fn remote_message(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        room_name: &str,
        message: ChatMessage,
    ) {
        let Some(entry) = self.rooms.get_mut(room_name) else {
            return;
        };
        let gap = message.id > entry.room.last_id() + 1;
        entry.room.insert_message(message);
        let now = Instant::now();
        let due = entry
            .gap_reload
            .is_none_or(|at| now.duration_since(at) >= GAP_RELOAD_EVERY);
        if gap && !entry.loading && due {
            debug!("room {room_name:?}: ids skipped; reading it again from the store");
            entry.gap_reload = Some(now);
            self.store.load(ctx, room_name);
        }
    }

    /// Something a user on another node did.
    pub(super) fn remote_event(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        room_name: &str,
        envelope: Envelope,
    ) {
        let Envelope { node, v, event } = envelope;
        if v > 0 {
            let seen = self.versions.entry(node.clone()).or_default();
            if v <= *seen {
                return; // a presence key already told us
            }
            *seen = v;
        }
        let Some(entry) = self.rooms.get_mut(room_name) else {
            return;
        };
        if let Event::Reload = event {
            if !entry.loading {
                self.store.load(ctx, room_name);
            }
            return;
        }
        let room = &mut entry.room;
        match event {
            Event::Dm { dm } => {
                room.note_id(dm.id);
                // Each party here that did not have it (it may have been
                // read from the store already, or be provisional here).
                let fresh = room.push_remote_dm(&dm);
                send_dm_to(ctx, fresh, &dm);
            }
            Event::Joined { user, token } => {
                room.add_member(&user.name, &token, user.profile.clone());
                present(ctx, room, &node, clean(user));
            }
            Event::Left { name } => gone(ctx, room, &node, &name),
            Event::Profile { user } => {
                let user = clean(user);
                if let Some(member) = room.member_mut(&user.name)
                    && member.user != user
                {
                    member.user = user.clone();
                    let json = ServerMessage::Profile { user: &user }.to_json();
                    ctx.broadcast(room.connections(), json.as_str());
                }
            }
            Event::Reload => {}
        }
    }

    /// This node's presence key: who is online here, by room.
    pub fn snapshot(&self, version: u64) -> Snapshot {
        let mut snapshot = Snapshot {
            v: version,
            ..Snapshot::default()
        };
        for (name, entry) in &self.rooms {
            let here: Vec<Present> = entry
                .room
                .members()
                // A provisional member's token may not be the name's.
                .filter(|m| !m.conns.is_empty() && !m.provisional)
                .map(|m| Present {
                    user: m.user.clone(),
                    token: m.token.clone(),
                })
                .collect();
            if !here.is_empty() {
                snapshot.rooms.insert(name.clone(), here);
            }
        }
        snapshot
    }

    /// The other nodes' presence keys: each one newer than its events
    /// replaces what this node believed about it. With `may_drop`, a node
    /// known here but missing from `nodes` is gone, and so are its users.
    pub fn apply_presence(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        nodes: Vec<(String, Snapshot)>,
        may_drop: bool,
    ) {
        let live: HashSet<String> = nodes.iter().map(|(id, _)| id.clone()).collect();
        for (node, snapshot) in nodes {
            let seen = self.versions.entry(node.clone()).or_default();
            if snapshot.v < *seen {
                continue; // its events are newer
            }
            *seen = snapshot.v;
            // Only rooms this node uses: a room it opens later learns who is
            // online elsewhere at the next refresh.
            for (room_name, users) in &snapshot.rooms {
                let Some(entry) = self.rooms.get_mut(room_name) else {
                    continue;
                };
                let room = &mut entry.room;
                for p in users {
                    room.add_member(&p.user.name, &p.token, p.user.profile.clone());
                    present(ctx, room, &node, clean(p.user.clone()));
                }
            }
            for (room_name, entry) in self.rooms.iter_mut() {
                let listed: HashSet<&str> = snapshot
                    .rooms
                    .get(room_name)
                    .map(|users| users.iter().map(|p| p.user.name.as_str()).collect())
                    .unwrap_or_default();
                for name in entry.room.remote_names(&node) {
                    if !listed.contains(name.as_str()) {
                        gone(ctx, &mut entry.room, &node, &name);
                    }
                }
            }
        }
        if !may_drop {
            return;
        }
        let dead: Vec<String> = self
            .versions
            .keys()
            .filter(|id| !live.contains(*id))
            .cloned()
            .collect();
        for node in dead {
            info!("cluster: node {node} is gone; dropping its users from presence");
            self.versions.remove(&node);
            for entry in self.rooms.values_mut() {
                for name in entry.room.remote_names(&node) {
                    gone(ctx, &mut entry.room, &node, &name);
                }
            }
        }
    }
}

/// `user` is online on `node`: this node's users hear of it if that is
/// news to them (or of the profile, if that changed).
fn present(ctx: &mut Context<'_, Chat>, room: &mut Room, node: &str, user: User) {
    let Some(member) = room.member_mut(&user.name) else {
        return;
    };
    let changed = member.user.profile != user.profile;
    member.user.profile = user.profile.clone();
    match room.set_remote(node, &user.name, true) {
        Some(true) => {
            debug!("{:?} is online on node {node}", user.name);
            let json = ServerMessage::Joined { user: &user }.to_json();
            ctx.broadcast(room.connections(), json.as_str());
        }
        _ if changed => {
            let json = ServerMessage::Profile { user: &user }.to_json();
            ctx.broadcast(room.connections(), json.as_str());
        }
        _ => {}
    }
}

/// `name` has no connection left on `node`.
fn gone(ctx: &mut Context<'_, Chat>, room: &mut Room, node: &str, name: &str) {
    if room.set_remote(node, name, false) == Some(false) {
        let json = ServerMessage::Left { name }.to_json();
        ctx.broadcast(room.connections(), json.as_str());
    }
}

/// Sends a DM to every connection here of its sender and its recipient.
pub(super) fn deliver_dm(ctx: &mut Context<'_, Chat>, room: &Room, dm: &DirectMessage) {
    let parties = [&dm.from, &dm.to].map(|name| room.member(name));
    send_dm_to(ctx, parties.into_iter().flatten(), dm);
}

/// Sends `dm` to every connection of `members`, once each.
pub(super) fn send_dm_to<'m>(
    ctx: &mut Context<'_, Chat>,
    members: impl IntoIterator<Item = &'m Member>,
    dm: &DirectMessage,
) {
    let mut conns: Vec<ConnId> = members
        .into_iter()
        .flat_map(|m| m.conns.iter().copied())
        .collect();
    if conns.is_empty() {
        return;
    }
    conns.sort();
    conns.dedup();
    let json = ServerMessage::Dm(dm).to_json();
    ctx.broadcast(conns, json.as_str());
}
