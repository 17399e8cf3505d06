//! One room's state: its members (with their tokens, profiles and open
//! connections), the public backlog, each member's direct messages, and the
//! id sequence. Pure data: no sockets, no store; the component sends.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use super::names::skeleton;
use super::protocol::{ChatMessage, DirectMessage, ErrorCode, Profile, User};

/// Someone who joined the room at least once.
#[derive(Debug, Clone)]
pub struct Member<C = pawl::ConnId> {
    /// Name and profile.
    pub user: User,
    /// The secret that proves the name.
    pub token: String,
    /// Open connections (tabs) on this process.
    pub conns: BTreeSet<C>,
    /// Other pawl processes (node ids) where this member has connections,
    /// as their events and presence keys say (see `cluster`).
    pub nodes: BTreeSet<String>,
    /// The last direct messages to or from this member, oldest first.
    pub dms: VecDeque<DirectMessage>,
    /// When the member last joined, left or had a DM: the oldest idle go
    /// first when the chat is over its memory budget.
    pub active: Instant,
    /// Claimed on this node while the claim could not be checked in Redis
    /// (see `join`): until the check, the member is not announced to other
    /// nodes, gets no direct messages from them or from the store, and its
    /// own are not written or published; if the name turns out to be
    /// someone else's, the member gives it up.
    pub provisional: bool,
}

impl<C> Member<C> {
    /// True while any connection is open, here or on another node.
    pub fn online(&self) -> bool {
        !self.conns.is_empty() || !self.nodes.is_empty()
    }
}

/// What a store loaded for a room, merged with [`Room::merge`].
#[derive(Debug, Default)]
pub struct Loaded {
    /// Public messages, any order, maybe with duplicates.
    pub messages: Vec<ChatMessage>,
    /// Members: name, token, profile.
    pub members: Vec<(String, String, Profile)>,
    /// Direct messages by owner name.
    pub dms: Vec<(String, DirectMessage)>,
    /// The last id handed out, if the store kept it.
    pub last_id: u64,
}

/// A room.
#[derive(Debug)]
pub struct Room<C = pawl::ConnId> {
    last_id: u64,
    backlog: VecDeque<ChatMessage>,
    members: HashMap<String, Member<C>>,
    /// The first member's name for each confusable skeleton.
    skeletons: HashMap<String, String>,
    keep: usize,
    /// What the room holds, by [`cost`]'s estimate.
    bytes: usize,
}

/// Estimates of what the chat keeps, in bytes: the structs and their
/// strings, with room for the maps' own overhead. The chat's memory budget
/// is counted in these.
pub mod cost {
    use super::{ChatMessage, DirectMessage, Member};

    /// A room with nothing in it, beside its name.
    pub const ROOM: usize = 512;

    /// A profile at its largest (a colour and 140 characters of status),
    /// so that profile changes need no recount.
    const PROFILE: usize = 8 + 140 * 4;

    /// A public message in the backlog.
    pub fn message(m: &ChatMessage) -> usize {
        std::mem::size_of::<ChatMessage>() + m.from.len() + m.text.len()
    }

    /// A direct message in one member's list.
    pub fn dm(d: &DirectMessage) -> usize {
        std::mem::size_of::<DirectMessage>() + d.from.len() + d.to.len() + d.text.len()
    }

    /// A member without their DMs: the entry, the name twice (key and
    /// user), the token, the profile, the skeleton's entry.
    pub fn member<C>(m: &Member<C>) -> usize {
        std::mem::size_of::<Member<C>>() + 64 + 4 * m.user.name.len() + m.token.len() + PROFILE
    }
}

impl<C: Ord + Copy> Room<C> {
    /// An empty room keeping the last `keep` public messages and `keep`
    /// direct messages per member.
    pub fn new(keep: usize) -> Room<C> {
        Room {
            last_id: 0,
            backlog: VecDeque::new(),
            members: HashMap::new(),
            skeletons: HashMap::new(),
            keep,
            bytes: 0,
        }
    }

