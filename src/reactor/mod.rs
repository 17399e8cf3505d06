//! The event loop: one [`mio::Poll`], sources in a slab keyed by their token,
//! timers, deferred callbacks, and a [`Handle`] for other threads.
//!
//! ReactPHP's `LoopInterface` is the model: register a source with a callback,
//! add one-shot and periodic timers, `defer` work to the next tick, `stop`.
//! The WebSocket server ([`crate::App`]) is just another user of this loop, so
//! a program can run its own sockets and timers beside it.
//!
//! # The non-blocking contract
//!
//! Sources are registered edge-triggered (mio's only mode): a callback must
//! read or write until the operation returns `WouldBlock`, or remember that it
//! stopped early and come back (for example with [`Reactor::defer`]); readiness
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
mod timer;

use std::any::Any;
use std::fmt;
use std::io;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::error;
use mio::event::{Event, Source};
use mio::{Events, Poll, Registry, Token, Waker};
use slab::Slab;

pub use handle::{Handle, ScheduleError};
pub use mio::Interest;
pub use timer::TimerId;

use handle::Remote;
use timer::{TimerKind, TimerQueue};

/// The token of the poll's waker; source keys never reach it (see [`SourceId`]).
const WAKER_TOKEN: Token = Token(usize::MAX);

/// How many cross-thread tasks may wait before [`Handle::schedule`] refuses more.
const DEFAULT_REMOTE_CAPACITY: usize = 65_536;

/// How long a graceful stop waits for holders (see [`Reactor::hold_stop`]).
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(5);

/// Low 32 bits of a token: the slab key of the handler it belongs to. High 32
/// bits: a sub-key the handler chose (see [`SourceId::sub_token`]).
const KEY_BITS: u32 = 32;
const KEY_MASK: usize = (1 << KEY_BITS) - 1;

/// What a source's callback wants the loop to do with it next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostAction {
    /// Keep the source registered as it is.
    Continue,
    /// Keep it, with a new interest.
    Reregister(Interest),
    /// Deregister and drop it.
    Remove,
}

/// Identifies a registered source or handler on one [`Reactor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId {
    key: u32,
    generation: u32,
}

impl SourceId {
    /// The token events for this source carry.
    pub fn token(self) -> Token {
        Token(self.key as usize)
    }

    /// A token for one of many sources served by a single handler (see
    /// [`Reactor::insert_handler`]); `sub` comes back from [`sub_key`].
    ///
    /// This is how the WebSocket server serves thousands of sockets with one
    /// handler and no per-socket closure.
    pub fn sub_token(self, sub: u32) -> Token {
        Token(self.key as usize | ((sub as usize + 1) << KEY_BITS))
    }
}

/// The sub-key of a token made by [`SourceId::sub_token`], or `None` for a
/// plain token.
pub fn sub_key(token: Token) -> Option<u32> {
    match token.0 >> KEY_BITS {
        0 => None,
        sub => Some((sub - 1) as u32),
    }
}

/// Something the loop can dispatch events to.
trait Handler {
    fn ready(&mut self, event: &Event, reactor: &mut Reactor) -> PostAction;
    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()>;
    fn deregister(&mut self, registry: &Registry) -> io::Result<()>;
}

/// A source the loop owns, with its callback.
struct Owned<S, F> {
    source: S,
    callback: F,
}

impl<S, F> Handler for Owned<S, F>
where
    S: Source,
    F: FnMut(&mut S, &Event, &mut Reactor) -> PostAction,
{
    fn ready(&mut self, event: &Event, reactor: &mut Reactor) -> PostAction {
        (self.callback)(&mut self.source, event, reactor)
    }
    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        registry.reregister(&mut self.source, token, interest)
    }
    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.source)
    }
}

/// A callback whose sources are owned and registered by someone else.
struct Detached<F>(F);

impl<F> Handler for Detached<F>
where
    F: FnMut(&Event, &mut Reactor) -> PostAction,
{
    fn ready(&mut self, event: &Event, reactor: &mut Reactor) -> PostAction {
        (self.0)(event, reactor)
    }
    fn reregister(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a detached handler's sources are reregistered by their owner",
        ))
    }
    fn deregister(&mut self, _: &Registry) -> io::Result<()> {
        Ok(())
    }
}

struct Slot {
    generation: u32,
    /// `None` while the handler's callback runs: it is lent out so the
    /// callback can take `&mut Reactor`.
    handler: Option<Box<dyn Handler>>,
}

