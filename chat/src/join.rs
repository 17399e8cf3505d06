//! Joining a room: a name new to this node is first claimed in Redis
//! (when the chat spans several nodes), so two nodes never hand the same
//! name two tokens; then the welcome, and the news to everyone else. A
//! name that cannot be claimed (Redis unreachable or stalled) is taken
//! provisionally and claimed again when Redis is back (see
//! [`claim`](super::claim)).

use log::debug;
use pawl::{ConnId, Context};

use super::claim::Claim;
use super::cluster::Event;
use super::protocol::{DirectMessage, ErrorCode, Profile, ServerMessage};
use super::{
    Chat, Session, StoredMember, check_name, error, new_token, plausible_token, room_topic, send,
};

/// What a join asked for.
pub(super) struct JoinRequest {
    pub name: String,
    pub profile: Option<Profile>,
    pub token: Option<String>,
    pub since: Option<u64>,
}

impl Chat {
    /// A `join`: at once when memory knows the name (or there is no other
    /// node to ask), else after the claim in Redis.
    pub(super) fn join(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        conn: ConnId,
        session: &mut Session,
        room_name: &str,
        request: JoinRequest,
    ) {
        if let Err(what) = check_name(&request.name) {
            return error(ctx, conn, ErrorCode::BadRequest, &what);
        }
        let known = self
            .rooms
            .get(room_name)
            .is_some_and(|e| e.room.member(&request.name).is_some());
        // A new name with Redis unreachable: taken now, checked later.
        let unchecked = !known && self.cluster.is_some();
        let Some(cluster) = self.live_cluster().filter(|_| !known).cloned() else {
            return self.join_now(ctx, conn, session, room_name, request, unchecked);
        };
        // A client may bring a token for a name nobody has (the server
        // restarted without a store): it keeps it, so its saved token
        // stays good.
        let token = request
            .token
            .clone()
            .filter(|t| plausible_token(t))
            .unwrap_or_else(new_token);
        let stored = StoredMember {
            token: token.clone(),
            profile: request.profile.clone().unwrap_or_default().sanitized(),
        };
        session.joining = true;
        let room = room_name.to_owned();
        let name = request.name.clone();
        let claimed = stored.clone();
        cluster.claim(
            ctx.route(),
            room_name,
            &request.name.clone(),
            &claimed,
            move |chat, ctx, claim| {
                let mut request = request;
                let provisional = matches!(claim, Claim::Failed);
                if let Some(entry) = chat.rooms.get_mut(&room) {
                    match claim {
                        Claim::Won => {
                            entry.room.add_member(&name, &token, stored.profile);
                            request.token = Some(token);
                        }
                        Claim::Taken(s) => {
                            entry
                                .room
                                .add_member(&name, &s.token, s.profile.sanitized());
                        }
                        // The claim may have run all the same (a stalled
                        // Redis runs it when it resumes): the member takes
                        // the token it offered, so that claim is its own.
                        Claim::Failed => request.token = Some(token),
                    }
                }
                ctx.with_session(conn, |ctx, session| {
                    session.joining = false;
                    let held = std::mem::take(&mut session.held);
                    chat.join_now(ctx, conn, session, &room, request, provisional);
                    for text in held {
                        if ctx.is_open(conn) {
                            chat.handle(ctx, conn, session, &text);
                        }
                    }
                });
            },
        );
    }

    fn join_now(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        conn: ConnId,
        session: &mut Session,
        room_name: &str,
        request: JoinRequest,
        provisional: bool,
    ) {
        let JoinRequest {
            name,
            profile,
            token,
            since,
        } = request;
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
        let created = room.member(&name).is_none();
        // A `since` past the room's last id comes from another history (a
        // restart without a store): the client gets everything instead, and
        // `last_id` in the welcome tells it to start over.
        let since = since.filter(|&s| s <= room.last_id());
        let adopt = token.clone().filter(|t| plausible_token(t));
        let make_token = || adopt.unwrap_or_else(new_token);
        let (member, came_online) = match room.join(conn, &name, token.as_deref(), make_token) {
            Ok(joined) => joined,
            Err(code) => {
                let what = format!("{name:?} is taken; joining as it needs its token");
                return error(ctx, conn, code, &what);
            }
        };
        if created && provisional {
            member.provisional = true;
            debug!("{conn}: {name:?} taken provisionally: redis cannot check it now");
        }
        let first_here = member.conns.len() == 1;
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
        let member_provisional = member.provisional;
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
        // The room's public messages come through its topic from now on.
        ctx.subscribe(conn, &room_topic(room_name));
        if came_online {
            let json = ServerMessage::Joined { user: &you }.to_json();
            ctx.broadcast(room.connections().filter(|&c| c != conn), json.as_str());
        } else if changed {
            let json = ServerMessage::Profile { user: &you }.to_json();
            ctx.broadcast(room.connections(), json.as_str());
        }
        // A provisional member is news for the other nodes only once its
        // claim is confirmed: its token may not be the name's.
        if let Some(cluster) = cluster.as_ref().filter(|_| !member_provisional) {
            if first_here {
                let user = you.clone();
                cluster.publish(ctx, room_name, Event::Joined { user, token });
            } else if changed {
                cluster.publish(ctx, room_name, Event::Profile { user: you });
            }
        }
        debug!("{conn} joined {room_name:?} as {name:?}");
        session.name = Some(name);
    }
}