    /// Takes `name` for a connection: a new name gets `new_token`, a known
    /// one needs its token. Returns the member and whether it just came
    /// online (its first connection).
    pub fn join(
        &mut self,
        conn: C,
        name: &str,
        token: Option<&str>,
        new_token: impl FnOnce() -> String,
    ) -> Result<(&mut Member<C>, bool), ErrorCode> {
        if let Some(member) = self.members.get(name)
            && token != Some(member.token.as_str())
        {
            return Err(ErrorCode::NameTaken);
        }
        if self.lookalike(name).is_some() {
            return Err(ErrorCode::NameTaken);
        }
        self.note_skeleton(name);
        let bytes = &mut self.bytes;
        let member = self.members.entry(name.to_owned()).or_insert_with(|| {
            let member = Member {
                user: User {
                    name: name.to_owned(),
                    profile: Profile::default(),
                },
                token: new_token(),
                conns: BTreeSet::new(),
                nodes: BTreeSet::new(),
                dms: VecDeque::new(),
                provisional: false,
                active: Instant::now(),
            };
            *bytes += cost::member(&member);
            member
        });
        member.active = Instant::now();
        let came_online = !member.online();
        member.conns.insert(conn);
        Ok((member, came_online))
    }

    /// Drops a connection. Returns whether it was the member's last one
    /// here, and whether that took the member offline everywhere.
    pub fn leave(&mut self, conn: C, name: &str) -> (bool, bool) {
        match self.members.get_mut(name) {
            Some(m) if m.conns.contains(&conn) => {
                m.conns.remove(&conn);
                m.active = Instant::now();
                (m.conns.is_empty(), !m.online())
            }
            _ => (false, false),
        }
    }

    /// Another member's name that a reader could take `name` for, if a
    /// new member called `name` would be confused with one.
    pub fn lookalike(&self, name: &str) -> Option<&str> {
        if self.members.contains_key(name) {
            return None;
        }
        self.skeletons.get(&skeleton(name)).map(String::as_str)
    }

    /// Files `name` under its skeleton unless a member has it already
    /// (the first keeps it: older stores may hold lookalikes).
    fn note_skeleton(&mut self, name: &str) {
        self.skeletons
            .entry(skeleton(name))
            .or_insert_with(|| name.to_owned());
    }

    /// Adds a member known elsewhere (another node, the store) unless
    /// memory has it already.
    pub fn add_member(&mut self, name: &str, token: &str, profile: Profile) -> &mut Member<C> {
        if !self.members.contains_key(name) {
            self.note_skeleton(name);
        }
        let bytes = &mut self.bytes;
        self.members.entry(name.to_owned()).or_insert_with(|| {
            let member = Member {
                user: User {
                    name: name.to_owned(),
                    profile,
                },
                token: token.to_owned(),
                conns: BTreeSet::new(),
                nodes: BTreeSet::new(),
                dms: VecDeque::new(),
                provisional: false,
                active: Instant::now(),
            };
            *bytes += cost::member(&member);
            member
        })
    }

    /// Sets where `node` has `name` online; returns whether the member came
    /// online (`true`) or went offline (`false`) everywhere, if either.
    pub fn set_remote(&mut self, node: &str, name: &str, here: bool) -> Option<bool> {
        let member = self.members.get_mut(name)?;
        let before = member.online();
        if here {
            member.nodes.insert(node.to_owned());
        } else {
            member.nodes.remove(node);
        }
        (before != member.online()).then_some(!before)
    }

    /// Names `node` has online in this room.
    pub fn remote_names(&self, node: &str) -> Vec<String> {
        self.members
            .values()
            .filter(|m| m.nodes.contains(node))
            .map(|m| m.user.name.clone())
            .collect()
    }

    /// A member by name.
    pub fn member(&self, name: &str) -> Option<&Member<C>> {
        self.members.get(name)
    }

    /// A member by name, to change.
    pub fn member_mut(&mut self, name: &str) -> Option<&mut Member<C>> {
        self.members.get_mut(name)
    }

    /// A provisional member's name turned out to be someone else's: the
    /// owner's token and profile replace it, its direct messages go (the
    /// other party keeps its copy), and its connections here lose the name.
    /// Returns those connections (none if `name` is not provisional here).
    pub fn hand_over(&mut self, name: &str, token: String, profile: Profile) -> BTreeSet<C> {
        let Some(member) = self.members.get_mut(name).filter(|m| m.provisional) else {
            return BTreeSet::new();
        };
        // Counted again whole: the token's length may differ, the DMs go.
        self.bytes -= cost::member(member) + member.dms.iter().map(cost::dm).sum::<usize>();
        member.token = token;
        member.user.profile = profile;
        member.dms.clear();
        member.provisional = false;
        member.active = Instant::now();
        self.bytes += cost::member(member);
        std::mem::take(&mut member.conns)
    }

