//! The event loop: one [`mio::Poll`], sources in a slab keyed by their token,
//! timers, deferred callbacks, and a [`Handle`] for other threads.
//!
//! ReactPHP's `LoopInterface` is the model: register a source with a callback,
//! add one-shot and periodic timers, `defer` work to the next tick, `stop`.
//! The WebSocket server ([`crate::App`]) is just another user of this loop, so
//! a program can run its own sockets and timers beside it.
//!
//! The loop owns what it dispatches to and lends it out for the length of a
//! call (calloop's model): the [`Reactor`] turns; every callback gets the
//! [`LoopHandle`], which can schedule, register and stop but not turn.
//!
//! - `source.rs`: source ids, typed keys, what a callback returns, handlers.
//! - `timer.rs`: the timer queue. `handle.rs`: the cross-thread [`Handle`].
//! - `signals.rs`: SIGINT and SIGTERM as a source.
//!
//! # The non-blocking contract
//!
//! Sources are registered edge-triggered (mio's only mode): a callback must
//! read or write until the operation returns `WouldBlock`, or remember that it
//! stopped early and come back (for example with [`LoopHandle::defer`]); readiness
//! that was not drained is not reported again.
//!
//! # Examples
//!
//! ```
//! use std::time::Duration;
//! use pawl::reactor::Reactor;
//!
//! let mut reactor = Reactor::new()?;
//! let mut ticks = 0;
//! reactor.add_periodic(Duration::from_millis(1), move |reactor| {
//!     ticks += 1;
//!     if ticks == 3 {
//!         reactor.stop();
//!     }
//! });
//! reactor.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod handle;
mod signals;
mod source;
mod timer;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::error;
use mio::event::{Event, Source};
use mio::{Events, Poll, Registry, Token, Waker};
use slab::Slab;

pub use handle::{Handle, ScheduleError};
pub use mio::Interest;
pub(crate) use source::{Handler, SourceKey};
pub use source::{PostAction, SourceId, sub_key};
pub use timer::TimerId;

use crate::guard;
use handle::Remote;
use source::{Detached, KEY_MASK, Owned};
use timer::{TimerKind, TimerQueue};

/// The token of the poll's waker; source keys never reach it (see [`SourceId`]).
const WAKER_TOKEN: Token = Token(usize::MAX);

/// How many cross-thread tasks may wait before [`Handle::schedule`] refuses more.
const DEFAULT_REMOTE_CAPACITY: usize = 65_536;

/// How long a graceful stop waits for holders (see [`LoopHandle::hold_stop`]).
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);

struct Slot {
    generation: u32,
    /// `None` while the handler is lent out: its callback runs, or code
    /// reached it through its [`SourceKey`].
    handler: Option<Box<dyn Handler>>,
}

type LocalTask = Box<dyn FnOnce(&mut LoopHandle)>;
type PeriodicTask = Box<dyn FnMut(&mut LoopHandle)>;
/// A tick hook; it is dropped once it returns false.
type TickHook = Box<dyn FnMut(&mut LoopHandle) -> bool>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunState {
    Running,
    /// Stop requested: stop hooks ran, the loop goes on until every holder
    /// released it or the deadline passes.
    Stopping {
        deadline: Instant,
    },
    Stopped,
}

/// A single-threaded event loop over one [`mio::Poll`]: the part that turns.
///
/// Everything else (registering sources, timers, `defer`, `stop`) is on
/// [`LoopHandle`], which a `Reactor` dereferences to and which every
/// callback receives. A callback therefore cannot turn or run the loop it is
/// called from: re-entrancy is ruled out by the types, not by a runtime
/// check.
pub struct Reactor {
    lp: LoopHandle,
}

