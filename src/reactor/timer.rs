//! The reactor's timer queue: a binary heap of deadlines over a slab of
//! callbacks, cancelled by id.
//!
//! Cancelling only removes the slab entry; its heap entry stays behind and is
//! skipped when it surfaces, because its generation no longer matches. That
//! keeps `cancel` O(1) at the price of a few stale heap entries.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::time::{Duration, Instant};

use slab::Slab;

/// Identifies a timer on one [`Reactor`](super::Reactor).
///
/// Ids carry a generation, so a stale id never cancels the timer that later
/// reuses its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    key: u32,
    generation: u32,
}

/// What a timer does when it fires. `F` is the callback type, generic so the
/// queue can be unit-tested without a reactor.
pub(crate) enum TimerKind<F, P> {
    /// Runs once, then the timer is gone.
    Once(F),
    /// Runs every `period` until cancelled.
    Periodic(P, Duration),
}

struct Entry<F, P> {
    generation: u32,
    kind: Option<TimerKind<F, P>>,
}

/// Deadline-ordered timers.
pub(crate) struct TimerQueue<F, P> {
    entries: Slab<Entry<F, P>>,
    heap: BinaryHeap<Reverse<(Instant, u64, u32, u32)>>,
    next_generation: u32,
    sequence: u64,
}

/// A timer taken out of the queue because it is due.
pub(crate) struct Due<F, P> {
    pub(crate) id: TimerId,
    pub(crate) kind: TimerKind<F, P>,
}

impl<F, P> TimerQueue<F, P> {
    pub(crate) fn new() -> Self {
        TimerQueue {
            entries: Slab::new(),
            heap: BinaryHeap::new(),
            next_generation: 0,
            sequence: 0,
        }
    }

    /// Adds a timer firing at `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, kind: TimerKind<F, P>) -> TimerId {
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let key = self.entries.insert(Entry {
            generation,
            kind: Some(kind),
        }) as u32;
        let id = TimerId { key, generation };
        self.schedule(id, deadline);
        id
    }

    fn schedule(&mut self, id: TimerId, deadline: Instant) {
        // The sequence number keeps timers with equal deadlines in insertion order.
        self.sequence += 1;
        self.heap
            .push(Reverse((deadline, self.sequence, id.key, id.generation)));
    }

    /// Cancels a timer; returns false if it already fired or was cancelled.
    pub(crate) fn cancel(&mut self, id: TimerId) -> bool {
        match self.entries.get(id.key as usize) {
            Some(entry) if entry.generation == id.generation => {
                self.entries.remove(id.key as usize);
                true
            }
            _ => false,
        }
    }

    /// True while `id` is scheduled (or running, for a periodic timer).
    pub(crate) fn is_active(&self, id: TimerId) -> bool {
        self.entries
            .get(id.key as usize)
            .is_some_and(|entry| entry.generation == id.generation)
    }

    /// The earliest live deadline, dropping cancelled heap entries on the way.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, _, key, generation))) = self.heap.peek().copied() {
            if self.is_live(key, generation) {
                return Some(deadline);
            }
            self.heap.pop();
        }
        None
    }

    fn is_live(&self, key: u32, generation: u32) -> bool {
        matches!(self.entries.get(key as usize), Some(e) if e.generation == generation && e.kind.is_some())
    }

    /// Takes the next timer due at `now`, if any.
    ///
    /// A periodic timer stays registered (its slot is kept, its callback lent
    /// out); the caller gives it back with [`TimerQueue::restore_periodic`].
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Due<F, P>> {
        loop {
            let Reverse((deadline, _, key, generation)) = *self.heap.peek()?;
            if deadline > now {
                return None;
            }
            self.heap.pop();
            if !self.is_live(key, generation) {
                continue;
            }
            let id = TimerId { key, generation };
            let kind = self.entries[key as usize].kind.take()?;
            if let TimerKind::Once(_) = kind {
                self.entries.remove(key as usize);
            }
            return Some(Due { id, kind });
        }
    }

    /// Re-arms a periodic timer after its callback ran, unless it was
    /// cancelled meanwhile (from inside its own callback, say).
    pub(crate) fn restore_periodic(
        &mut self,
        id: TimerId,
        callback: P,
        period: Duration,
        now: Instant,
    ) {
        match self.entries.get_mut(id.key as usize) {
            Some(entry) if entry.generation == id.generation => {
                entry.kind = Some(TimerKind::Periodic(callback, period));
                self.schedule(id, now + period);
            }
            _ => {}
        }
    }

    /// Number of live timers.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl<F, P> fmt::Debug for TimerQueue<F, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerQueue")
            .field("timers", &self.entries.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Queue = TimerQueue<&'static str, &'static str>;

    fn name(due: Due<&'static str, &'static str>) -> &'static str {
        match due.kind {
            TimerKind::Once(n) | TimerKind::Periodic(n, _) => n,
        }
    }

    #[test]
    fn fires_in_deadline_order_then_insertion_order() {
        let mut q = Queue::new();
        let t0 = Instant::now();
        q.insert(t0 + Duration::from_millis(20), TimerKind::Once("late"));
        q.insert(t0 + Duration::from_millis(10), TimerKind::Once("a"));
        q.insert(t0 + Duration::from_millis(10), TimerKind::Once("b"));
        assert_eq!(q.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert!(q.pop_due(t0).is_none(), "nothing is due yet");
        let now = t0 + Duration::from_millis(30);
        let order: Vec<_> = std::iter::from_fn(|| q.pop_due(now)).map(name).collect();
        assert_eq!(order, ["a", "b", "late"]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn cancelled_timer_never_fires_and_stale_id_is_refused() {
        let mut q = Queue::new();
        let t0 = Instant::now();
        let id = q.insert(t0, TimerKind::Once("x"));
        assert!(q.cancel(id));
        assert!(!q.cancel(id), "second cancel must report nothing to cancel");
        // The slot is reused by a new timer: the old id must not touch it.
        let fresh = q.insert(t0, TimerKind::Once("y"));
        assert!(!q.cancel(id));
        assert_eq!(q.next_deadline(), Some(t0));
        assert_eq!(q.pop_due(t0).map(|d| d.id), Some(fresh));
    }

    #[test]
    fn periodic_timer_rearms_until_cancelled() {
        let mut q = Queue::new();
        let t0 = Instant::now();
        let period = Duration::from_millis(5);
        let id = q.insert(t0 + period, TimerKind::Periodic("tick", period));
        let mut now = t0;
        for _ in 0..3 {
            now += period;
            let due = q.pop_due(now).expect("periodic timer due");
            assert_eq!(due.id, id);
            let TimerKind::Periodic(cb, p) = due.kind else {
                panic!("expected periodic")
            };
            q.restore_periodic(id, cb, p, now);
        }
        assert!(q.cancel(id));
        assert!(q.pop_due(now + period * 10).is_none());
    }
}
