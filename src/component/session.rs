//! Where a route keeps its components' per-connection sessions.

use slab::Slab;

/// The sessions of one route, keyed by a number each connection carries.
///
/// A session is lent out (taken from its slot) while a callback of its own
/// connection runs, so the callback can hold it beside a [`Context`]
/// that reaches every other session of the route.
///
/// Zero-sized sessions (`()`, the common case) take no memory at all: all
/// values of a zero-sized type are alike, so a `Vec` of them (which never
/// allocates) keeps just their count, and each connection's drop still runs.
///
/// [`Context`]: crate::Context
pub(crate) enum Sessions<S> {
    Sized(Slab<Option<S>>),
    ZeroSized(Vec<S>),
}

impl<S> Default for Sessions<S> {
    fn default() -> Self {
        if std::mem::size_of::<S>() == 0 {
            Sessions::ZeroSized(Vec::new())
        } else {
            Sessions::Sized(Slab::new())
        }
    }
}

impl<S> Sessions<S> {
    /// Stores a new session; the key goes into the connection.
    pub(crate) fn insert(&mut self, session: S) -> u32 {
        match self {
            Sessions::Sized(slab) => slab.insert(Some(session)) as u32,
            Sessions::ZeroSized(all) => {
                all.push(session);
                0
            }
        }
    }

    /// Lends a session out for its connection's callback.
    pub(crate) fn take(&mut self, key: u32) -> Option<S> {
        match self {
            Sessions::Sized(slab) => slab.get_mut(key as usize)?.take(),
            Sessions::ZeroSized(all) => all.pop(),
        }
    }

    /// Returns a session lent out by [`Sessions::take`].
    pub(crate) fn put_back(&mut self, key: u32, session: S) {
        match self {
            Sessions::Sized(slab) => {
                if let Some(slot) = slab.get_mut(key as usize) {
                    *slot = Some(session);
                }
            }
            Sessions::ZeroSized(all) => all.push(session),
        }
    }

    /// Takes a session out for good, when its connection closes.
    pub(crate) fn remove(&mut self, key: u32) -> Option<S> {
        match self {
            Sessions::Sized(slab) => slab.try_remove(key as usize).flatten(),
            Sessions::ZeroSized(all) => all.pop(),
        }
    }

    /// A session that is not lent out.
    pub(crate) fn get_mut(&mut self, key: u32) -> Option<&mut S> {
        match self {
            Sessions::Sized(slab) => slab.get_mut(key as usize)?.as_mut(),
            Sessions::ZeroSized(all) => all.last_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sized_sessions_are_lent_and_returned_by_key() {
        let mut sessions = Sessions::default();
        let a = sessions.insert(String::from("a"));
        let b = sessions.insert(String::from("b"));
        let lent = sessions.take(a).expect("a is there");
        assert_eq!(sessions.get_mut(a), None, "lent out");
        assert_eq!(sessions.get_mut(b).map(|s| s.as_str()), Some("b"));
        sessions.put_back(a, lent);
        assert_eq!(sessions.remove(a).as_deref(), Some("a"));
        assert_eq!(sessions.remove(a), None);
    }

    #[test]
    fn zero_sized_sessions_keep_a_count_and_run_their_drops() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct Counted;
        impl Drop for Counted {
            fn drop(&mut self) {
                DROPS.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut sessions = Sessions::default();
        assert!(matches!(sessions, Sessions::ZeroSized(_)));
        let key = sessions.insert(Counted);
        sessions.insert(Counted);
        let lent = sessions.take(key).expect("one is there");
        sessions.put_back(key, lent);
        assert_eq!(DROPS.load(Ordering::Relaxed), 0);
        drop(sessions.remove(key));
        drop(sessions);
        assert_eq!(DROPS.load(Ordering::Relaxed), 2);
    }
}