type LocalTask = Box<dyn FnOnce(&mut Reactor)>;
type PeriodicTask = Box<dyn FnMut(&mut Reactor)>;
type TickHook = Box<dyn FnMut(&mut Reactor)>;

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

/// A single-threaded event loop over one [`mio::Poll`].
pub struct Reactor {
    poll: Poll,
    /// Reused across turns; taken out while events are dispatched.
    events: Events,
    /// Handlers keyed by the low bits of their token.
    handlers: Slab<Slot>,
    /// Source of [`Slot::generation`] values.
    next_generation: u32,
    timers: TimerQueue<LocalTask, PeriodicTask>,
    deferred: Vec<LocalTask>,
    tick_hooks: Vec<TickHook>,
    stop_hooks: Vec<LocalTask>,
    /// Holders that want the loop to keep turning during a graceful stop.
    stop_holds: usize,
    stop_grace: Duration,
    state: RunState,
    remote: Arc<Remote>,
    /// The time at the start of the current turn's dispatch.
    now: Instant,
    /// Loop-local services other threads reach through a [`Handle`] (the
    /// WebSocket servers): a `Send` closure carries an index, not an `Rc`.
    services: Vec<Weak<dyn Any>>,
}

impl Reactor {
    /// Creates a loop with its own poll instance.
    pub fn new() -> io::Result<Reactor> {
        Reactor::with_handle_capacity(DEFAULT_REMOTE_CAPACITY)
    }

