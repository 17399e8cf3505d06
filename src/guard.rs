//! The one guard around user code: every place the loop calls code it did
//! not write (a component callback, an HTTP handler, a timer, a deferred
//! closure, a user's source, a Redis callback, a task from another thread)
//! goes through [`call`], so a panic there is caught, logged once with what
//! was running, and the loop goes on serving everyone else. What else
//! happens depends on what the code was serving and is the caller's to
//! decide: a connection is closed with 1011, an HTTP request answered 500,
//! a source or periodic timer removed.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

use log::error;

/// A panic caught by [`call`]: its message, already logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Panicked(pub(crate) String);

/// Runs `f`; a panic inside it is logged as `"{what} panicked: {message}"`
/// and returned as [`Panicked`] instead of unwinding into the loop.
///
/// `what` is only formatted when a panic happened, so callers pass a cheap
/// description (a route, a source kind) by reference.
pub(crate) fn call<R>(what: &dyn fmt::Display, f: impl FnOnce() -> R) -> Result<R, Panicked> {
    catch(f).inspect_err(|Panicked(message)| error!("{what} panicked: {message}"))
}

/// [`call`] without the log line, for a caller that can only say what
/// panicked once `f` has returned (`f` borrows what it would describe).
pub(crate) fn catch<R>(f: impl FnOnce() -> R) -> Result<R, Panicked> {
    // AssertUnwindSafe: after a panic the loop drops or resets what the
    // panicking code was serving (the connection, the source, the timer);
    // shared loop state is only touched through methods that leave it
    // consistent between statements.
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| Panicked(panic_message(&*payload)))
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
    fn a_panic_becomes_its_message_and_a_value_passes_through() {
        assert_eq!(call(&"test", || 7), Ok(7));
        let caught = call(&"test", || -> u8 { panic!("boom {}", 1) });
        assert_eq!(caught, Err(Panicked("boom 1".into())));
        let caught = call(&"test", || -> u8 { std::panic::panic_any(5u8) });
        assert_eq!(caught, Err(Panicked("non-string panic payload".into())));
    }
}
