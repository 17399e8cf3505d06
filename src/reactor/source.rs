//! What the loop dispatches to: the ids and typed keys of sources, what a
//! callback returns, and the handlers a slot holds (a source the loop owns
//! with its callback, or a callback for sources someone else registers).

use std::any::Any;
use std::fmt;
use std::io;
use std::marker::PhantomData;

use mio::event::{Event, Source};
use mio::{Interest, Registry, Token};

use super::LoopHandle;

/// Low 32 bits of a token: the slab key of the handler it belongs to. High 32
/// bits: a sub-key the handler chose (see [`SourceId::sub_token`]).
pub(super) const KEY_BITS: u32 = 32;
pub(super) const KEY_MASK: usize = (1 << KEY_BITS) - 1;

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

/// Identifies a registered source or handler on one [`Reactor`](super::Reactor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceId {
    pub(super) key: u32,
    pub(super) generation: u32,
}

impl SourceId {
    /// The token events for this source carry.
    pub fn token(self) -> Token {
        Token(self.key as usize)
    }

    /// A token for one of many sources served by a single handler (see
    /// [`LoopHandle::insert_handler`]); `sub` comes back from [`sub_key`].
    ///
    /// This is how the WebSocket server serves thousands of sockets with one
    /// handler and no per-socket closure.
    pub fn sub_token(self, sub: u32) -> Token {
        Token(self.key as usize | ((sub as usize + 1) << KEY_BITS))
    }
}

#[cfg(test)]
impl SourceId {
    /// An id for unit tests of what sits above the loop.
    pub(crate) fn for_tests(key: u32) -> SourceId {
        SourceId { key, generation: 1 }
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

/// A typed key to a value the loop owns (a WebSocket server, say): the slot
/// and generation of a [`SourceId`], and the type that lives there, so that
/// reaching it needs no lookup by type. `Copy` and `Send`: any closure may
/// carry one, including tasks sent from other threads.
pub(crate) struct SourceKey<T> {
    pub(super) id: SourceId,
    _type: PhantomData<fn() -> T>,
}

impl<T> SourceKey<T> {
    /// The id events for this source carry.
    pub(crate) fn id(self) -> SourceId {
        self.id
    }

    /// The key of `id`, which the caller knows holds a `T` (a typed handle
    /// made from a key [`LoopHandle::insert`] returned). A wrong claim is
    /// caught where the key is used, logged, and reaches nothing.
    pub(crate) fn assume(id: SourceId) -> Self {
        SourceKey {
            id,
            _type: PhantomData,
        }
    }
}

impl<T> Clone for SourceKey<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for SourceKey<T> {}

impl<T> fmt::Debug for SourceKey<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SourceKey({}/{})", self.id.key, self.id.generation)
    }
}

/// Something the loop owns and dispatches events to.
pub(crate) trait Handler: 'static {
    /// Events for this handler's token (or one of its sub-tokens).
    fn ready(&mut self, event: &Event, lp: &mut LoopHandle) -> PostAction;
    /// Changes the interest of the one source this handler owns.
    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()>;
    /// Takes its sources out of the poll before it is dropped.
    fn deregister(&mut self, registry: &Registry) -> io::Result<()>;
    /// What it is, for the log line when user code inside it panics.
    fn describe(&self) -> String {
        "an event source".to_owned()
    }
    /// Itself, for typed access through a [`SourceKey`].
    fn as_any(&mut self) -> &mut dyn Any;
}

/// A source the loop owns, with its callback.
pub(super) struct Owned<S, F> {
    pub(super) source: S,
    pub(super) callback: F,
}

impl<S, F> Handler for Owned<S, F>
where
    S: Source + 'static,
    F: FnMut(&mut S, &Event, &mut LoopHandle) -> PostAction + 'static,
{
    fn ready(&mut self, event: &Event, lp: &mut LoopHandle) -> PostAction {
        (self.callback)(&mut self.source, event, lp)
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
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// A callback whose sources are owned and registered by someone else.
pub(super) struct Detached<F>(pub(super) F);

impl<F> Handler for Detached<F>
where
    F: FnMut(&Event, &mut LoopHandle) -> PostAction + 'static,
{
    fn ready(&mut self, event: &Event, lp: &mut LoopHandle) -> PostAction {
        (self.0)(event, lp)
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
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}