    /// Creates a loop whose [`Handle`]s queue at most `capacity` tasks
    /// (default 65 536) before refusing with [`ScheduleError::Full`].
    pub fn with_handle_capacity(capacity: usize) -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), WAKER_TOKEN)?;
        Ok(Reactor {
            poll,
            events: Events::with_capacity(1024),
            handlers: Slab::new(),
            next_generation: 0,
            timers: TimerQueue::new(),
            deferred: Vec::new(),
            tick_hooks: Vec::new(),
            stop_hooks: Vec::new(),
            stop_holds: 0,
            stop_grace: DEFAULT_STOP_GRACE,
            state: RunState::Running,
            remote: Arc::new(Remote::new(waker, capacity.max(1))),
            now: Instant::now(),
            services: Vec::new(),
        })
    }

    /// A `Send + Clone` handle other threads use to run closures on this loop.
    pub fn handle(&self) -> Handle {
        Handle {
            remote: Arc::clone(&self.remote),
        }
    }

    /// The registry, for sources registered under a [`Reactor::insert_handler`] id.
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

    fn insert_slot(&mut self, handler: Box<dyn Handler>) -> SourceId {
        let generation = self.next_generation();
        let key = self.handlers.insert(Slot {
            generation,
            handler: Some(handler),
        });
        // Keys must stay below the sub-token bits; 4 billion handlers is not a
        // limit anyone reaches before running out of file descriptors.
        debug_assert!(key <= KEY_MASK);
        SourceId {
            key: key as u32,
            generation,
        }
    }

    /// Registers `source`, owned by the loop from now on, with a callback run
    /// on each readiness event.
    ///
    /// On failure nothing stays registered and the source is dropped.
    pub fn register<S, F>(
        &mut self,
        mut source: S,
        interest: Interest,
        callback: F,
    ) -> io::Result<SourceId>
    where
        S: Source + 'static,
        F: FnMut(&mut S, &Event, &mut Reactor) -> PostAction + 'static,
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
    /// [`Reactor::registry`] and the id's [`SourceId::token`] or
    /// [`SourceId::sub_token`]. The caller deregisters its sources; removing
    /// the handler does not.
    pub fn insert_handler<F>(&mut self, callback: F) -> SourceId
    where
        F: FnMut(&Event, &mut Reactor) -> PostAction + 'static,
    {
        self.insert_slot(Box::new(Detached(callback)))
    }

    /// Changes the interest of a source registered with [`Reactor::register`].
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
        // A handler removed from inside its own callback is lent out (None);
        // `dispatch` finds its slot gone and drops it then.
        if let Some(mut handler) = slot.handler
            && let Err(e) = handler.deregister(self.poll.registry())
        {
            error!("deregistering a source failed: {e}");
        }
        true
    }

    /// Runs `callback` once, `after` from now.
    pub fn add_timer(
        &mut self,
        after: Duration,
        callback: impl FnOnce(&mut Reactor) + 'static,
    ) -> TimerId {
        self.timers
            .insert(Instant::now() + after, TimerKind::Once(Box::new(callback)))
    }

    /// Runs `callback` every `period` (at least 1 ms) until cancelled.
    pub fn add_periodic(
        &mut self,
        period: Duration,
        callback: impl FnMut(&mut Reactor) + 'static,
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

    /// Runs `callback` at the end of the next turn, before the loop waits again.
    pub fn defer(&mut self, callback: impl FnOnce(&mut Reactor) + 'static) {
        self.deferred.push(Box::new(callback));
    }

    /// Runs `hook` at the end of every turn, after events, timers and
    /// deferred callbacks: the place to flush what the turn buffered.
    pub fn add_tick_hook(&mut self, hook: impl FnMut(&mut Reactor) + 'static) {
        self.tick_hooks.push(Box::new(hook));
    }

    /// Runs `hook` once when a graceful stop begins (see [`Reactor::stop`]).
    pub fn add_stop_hook(&mut self, hook: impl FnOnce(&mut Reactor) + 'static) {
        self.stop_hooks.push(Box::new(hook));
    }

    /// Keeps the loop turning during a graceful stop until a matching
    /// [`Reactor::release_stop`] (or the grace period ends). A server holds the
    /// stop while its connections finish their close handshakes.
    pub fn hold_stop(&mut self) {
        self.stop_holds += 1;
    }

    /// Releases one [`Reactor::hold_stop`].
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
            hook(self);
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

    /// Turns the loop until it is stopped.
    pub fn run(&mut self) -> io::Result<()> {
        if self.state == RunState::Stopped {
            self.state = RunState::Running;
        }
        while !self.finished() {
            self.turn(None)?;
        }
        self.state = RunState::Stopped;
        Ok(())
    }

    fn finished(&self) -> bool {
        match self.state {
            RunState::Running => false,
            RunState::Stopping { deadline } => self.stop_holds == 0 || Instant::now() >= deadline,
            RunState::Stopped => true,
        }
    }

    /// One turn: wait for events (at most `max_wait`, or until the next timer),
    /// dispatch them, then run remote tasks, due timers, deferred callbacks
    /// and tick hooks. `Some(Duration::ZERO)` never blocks: tests step the
    /// loop with it.
    pub fn turn(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
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
            task(self);
        }
        let mut hooks = std::mem::take(&mut self.tick_hooks);
        for hook in hooks.iter_mut() {
            hook(self);
        }
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

    fn dispatch(&mut self, event: &Event) {
        let key = event.token().0 & KEY_MASK;
        let Some(slot) = self.handlers.get_mut(key) else {
            return; // removed earlier in this batch
        };
        let generation = slot.generation;
        let Some(mut handler) = slot.handler.take() else {
            return;
        };
        let action = handler.ready(event, self);
        let token = Token(key);
        match self.handlers.get_mut(key) {
            Some(slot) if slot.generation == generation => {
                let registry = self.poll.registry();
                match action {
                    PostAction::Continue => slot.handler = Some(handler),
                    PostAction::Reregister(interest) => {
                        if let Err(e) = handler.reregister(registry, token, interest) {
                            error!("reregistering a source failed, dropping it: {e}");
                            self.handlers.remove(key);
                        } else {
                            slot.handler = Some(handler);
                        }
                    }
                    PostAction::Remove => {
                        if let Err(e) = handler.deregister(registry) {
                            error!("deregistering a source failed: {e}");
                        }
                        self.handlers.remove(key);
                    }
                }
            }
            // The callback removed its own source.
            _ => {
                if let Err(e) = handler.deregister(self.poll.registry()) {
                    error!("deregistering a source failed: {e}");
                }
            }
        }
    }

    fn run_remote_tasks(&mut self) {
        if self.remote.take_stop_request() {
            self.stop();
        }
        for task in self.remote.take_all() {
            task(self);
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
                TimerKind::Once(callback) => callback(self),
                TimerKind::Periodic(mut callback, period) => {
                    callback(self);
                    self.timers
                        .restore_periodic(due.id, callback, period, Instant::now());
                }
            }
        }
    }

    /// Keeps a weak reference to a loop-local service and returns its index
    /// (see [`Reactor::service`]).
    pub(crate) fn add_service(&mut self, service: Weak<dyn Any>) -> usize {
        self.services.push(service);
        self.services.len() - 1
    }

    /// The service at `index`, if it is still alive.
    pub(crate) fn service(&self, index: usize) -> Option<Rc<dyn Any>> {
        self.services.get(index)?.upgrade()
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        // Handles must learn that nothing will run their tasks any more.
        self.remote.close();
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("handlers", &self.handlers.len())
            .field("timers", &self.timers)
            .field("deferred", &self.deferred.len())
            .field("state", &self.state)
            .finish()
    }
}

#[cfg(test)]
mod tests;