/// The loop as its callbacks see it: schedule timers and deferred work,
/// register and remove sources, reach the values the loop owns, stop. It
/// cannot turn or run the loop; only the [`Reactor`] that owns it can.
pub struct LoopHandle {
    poll: Poll,
    /// Reused across turns; taken out while events are dispatched.
    events: Events,
    /// Handlers keyed by the low bits of their token.
    handlers: Slab<Slot>,
    /// Source of [`Slot::generation`] values.
    next_generation: u32,
    timers: TimerQueue<LocalTask, PeriodicTask>,
    deferred: Vec<LocalTask>,
    /// Work for a handler that was lent out when it was asked for; it runs
    /// as soon as the handler is back in its slot.
    waiting_for_slot: VecDeque<LocalTask>,
    tick_hooks: Vec<TickHook>,
    stop_hooks: Vec<LocalTask>,
    /// Holders that want the loop to keep turning during a graceful stop.
    stop_holds: usize,
    stop_grace: Duration,
    state: RunState,
    remote: Arc<Remote>,
    /// The time at the start of the current turn's dispatch.
    now: Instant,
    /// Second names of slots (see [`LoopHandle::name_slot`]); a handful.
    names: Vec<(u64, SourceId)>,
}

impl Reactor {
    /// Creates a loop with its own poll instance.
    pub fn new() -> io::Result<Reactor> {
        Reactor::with_handle_capacity(DEFAULT_REMOTE_CAPACITY)
    }

    /// Creates a loop whose [`Handle`]s queue at most `capacity` tasks
    /// (default 65 536) before refusing with [`ScheduleError::Full`].
    pub fn with_handle_capacity(capacity: usize) -> io::Result<Reactor> {
        guard::quiet_guarded_panics();
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        Ok(Reactor {
            lp: LoopHandle {
                poll,
                events: Events::with_capacity(1024),
                handlers: Slab::new(),
                next_generation: 0,
                timers: TimerQueue::new(),
                deferred: Vec::new(),
                waiting_for_slot: VecDeque::new(),
                tick_hooks: Vec::new(),
                stop_hooks: Vec::new(),
                stop_holds: 0,
                stop_grace: DEFAULT_STOP_GRACE,
                state: RunState::Running,
                remote: Arc::new(Remote::new(waker, capacity.max(1))),
                now: Instant::now(),
                names: Vec::new(),
            },
        })
    }

    /// Turns the loop until it is stopped.
    pub fn run(&mut self) -> io::Result<()> {
        let lp = &mut self.lp;
        if lp.state == RunState::Stopped {
            lp.state = RunState::Running;
        }
        while !lp.finished() {
            lp.turn(None)?;
        }
        lp.state = RunState::Stopped;
        Ok(())
    }

    /// One turn: wait for events (at most `max_wait`, or until the next timer),
    /// dispatch them, then run remote tasks, due timers, deferred callbacks
    /// and tick hooks. `Some(Duration::ZERO)` never blocks: tests step the
    /// loop with it.
    pub fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        self.lp.turn(max_wait)
    }
}

impl Deref for Reactor {
    type Target = LoopHandle;
    fn deref(&self) -> &LoopHandle {
        &self.lp
    }
}

impl DerefMut for Reactor {
    fn deref_mut(&mut self) -> &mut LoopHandle {
        &mut self.lp
    }
}

impl LoopHandle {
    /// A `Send + Clone` handle other threads use to run closures on this loop.
    pub fn handle(&self) -> Handle {
        Handle {
            remote: Arc::clone(&self.remote),
        }
    }

    /// The registry, for sources registered under a [`LoopHandle::insert_handler`] id.
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// The time the current turn started dispatching: cheaper than
    /// `Instant::now()` and the same for every callback of one turn.
    pub fn now(&self) -> Instant {
        self.now
    }