    /// Everyone online, by name.
    pub fn online_users(&self) -> Vec<&User> {
        let mut users: Vec<&User> = self
            .members
            .values()
            .filter(|m| m.online())
            .map(|m| &m.user)
            .collect();
        users.sort_by(|a, b| a.name.cmp(&b.name));
        users
    }

    /// Every open connection of every member.
    pub fn connections(&self) -> impl Iterator<Item = C> + '_ {
        self.members.values().flat_map(|m| m.conns.iter().copied())
    }

    /// The next id of the room's sequence.
    pub fn next_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// Raises the sequence to at least `id` (an id handed out elsewhere).
    pub fn note_id(&mut self, id: u64) {
        self.last_id = self.last_id.max(id);
    }

    /// True if the backlog holds the message with this id.
    pub fn has_message(&self, id: u64) -> bool {
        self.backlog.binary_search_by_key(&id, |m| m.id).is_ok()
    }

    /// Files a public message in id order (ids from other nodes may
    /// arrive late), dropping the oldest past the limit; false if the room
    /// has it already or it is older than everything kept.
    pub fn insert_message(&mut self, message: ChatMessage) -> bool {
        self.note_id(message.id);
        let at = self.backlog.partition_point(|m| m.id < message.id);
        if self.backlog.get(at).is_some_and(|m| m.id == message.id)
            || (at == 0 && self.backlog.len() >= self.keep)
        {
            return false;
        }
        self.bytes += cost::message(&message);
        self.backlog.insert(at, message);
        while self.backlog.len() > self.keep {
            if let Some(old) = self.backlog.pop_front() {
                self.bytes -= cost::message(&old);
            }
        }
        true
    }

    /// Files a direct message with both parties (once for a note to self).
    pub fn push_dm(&mut self, dm: &DirectMessage) {
        self.file_dm(dm, true);
    }

    /// Files a direct message from another node with both parties, except
    /// a provisional member: the message is the name's owner's. Returns
    /// the members here that did not have it yet (they are to be sent it).
    pub fn push_remote_dm(&mut self, dm: &DirectMessage) -> Vec<&Member<C>> {
        let fresh = self.file_dm(dm, false);
        fresh
            .into_iter()
            .filter_map(|name| self.members.get(name))
            .collect()
    }

    /// Files `dm` with its parties; returns the names of those that did not
    /// have it yet.
    fn file_dm<'d>(&mut self, dm: &'d DirectMessage, provisional_too: bool) -> Vec<&'d str> {
        let mut fresh = Vec::with_capacity(2);
        for name in [&dm.from, &dm.to] {
            if let Some(member) = self
                .members
                .get_mut(name.as_str())
                .filter(|m| provisional_too || !m.provisional)
            {
                let at = member.dms.partition_point(|d| d.id < dm.id);
                let known = member.dms.get(at).is_some_and(|d| d.id == dm.id);
                // Older than every one kept, with no room left: not kept.
                let too_old = at == 0 && member.dms.len() >= self.keep;
                if known || too_old {
                    continue;
                }
                member.dms.insert(at, dm.clone());
                fresh.push(name.as_str());
                member.active = Instant::now();
                self.bytes += cost::dm(dm);
                while member.dms.len() > self.keep {
                    if let Some(old) = member.dms.pop_front() {
                        self.bytes -= cost::dm(&old);
                    }
                }
            }
        }
        fresh
    }

    /// Public messages with an id above `since` (all kept ones for `None`).
    pub fn backlog_since(&self, since: Option<u64>) -> Vec<&ChatMessage> {
        let since = since.unwrap_or(0);
        self.backlog.iter().filter(|m| m.id > since).collect()
    }

    /// Up to `limit` public messages with an id below `before`, oldest first.
    pub fn history(&self, before: u64, limit: usize) -> Vec<&ChatMessage> {
        let older = self.backlog.iter().filter(|m| m.id < before).count();
        self.backlog
            .iter()
            .take(older)
            .skip(older.saturating_sub(limit))
            .collect()
    }

    /// Adds what a store loaded to what the room has in memory: the union by
    /// id, the newest kept. Memory wins for members it already knows.
    /// Returns the DMs that were new to a member with connections here, by
    /// owner, oldest first: their live delivery was missed (a publish lost
    /// in an outage), so they are to be sent now.
    pub fn merge(&mut self, loaded: Loaded) -> Vec<(String, DirectMessage)> {
        self.last_id = self.last_id.max(loaded.last_id);
        for (name, token, profile) in loaded.members {
            if !self.members.contains_key(&name) {
                self.note_skeleton(&name);
            }
            self.members.entry(name.clone()).or_insert_with(|| Member {
                user: User { name, profile },
                token,
                conns: BTreeSet::new(),
                nodes: BTreeSet::new(),
                dms: VecDeque::new(),
                active: Instant::now(),
                provisional: false,
            });
        }
        let mut messages: Vec<ChatMessage> = self.backlog.drain(..).collect();
        messages.extend(loaded.messages);
        messages.sort_by_key(|m| m.id);
        messages.dedup_by_key(|m| m.id);
        self.last_id = self.last_id.max(messages.last().map_or(0, |m| m.id));
        let skip = messages.len().saturating_sub(self.keep);
        self.backlog = messages.into_iter().skip(skip).collect();
        let mut by_owner: HashMap<String, Vec<DirectMessage>> = HashMap::new();
        for (owner, dm) in loaded.dms {
            by_owner.entry(owner).or_default().push(dm);
        }
        let mut fresh = Vec::new();
        for (owner, mut dms) in by_owner {
            // A name claimed here unchecked may be someone else's: what the
            // store holds for it is its owner's.
            let Some(member) = self.members.get_mut(&owner).filter(|m| !m.provisional) else {
                continue;
            };
            // What an online member had not seen yet (a DM whose live
            // publish was lost in an outage) is to be sent to them.
            let had: HashSet<u64> = if member.conns.is_empty() {
                HashSet::new()
            } else {
                member.dms.iter().map(|d| d.id).collect()
            };
            dms.extend(member.dms.drain(..));
            dms.sort_by_key(|d| d.id);
            dms.dedup_by_key(|d| d.id);
            self.last_id = self.last_id.max(dms.last().map_or(0, |d| d.id));
            let skip = dms.len().saturating_sub(self.keep);
            member.dms = dms.into_iter().skip(skip).collect();
            if !member.conns.is_empty() {
                let new = member.dms.iter().filter(|d| !had.contains(&d.id));
                fresh.extend(new.map(|d| (owner.clone(), d.clone())));
            }
        }
        self.recount();
        fresh
    }

    /// Counts [`Room::bytes`] again from what the room holds.
    fn recount(&mut self) {
        let members: usize = self
            .members
            .values()
            .map(|m| cost::member(m) + m.dms.iter().map(cost::dm).sum::<usize>())
            .sum();
        self.bytes = members + self.backlog.iter().map(cost::message).sum::<usize>();
    }

    /// What the room holds, in bytes by [`cost`]'s estimates.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Offline members (here and on every other node) with when each was
    /// last active: those the chat may forget when over its budget. Not a
    /// provisional one: the store has neither its record nor its DMs yet.
    pub fn idle_members(&self) -> impl Iterator<Item = (&str, Instant)> {
        self.members
            .values()
            .filter(|m| !m.online() && !m.provisional)
            .map(|m| (m.user.name.as_str(), m.active))
    }

    /// True while a member's name waits for its claim (see
    /// [`Member::provisional`]): the room is not in the store whole.
    pub fn has_provisional(&self) -> bool {
        self.members.values().any(|m| m.provisional)
    }

    /// Forgets an offline member and their DMs; returns the bytes freed.
    /// With a store they are still there, and read again when the name
    /// comes back; in memory only, the name is free again.
    pub fn forget_member(&mut self, name: &str) -> usize {
        let Some(member) = self
            .members
            .get(name)
            .filter(|m| !m.online() && !m.provisional)
        else {
            return 0;
        };
        let freed = cost::member(member) + member.dms.iter().map(cost::dm).sum::<usize>();
        self.members.remove(name);
        let sk = skeleton(name);
        if self.skeletons.get(&sk).is_some_and(|n| n == name) {
            self.skeletons.remove(&sk);
        }
        self.bytes -= freed;
        freed
    }

    /// Every member, for writing the whole room back to a store.
    pub fn members(&self) -> impl Iterator<Item = &Member<C>> {
        self.members.values()
    }

    /// The public backlog, oldest first.
    pub fn backlog(&self) -> impl Iterator<Item = &ChatMessage> {
        self.backlog.iter()
    }

    /// True when nobody ever joined and nothing was said.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty() && self.last_id == 0
    }

    /// The last id handed out.
    pub fn last_id(&self) -> u64 {
        self.last_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(n: u32) -> u32 {
        n
    }

    /// A room where alice (connection 0) took her name provisionally,
    /// beside bob (connection 1, token `tb`).
    fn alice_provisional_and_bob() -> Room<u32> {
        let mut room: Room<u32> = Room::new(10);
        let (alice, _) = room
            .join(conn(0), "alice", None, || "impostor".into())
            .expect("new");
        alice.provisional = true;
        room.join(conn(1), "bob", None, || "tb".into())
            .expect("new");
        room
    }

    fn dm(id: u64, from: &str, to: &str) -> DirectMessage {
        DirectMessage {
            id,
            from: from.into(),
            to: to.into(),
            text: format!("dm{id}"),
            ts: 0,
        }
    }

    fn msg(id: u64) -> ChatMessage {
        ChatMessage {
            id,
            from: "a".into(),
            text: format!("m{id}"),
            ts: 0,
        }
    }

    #[test]
    fn names_need_their_token() {
        let mut room: Room<u32> = Room::new(10);
        let (alice, first) = room
            .join(conn(0), "alice", None, || "t1".into())
            .expect("new");
        assert_eq!((alice.token.as_str(), first), ("t1", true));
        assert_eq!(
            room.join(conn(1), "alice", None, || "t2".into()).err(),
            Some(ErrorCode::NameTaken)
        );
        assert_eq!(
            room.join(conn(1), "alice", Some("nope"), || "t2".into())
                .err(),
            Some(ErrorCode::NameTaken)
        );
        let (_, first) = room
            .join(conn(1), "alice", Some("t1"), || "t2".into())
            .expect("reclaimed");
        assert!(!first, "a second tab does not come online again");
        assert_eq!(room.leave(conn(0), "alice"), (false, false));
        assert_eq!(room.leave(conn(1), "alice"), (true, true));
        assert!(room.online_users().is_empty());
    }

    #[test]
    fn lookalikes_of_a_member_are_taken() {
        let mut room: Room<u32> = Room::new(10);
        room.join(conn(0), "alice", None, || "t1".into())
            .expect("new");
        let cyrillic = "\u{0430}lice";
        assert_eq!(room.lookalike(cyrillic), Some("alice"));
        assert_eq!(
            room.join(conn(1), cyrillic, None, || "t2".into()).err(),
            Some(ErrorCode::NameTaken)
        );
        assert_eq!(room.lookalike("alice"), None, "her own name");
        room.add_member("bob", "tb", Profile::default());
        assert_eq!(room.lookalike("b\u{043E}b"), Some("bob"), "Cyrillic о");
        room.merge(Loaded {
            members: vec![("carol".into(), "tc".into(), Profile::default())],
            ..Loaded::default()
        });
        assert_eq!(room.lookalike("caro1"), Some("carol"), "digit one");
    }

    #[test]
    fn backlog_is_bounded_and_pages() {
        let mut room: Room<u32> = Room::new(5);
        for _ in 0..8 {
            let id = room.next_id();
            room.insert_message(msg(id));
        }
        let ids = |v: Vec<&ChatMessage>| v.iter().map(|m| m.id).collect::<Vec<_>>();
        assert_eq!(ids(room.backlog_since(None)), [4, 5, 6, 7, 8]);
        assert_eq!(ids(room.backlog_since(Some(6))), [7, 8]);
        assert_eq!(ids(room.history(7, 2)), [5, 6]);
        assert_eq!(ids(room.history(5, 50)), [4]);
        assert_eq!(ids(room.history(4, 50)), Vec::<u64>::new());
    }

    #[test]
    fn remote_presence_and_ordered_inserts() {
        let mut room: Room<u32> = Room::new(3);
        room.join(conn(0), "alice", None, || "t".into())
            .expect("new");
        room.add_member("bob", "tb", Profile::default());
        assert_eq!(room.set_remote("n2", "bob", true), Some(true));
        assert_eq!(room.set_remote("n3", "bob", true), None);
        assert_eq!(room.online_users().len(), 2);
        assert_eq!(room.set_remote("n2", "bob", false), None);
        assert_eq!(room.set_remote("n3", "bob", false), Some(false));
        room.set_remote("n2", "alice", true);
        assert_eq!(room.leave(conn(0), "alice"), (true, false));
        assert_eq!(room.remote_names("n2"), ["alice"]);
        for id in [2, 5, 3, 3, 4] {
            room.insert_message(msg(id));
        }
        let ids: Vec<u64> = room.backlog().map(|m| m.id).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert!(!room.insert_message(msg(1)), "older than all kept");
        assert_eq!(room.last_id(), 5);
    }

    #[test]
    fn a_provisional_member_gets_no_dms_from_elsewhere() {
        let mut room = alice_provisional_and_bob();
        // Said here during the outage: both parties keep it.
        room.push_dm(&dm(1, "bob", "alice"));
        // From another node, and from the store: the owner's, not hers.
        room.push_remote_dm(&dm(2, "bob", "alice"));
        room.merge(Loaded {
            dms: vec![("alice".into(), dm(3, "carol", "alice"))],
            ..Loaded::default()
        });
        let ids = |name: &str| -> Vec<u64> {
            room.member(name)
                .map_or(Vec::new(), |m| m.dms.iter().map(|d| d.id).collect())
        };
        assert_eq!(ids("alice"), [1]);
        assert_eq!(ids("bob"), [1, 2]);
    }

    #[test]
    fn a_provisional_name_is_handed_over_and_never_forgotten() {
        let mut room = alice_provisional_and_bob();
        room.push_dm(&dm(1, "bob", "alice"));
        // Offline, but its record and DMs are in memory only: kept.
        room.leave(conn(0), "alice");
        assert!(room.idle_members().all(|(name, _)| name != "alice"));
        assert_eq!(room.forget_member("alice"), 0);
        assert!(room.has_provisional());
        room.join(conn(2), "alice", Some("impostor"), || unreachable!())
            .expect("her token");

        let owner = "the-owner-s-longer-token".to_owned();
        let status = Profile {
            status: "owner".into(),
            ..Profile::default()
        };
        let conns = room.hand_over("alice", owner.clone(), status.clone());
        assert_eq!(conns.into_iter().collect::<Vec<_>>(), [conn(2)]);
        let alice = room.member("alice").expect("the owner's record");
        assert_eq!((&alice.token, &alice.user.profile), (&owner, &status));
        assert!(alice.dms.is_empty() && alice.conns.is_empty() && !alice.provisional);
        assert_eq!(room.member("bob").map(|m| m.dms.len()), Some(1));
        assert!(!room.has_provisional());
        // The count follows the new token and the DMs that went.
        let counted = room.bytes();
        room.recount();
        assert_eq!(room.bytes(), counted);
        // Only a provisional name is handed over.
        assert!(
            room.hand_over("bob", "x".into(), Profile::default())
                .is_empty()
        );
        assert_eq!(room.member("bob").map(|m| m.token.as_str()), Some("tb"));
    }

    #[test]
    fn merge_returns_the_dms_an_online_member_had_not_seen() {
        let mut room = alice_provisional_and_bob();
        room.join(conn(2), "carol", None, || "tc".into())
            .expect("new");
        room.leave(conn(2), "carol");
        room.push_dm(&dm(1, "bob", "carol"));
        let fresh = room.merge(Loaded {
            dms: vec![
                // Bob had it: not again.
                ("bob".into(), dm(1, "bob", "carol")),
                // New to bob, who is online: his.
                ("bob".into(), dm(4, "bob", "dave")),
                // New to carol, who is offline: filed, not sent.
                ("carol".into(), dm(5, "erin", "carol")),
                // Alice's name is provisional here: the store's is not hers.
                ("alice".into(), dm(6, "erin", "alice")),
            ],
            ..Loaded::default()
        });
        let fresh: Vec<(&str, u64)> = fresh.iter().map(|(o, d)| (o.as_str(), d.id)).collect();
        assert_eq!(fresh, [("bob", 4)]);
        assert_eq!(room.member("carol").map(|m| m.dms.len()), Some(2));
        // A DM from another node is for each party that lacks it.
        let to: Vec<String> = room
            .push_remote_dm(&dm(7, "bob", "carol"))
            .iter()
            .map(|m| m.user.name.clone())
            .collect();
        assert_eq!(to, ["bob", "carol"]);
        assert!(room.push_remote_dm(&dm(7, "bob", "carol")).is_empty());
        assert!(
            room.push_remote_dm(&dm(8, "bob", "alice")).len() == 1,
            "not the provisional"
        );
    }

    #[test]
    fn merge_is_a_union_by_id() {
        let mut room: Room<u32> = Room::new(4);
        let id = room.next_id();
        room.insert_message(msg(id));
        room.merge(Loaded {
            messages: vec![msg(1), msg(2), msg(3), msg(2)],
            members: vec![("bob".into(), "tb".into(), Profile::default())],
            dms: Vec::new(),
            last_id: 3,
        });
        let ids: Vec<u64> = room.backlog().map(|m| m.id).collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(room.next_id(), 4);
        assert_eq!(room.member("bob").map(|m| m.token.as_str()), Some("tb"));
    }
}
