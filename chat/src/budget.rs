//! Bounds on what abuse can make the chat hold: a memory budget, and a
//! connection rate per client address (rate limits per connection are
//! worth little when connections are free).
//!
//! The chat counts what it keeps ([`room::cost`](super::room::cost)): rooms,
//! backlogs, members, DMs, and the addresses it rate-limits. Over the
//! budget it forgets, oldest idle first: rooms nobody here has open, then
//! members offline everywhere (with their DMs). With Redis they are still
//! there and are read again when used (a room when someone opens it, a
//! member when their name joins or is sent a DM); in memory only, a
//! forgotten room's backlog is gone and a forgotten name is free again. A
//! name taken while Redis could not check it (provisional, see
//! [`claim`](super::claim)) is not in Redis yet: neither it nor its room
//! is forgotten until its claim is checked.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use log::{info, warn};
use pawl::{CloseCode, ConnId, Context};

use super::Chat;
use super::limit::RateLimit;
use super::room::cost;

/// How often the budget is checked (and the address table pruned): what
/// may arrive in between is bounded by the rate limits.
pub const CHECK_EVERY: Duration = Duration::from_millis(100);

/// An address's entry in the rate table, with the map's overhead.
const ADDRESS_COST: usize = 64;

/// Connections per client address.
#[derive(Debug, Default)]
pub(super) struct Addresses {
    limits: HashMap<IpAddr, RateLimit>,
    /// Refused since the last one let in, for one log line per flood.
    refused: u64,
}

impl Chat {
    /// What the chat holds, in bytes by its own estimates.
    pub fn memory(&self) -> usize {
        let rooms: usize = self
            .rooms
            .iter()
            .map(|(name, e)| cost::ROOM + name.len() + e.room.bytes())
            .sum();
        rooms + self.addresses.limits.len() * ADDRESS_COST
    }

    /// A connection opened: false (and it is closed with 1013) when its
    /// address is over its rate.
    pub(super) fn admit(&mut self, ctx: &mut Context<'_, Chat>, conn: ConnId) -> bool {
        let Some(ip) = ctx.remote_addr(conn).map(|a| a.ip()) else {
            return true;
        };
        let (rate, burst) = (self.config.connect_rate, self.config.connect_burst);
        let now = Instant::now();
        let addresses = &mut self.addresses;
        let limit = addresses
            .limits
            .entry(ip)
            .or_insert_with(|| RateLimit::new(burst, now));
        if limit.allow(rate, burst, now) {
            addresses.refused = 0;
            return true;
        }
        if addresses.refused == 0 {
            warn!("{conn}: {ip} opens connections too fast; refusing until it slows down");
        }
        addresses.refused += 1;
        ctx.close(conn, CloseCode::TRY_AGAIN_LATER, "too many connections");
        false
    }

    /// A name memory does not know, in a room that forgot members for the
    /// budget, may be in the store: true when the message `text` waits
    /// while the member is read (and is handled again after).
    pub(super) fn fetch_member(
        &mut self,
        ctx: &mut Context<'_, Chat>,
        conn: ConnId,
        room: &str,
        name: &str,
        text: &str,
    ) -> bool {
        let Some(entry) = self.rooms.get_mut(room) else {
            return false;
        };
        if !entry.forgotten
            || entry.loading
            || entry.room.member(name).is_some()
            || entry.fetched.as_deref() == Some(name)
        {
            return false;
        }
        entry.fetched = Some(name.to_owned());
        entry.loading = self.store.load_member(ctx, room, name);
        if entry.loading {
            entry.waiting.push((conn, text.to_owned()));
        }
        entry.loading
    }

    /// Starts checking the budget (once, from the first connection).
    pub(super) fn start_budget(&mut self, ctx: &mut Context<'_, Chat>) {
        if self.budget_started {
            return;
        }
        self.budget_started = true;
        ctx.set_periodic(CHECK_EVERY, |chat, _| chat.enforce_budget());
    }

    /// Forgets what it must to fit the budget, oldest idle first.
    pub fn enforce_budget(&mut self) {
        let (rate, burst) = (self.config.connect_rate, self.config.connect_burst);
        let now = Instant::now();
        // An address whose bucket has filled again is as good as new.
        self.addresses
            .limits
            .retain(|_, limit| !limit.is_full(rate, burst, now));
        let budget = self.config.memory;
        let mut used = self.memory();
        if used <= budget {
            return;
        }
        let before = used;
        let mut idle: Vec<(Instant, String)> = self
            .rooms
            .iter()
            // A provisional member is in memory only until its claim.
            .filter(|(_, e)| e.open == 0 && !e.loading && !e.room.has_provisional())
            .map(|(name, e)| (e.idle_since, name.clone()))
            .collect();
        idle.sort();
        let mut rooms = 0;
        for (_, name) in idle {
            if used <= budget {
                break;
            }
            if let Some(entry) = self.rooms.remove(&name) {
                used -= cost::ROOM + name.len() + entry.room.bytes();
                rooms += 1;
            }
        }
        let mut members = 0;
        if used > budget {
            let mut offline: Vec<(Instant, String, String)> = self
                .rooms
                .iter()
                .flat_map(|(room, e)| {
                    e.room
                        .idle_members()
                        .map(move |(name, at)| (at, room.clone(), name.to_owned()))
                })
                .collect();
            offline.sort();
            for (_, room, name) in offline {
                if used <= budget {
                    break;
                }
                if let Some(entry) = self.rooms.get_mut(&room) {
                    used -= entry.room.forget_member(&name);
                    entry.forgotten = true;
                    members += 1;
                }
            }
        }
        info!(
            "chat memory {before} bytes over its budget of {budget}: forgot {rooms} idle rooms \
             and {members} offline members, now {used}"
        );
    }
}
