//! Where the backlog is kept besides memory. Memory is the live state and
//! the source of every read; a store is write-through persistence that hands
//! a room's saved state back when the room is first used (and again when
//! the store reconnects), through [`Chat::room_loaded`](super::Chat::room_loaded).

use pawl::Context;

use super::Chat;

use super::protocol::{ChatMessage, DirectMessage};
use super::room::{Member, Room};

/// Persistence for the chat. Calls come from the loop thread inside the
/// chat's callbacks and must not block.
pub trait Store {
    /// Starts loading `room`. True when the room must hold its messages
    /// until [`Chat::room_loaded`](super::Chat::room_loaded) is called for
    /// it; false when there is nothing to wait for.
    fn load(&mut self, ctx: &mut Context<'_, Chat>, room: &str) -> bool;

    /// Starts reading one member (token, profile, DMs) of `room` that
    /// memory forgot for its budget, handed over like a room's load. True
    /// when the room must hold its messages until then; false when the
    /// store has nothing to read (memory only).
    fn load_member(&mut self, ctx: &mut Context<'_, Chat>, room: &str, name: &str) -> bool {
        let _ = (ctx, room, name);
        false
    }

    /// A public message was said.
    fn save_message(&mut self, ctx: &mut Context<'_, Chat>, room: &str, message: &ChatMessage);

    /// A direct message was filed with `owner` (called once per party).
    fn save_dm(&mut self, ctx: &mut Context<'_, Chat>, room: &str, owner: &str, dm: &DirectMessage);

    /// A member's token or profile is new or changed.
    fn save_member(&mut self, ctx: &mut Context<'_, Chat>, room: &str, member: &Member);

    /// Writes a whole room back (after the store came back and may have
    /// lost what it had). Writes must be idempotent: the same message
    /// written twice is one message.
    fn save_room(&mut self, ctx: &mut Context<'_, Chat>, name: &str, room: &Room) {
        let _ = (ctx, name, room);
    }
}

/// The embedded default: memory is all there is; nothing survives a restart.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl Store for MemoryStore {
    fn load(&mut self, _: &mut Context<'_, Chat>, _: &str) -> bool {
        false
    }
    fn save_message(&mut self, _: &mut Context<'_, Chat>, _: &str, _: &ChatMessage) {}
    fn save_dm(&mut self, _: &mut Context<'_, Chat>, _: &str, _: &str, _: &DirectMessage) {}
    fn save_member(&mut self, _: &mut Context<'_, Chat>, _: &str, _: &Member) {}
}
