//! A room's life on this node: it opens with its first connection here
//! (its topics watched, and what the store has read in), and closes with
//! the last one (its topics left, so other nodes' traffic for it no longer
//! comes here). A room nobody ever spoke or joined in is then forgotten.

use std::time::Instant;

use pawl::Context;

use super::room::Room;
use super::{Chat, RoomEntry, events_topic, room_topic};

impl Chat {
    /// A connection opened on room `name`.
    pub(super) fn open_room(&mut self, ctx: &mut Context<'_, Chat>, name: &str) {
        let Chat {
            rooms,
            store,
            config,
            ..
        } = self;
        let entry = rooms.entry(name.to_owned()).or_insert_with(|| RoomEntry {
            room: Room::new(config.backlog),
            loading: false,
            waiting: Vec::new(),
            open: 0,
            gap_reload: None,
            idle_since: Instant::now(),
            forgotten: false,
            fetched: None,
        });
        if entry.open == 0 {
            // Watched before the load starts, so what other nodes say
            // meanwhile is merged with what the store has. A room kept in
            // memory while nobody here used it missed the other nodes'
            // traffic: it is read again too.
            ctx.watch(&room_topic(name));
            ctx.watch(&events_topic(name));
            if !entry.loading {
                entry.loading = store.load(ctx, name);
            }
        }
        entry.open += 1;
    }

    /// A connection on room `name` closed.
    pub(super) fn close_room(&mut self, ctx: &mut Context<'_, Chat>, name: &str) {
        let Some(entry) = self.rooms.get_mut(name) else {
            return;
        };
        entry.open -= 1;
        if entry.open > 0 {
            return;
        }
        entry.idle_since = Instant::now();
        ctx.unwatch(&room_topic(name));
        ctx.unwatch(&events_topic(name));
        // Made-up room names cost nothing for long.
        if !entry.loading && entry.room.is_empty() {
            self.rooms.remove(name);
        }
    }
}
