//! The one guard around user code: every place the loop calls code it did
//! not write (a component callback, an HTTP handler, a timer, a deferred
//! closure, a user's source, a Redis callback, a task from another thread)
//! goes through [`call`], so a panic there is caught, logged once with what
//! was running, and the loop goes on serving everyone else. What else
//! happens depends on what the code was serving and is the caller's to
//! decide: a connection is closed with 1011, an HTTP request answered 500,
//! a source or periodic timer removed.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{self, AssertUnwindSafe, catch_unwind};
use std::sync::Once;

use log::error;

thread_local! {
    /// How deep this thread is inside [`catch`]: a panic there is reported
    /// by the guard, not by the panic hook.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
    /// Where the last guarded panic happened, for the guard's log line.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Makes a panic inside the guard print nothing on its own: the guard
/// logs it once, with what was running and where it panicked. Panics
/// anywhere else go to the hook that was installed before, unchanged.
/// Done once per process, when the first loop is made.
pub(crate) fn quiet_guarded_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) > 0 {
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()));
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// A panic caught by [`call`]: its message, already logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Panicked(pub(crate) String);

/// Runs `f`; a panic inside it is logged as `"{what} panicked: {message}"`
/// and returned as [`Panicked`] instead of unwinding into the loop.
///
/// `what` is only formatted when a panic happened, so callers pass a cheap
/// description (a route, a source kind) by reference.
pub(crate) fn call<R>(what: &dyn fmt::Display, f: impl FnOnce() -> R) -> Result<R, Panicked> {
    catch(f).inspect_err(|Panicked(message)| match take_location() {
        Some(at) => error!("{what} panicked at {at}: {message}"),
        None => error!("{what} panicked: {message}"),
    })
}

/// Where the last panic caught on this thread happened, if the hook saw it.
pub(crate) fn take_location() -> Option<String> {
    LOCATION.with(|l| l.borrow_mut().take())
}

/// [`call`] without the log line, for a caller that can only say what
/// panicked once `f` has returned (`f` borrows what it would describe).
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panicked> {
    // AssertUnwindSafe: after a panic the loop drops or resets what the
    // panicking code was serving (the connection, the source, the timer);
    // shared loop state is only touched through methods that leave it
    // consistent between statements.
    GUARDED.with(|g| g.set(g.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    result.map_err(|payload| Panicked(panic_message(&*payload)))
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guarded_panic_is_reported_by_the_guard_with_its_place() {
        quiet_guarded_panics();
        let caught = call(&"test", || -> u8 { panic!("here") });
        assert_eq!(caught, Err(Panicked("here".into())));
        // `call` took the place for its log line; a bare `catch` leaves it.
        assert_eq!(take_location(), None);
        let _ = catch(|| -> u8 { panic!("there") });
        let at = take_location().expect("the hook saw where");
        assert!(at.starts_with("src/guard.rs:"), "{at}");
    }

    #[test]
    fn a_panic_becomes_its_message_and_a_value_passes_through() {
        assert_eq!(call(&"test", || 7), Ok(7));
        let caught = call(&"test", || -> u8 { panic!("boom {}", 1) });
        assert_eq!(caught, Err(Panicked("boom 1".into())));
        let caught = call(&"test", || -> u8 { std::panic::panic_any(5u8) });
        assert_eq!(caught, Err(Panicked("non-string panic payload".into())));
    }
}