    fn next_generation(&mut self) -> u32 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }

    /// Puts a handler the caller built (and registers itself) in a slot.
    pub(crate) fn insert<H: Handler>(&mut self, handler: H) -> SourceKey<H> {
        let generation = self.next_generation();
        let key = self.handlers.insert(Slot {
            generation,
            handler: Some(Box::new(handler)),
        });
        // Keys must stay below the sub-token bits; 4 billion handlers is not a
        // limit anyone reaches before running out of file descriptors.
        debug_assert!(key <= KEY_MASK);
        SourceKey::assume(SourceId {
            key: key as u32,
            generation,
        })
    }

    /// Puts a handler in a slot, built by `make` from the id its events
    /// will carry (so it can register its sources with that token first).
    /// When `make` fails, no slot is taken.
    pub(crate) fn insert_with<H: Handler>(
        &mut self,
        make: impl FnOnce(SourceId, &Registry) -> io::Result<H>,
    ) -> io::Result<SourceKey<H>> {
        let generation = self.next_generation();
        let entry = self.handlers.vacant_entry();
        let id = SourceId {
            key: entry.key() as u32,
            generation,
        };
        let handler = make(id, self.poll.registry())?;
        entry.insert(Slot {
            generation,
            handler: Some(Box::new(handler)),
        });
        Ok(SourceKey::assume(id))
    }

    /// Registers `source`, owned by the loop from now on, with a callback run
    /// on each readiness event.
    ///
    /// On failure nothing stays registered and the source is dropped. A
    /// callback that panics is logged and its source removed.
    pub fn register<S, F>(
        &mut self,
        mut source: S,
        interest: Interest,
        callback: F,
    ) -> io::Result<SourceId>
    where
        S: Source + 'static,
        F: FnMut(&mut S, &Event, &mut LoopHandle) -> PostAction + 'static,
    {
        let generation = self.next_generation();
        let entry = self.handlers.vacant_entry();
        let id = SourceId {
            key: entry.key() as u32,
            generation,
        };
        // Registered before the slot is filled: a failure leaves no slot behind.
        self.poll
            .registry()
            .register(&mut source, id.token(), interest)?;
        entry.insert(Slot {
            generation,
            handler: Some(Box::new(Owned { source, callback })),
        });
        Ok(id)
    }

    /// Adds a callback for sources the caller owns and registers itself, with
    /// [`LoopHandle::registry`] and the id's [`SourceId::token`] or
    /// [`SourceId::sub_token`]. The caller deregisters its sources; removing
    /// the handler does not.
    pub fn insert_handler<F>(&mut self, callback: F) -> SourceId
    where
        F: FnMut(&Event, &mut LoopHandle) -> PostAction + 'static,
    {
        self.insert(Detached(callback)).id
    }

    /// Changes the interest of a source registered with [`LoopHandle::register`].
    ///
    /// From inside the source's own callback, return
    /// [`PostAction::Reregister`] instead.
    pub fn reregister(&mut self, id: SourceId, interest: Interest) -> io::Result<()> {
        let registry = self.poll.registry();
        match self.handlers.get_mut(id.key as usize) {
            Some(Slot {
                generation,
                handler: Some(handler),
            }) if *generation == id.generation => {
                handler.reregister(registry, id.token(), interest)
            }
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no such source, or it is running its callback",
            )),
        }
    }

    /// Deregisters and drops a source or handler. Returns false for a stale id.
    pub fn remove(&mut self, id: SourceId) -> bool {
        match self.handlers.get(id.key as usize) {
            Some(slot) if slot.generation == id.generation => {}
            _ => return false,
        }
        let slot = self.handlers.remove(id.key as usize);
        self.names.retain(|(_, named)| *named != id);
        // A handler removed while it is lent out (None) is dropped by whoever
        // holds it when they find its slot gone.
        if let Some(handler) = slot.handler {
            drop_handler(handler, self.poll.registry());
        }
        true
    }

    /// True while the source or handler `id` is registered.
    pub fn contains(&self, id: SourceId) -> bool {
        self.handlers
            .get(id.key as usize)
            .is_some_and(|slot| slot.generation == id.generation)
    }

    /// Gives slot `id` a second name, a number unique in the process that
    /// the caller chose before the slot existed (an app names its server
    /// this way, so that routes mounted before `listen` find it).
    pub(crate) fn name_slot(&mut self, name: u64, id: SourceId) {
        self.names.retain(|(n, _)| *n != name);
        self.names.push((name, id));
    }

    /// The slot named `name`, if it still exists.
    pub(crate) fn named(&self, name: u64) -> Option<SourceId> {
        let (_, id) = self.names.iter().find(|(n, _)| *n == name)?;
        self.contains(*id).then_some(*id)
    }

    /// Lends the value behind `key` to `f`, with the loop.
    ///
    /// When it is in its slot, `f` runs now. When it is lent out already
    /// (the caller is inside its callback, or inside another `with_source`
    /// of it), `f` runs as soon as it is back: deferred, never dropped.
    /// Returns false only when the value is gone (removed, or the key is
    /// stale); `f` is then dropped.
    pub(crate) fn with_source<T: Handler>(
        &mut self,
        key: SourceKey<T>,
        f: impl FnOnce(&mut T, &mut LoopHandle) + 'static,
    ) -> bool {
        let id = key.id;
        let Some(slot) = self.handlers.get_mut(id.key as usize) else {
            return false;
        };
        if slot.generation != id.generation {
            return false;
        }
        let Some(mut handler) = slot.handler.take() else {
            self.waiting_for_slot.push_back(Box::new(move |lp| {
                lp.with_source(key, f);
            }));
            return true;
        };
        match handler.as_any().downcast_mut::<T>() {
            Some(value) => f(value, self),
            // A SourceKey<T> is only made by `insert::<T>`, so this is a bug.
            None => error!("source {} is not the type its key says", id.key),
        }
        self.put_back(id, handler, PostAction::Continue);
        true
    }

    /// Lends the value behind `key` to `f` now, if it is in its slot;
    /// `None` when it is lent out or gone.
    pub(crate) fn try_with_source<T: Handler, R>(
        &mut self,
        key: SourceKey<T>,
        f: impl FnOnce(&mut T, &mut LoopHandle) -> R,
    ) -> Option<R> {
        let id = key.id;
        let slot = self.handlers.get_mut(id.key as usize)?;
        if slot.generation != id.generation {
            return None;
        }
        let mut handler = slot.handler.take()?;
        let result = handler
            .as_any()
            .downcast_mut::<T>()
            .map(|value| f(value, self));
        self.put_back(id, handler, PostAction::Continue);
        result
    }

    /// Returns a lent handler to its slot (or drops it, when its slot was
    /// removed meanwhile), applies `action`, then runs the work that waited
    /// for it.
    fn put_back(&mut self, id: SourceId, mut handler: Box<dyn Handler>, action: PostAction) {
        let key = id.key as usize;
        let registry = self.poll.registry();
        match self.handlers.get_mut(key) {
            Some(slot) if slot.generation == id.generation => match action {
                PostAction::Continue => slot.handler = Some(handler),
                PostAction::Reregister(interest) => {
                    if let Err(e) = handler.reregister(registry, id.token(), interest) {
                        error!("reregistering a source failed, dropping it: {e}");
                        self.handlers.remove(key);
                    } else {
                        slot.handler = Some(handler);
                    }
                }
                PostAction::Remove => {
                    drop_handler(handler, registry);
                    self.handlers.remove(key);
                }
            },
            // Removed while it was lent out.
            _ => drop_handler(handler, registry),
        }
        // Only what waited until now: a task whose source is still lent out
        // (an outer lender holds it) queues itself again, for that lender's
        // own put_back, instead of spinning here.
        if !self.waiting_for_slot.is_empty() {
            for task in std::mem::take(&mut self.waiting_for_slot) {
                task(self);
            }
        }
    }

    /// Runs `callback` once, `after` from now.
    pub fn add_timer(
        &mut self,
        after: Duration,
        callback: impl FnOnce(&mut LoopHandle) + 'static,
    ) -> TimerId {
        self.timers
            .insert(Instant::now() + after, TimerKind::Once(Box::new(callback)))
    }

    /// Runs `callback` every `period` (at least 1 ms) until cancelled. A
    /// callback that panics is logged and cancelled.
    pub fn add_periodic(
        &mut self,
        period: Duration,
        callback: impl FnMut(&mut LoopHandle) + 'static,
    ) -> TimerId {
        let period = period.max(Duration::from_millis(1));
        self.timers.insert(
            Instant::now() + period,
            TimerKind::Periodic(Box::new(callback), period),
        )
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, id: TimerId) -> bool {
        self.timers.cancel(id)
    }

    /// True while a timer is still to fire (ReactPHP's `isTimerActive`): a
    /// one-shot timer until it fires, a periodic one until it is cancelled.
    pub fn is_timer_active(&self, id: TimerId) -> bool {
        self.timers.is_active(id)
    }

    /// Runs `callback` at the end of the next turn, before the loop waits again.
    pub fn defer(&mut self, callback: impl FnOnce(&mut LoopHandle) + 'static) {
        self.deferred.push(Box::new(callback));
    }

    /// Runs `hook` at the end of every turn, after events, timers and
    /// deferred callbacks (the place to flush what the turn buffered), until
    /// it returns false.
    pub fn add_tick_hook(&mut self, hook: impl FnMut(&mut LoopHandle) -> bool + 'static) {
        self.tick_hooks.push(Box::new(hook));
    }

    /// Runs `hook` once when a graceful stop begins (see [`LoopHandle::stop`]).
    pub fn add_stop_hook(&mut self, hook: impl FnOnce(&mut LoopHandle) + 'static) {
        self.stop_hooks.push(Box::new(hook));
    }

    /// Keeps the loop turning during a graceful stop until a matching
    /// [`LoopHandle::release_stop`] (or the grace period ends). A server holds the
    /// stop while its connections finish their close handshakes.
    pub fn hold_stop(&mut self) {
        self.stop_holds += 1;
    }

    /// Releases one [`LoopHandle::hold_stop`].
    pub fn release_stop(&mut self) {
        self.stop_holds = self.stop_holds.saturating_sub(1);
    }

    /// How long a graceful stop may take before the loop returns anyway
    /// (default 5 s).
    pub fn set_stop_grace(&mut self, grace: Duration) {
        self.stop_grace = grace;
    }

    /// Begins a graceful stop: stop hooks run now, and [`Reactor::run`]
    /// returns once every holder released the stop or the grace period ends.
    /// Calling it again has no further effect.
    pub fn stop(&mut self) {
        if self.state != RunState::Running {
            return;
        }
        self.state = RunState::Stopping {
            deadline: Instant::now() + self.stop_grace,
        };
        for hook in std::mem::take(&mut self.stop_hooks) {
            let _ = guard::call(&"a stop hook", || hook(self));
        }
    }

    /// Stops at the end of this turn, without waiting for holders.
    pub fn stop_now(&mut self) {
        self.state = RunState::Stopped;
    }

    /// True once a stop has begun.
    pub fn is_stopping(&self) -> bool {
        self.state != RunState::Running
    }

    /// Stops gracefully on SIGINT or SIGTERM; a second signal stops at once.
    pub fn stop_on_signals(&mut self) -> io::Result<SourceId> {
        signals::register(self)
    }

    fn finished(&self) -> bool {
        match self.state {
            RunState::Running => false,
            RunState::Stopping { deadline } => self.stop_holds == 0 || Instant::now() >= deadline,
            RunState::Stopped => true,
        }
    }

    fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let timeout = self.poll_timeout(max_wait);
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            // A signal interrupted the wait; the signal source reports it.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        self.now = Instant::now();

        let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        let mut woken = false;
        for event in events.iter() {
            if event.token() == WAKER_TOKEN {
                woken = true;
            } else {
                self.dispatch(event);
            }
        }
        self.events = events;

        if woken {
            self.run_remote_tasks();
        }
        self.fire_timers();
        for task in std::mem::take(&mut self.deferred) {
            let _ = guard::call(&"a deferred callback", || task(self));
        }
        let mut hooks = std::mem::take(&mut self.tick_hooks);
        hooks.retain_mut(|hook| guard::call(&"a tick hook", || hook(self)).unwrap_or(false));
        // Hooks added by hooks go after the existing ones.
        hooks.append(&mut self.tick_hooks);
        self.tick_hooks = hooks;
        Ok(())
    }

    fn poll_timeout(&mut self, max_wait: Option<Duration>) -> Option<Duration> {
        if !self.deferred.is_empty() {
            return Some(Duration::ZERO);
        }
        let now = Instant::now();
        let mut deadline = self.timers.next_deadline();
        if let RunState::Stopping { deadline: stop } = self.state {
            deadline = Some(deadline.map_or(stop, |d| d.min(stop)));
        }
        let until_deadline = deadline.map(|d| d.saturating_duration_since(now));
        match (until_deadline, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Lends the event's handler out, calls it, puts it back. Never drops an
    /// event: a handler is only ever lent within one call on this thread, and
    /// that call has returned before the next event is dispatched.
    fn dispatch(&mut self, event: &Event) {
        let key = event.token().0 & KEY_MASK;
        let Some(slot) = self.handlers.get_mut(key) else {
            return; // removed earlier in this batch
        };
        let id = SourceId {
            key: key as u32,
            generation: slot.generation,
        };
        let Some(mut handler) = slot.handler.take() else {
            // Unreachable: events are dispatched one at a time, and every
            // lender puts the handler back before returning.
            error!("source {key} is lent out while an event arrived for it");
            return;
        };
        let action = match guard::catch(|| handler.ready(event, self)) {
            Ok(action) => action,
            // Whatever the source was doing is in an unknown state.
            Err(guard::Panicked(message)) => {
                let at = guard::take_location().map_or(String::new(), |at| format!(" at {at}"));
                error!("{} panicked{at}: {message}; removed", handler.describe());
                PostAction::Remove
            }
        };
        self.put_back(id, handler, action);
    }

    fn run_remote_tasks(&mut self) {
        if self.remote.take_stop_request() {
            self.stop();
        }
        for task in self.remote.take_all() {
            let _ = guard::call(&"a task from another thread", || task(self));
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        // Only timers live now may fire this turn: one that re-adds itself
        // with a zero delay runs again next turn instead of spinning here.
        for _ in 0..self.timers.len() {
            let Some(due) = self.timers.pop_due(now) else {
                break;
            };
            match due.kind {
                TimerKind::Once(callback) => {
                    let _ = guard::call(&"a timer", || callback(self));
                }
                TimerKind::Periodic(mut callback, period) => {
                    if guard::call(&"a periodic timer (cancelled)", || callback(self)).is_ok() {
                        self.timers
                            .restore_periodic(due.id, callback, period, Instant::now());
                    } else {
                        // Its slot waits for the callback to come back.
                        self.timers.cancel(due.id);
                    }
                }
            }
        }
    }
}

/// Takes a handler's sources out of the poll and drops it.
fn drop_handler(mut handler: Box<dyn Handler>, registry: &Registry) {
    if let Err(e) = handler.deregister(registry) {
        error!("deregistering a source failed: {e}");
    }
}

impl Drop for LoopHandle {
    fn drop(&mut self) {
        // Handles must learn that nothing will run their tasks any more.
        self.remote.close();
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.lp.fmt(f)
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoopHandle")
            .field("handlers", &self.handlers.len())
            .field("timers", &self.timers)
            .field("deferred", &self.deferred.len())
            .field("state", &self.state)
            .finish()
    }
}

#[cfg(test)]
mod tests;
