//! [`Handle`]: how other threads hand work to the loop.
//!
//! The queue is a bounded `Mutex<VecDeque>` plus the poll's one
//! [`mio::Waker`]. The waker is only rung when the queue goes from empty to
//! non-empty: the loop drains the whole queue per wake, so one ring per batch
//! is enough and a busy producer costs one `write(2)` per batch, not per task.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mio::Waker;

use super::LoopHandle;

/// A closure sent from another thread to run on the loop.
pub(crate) type RemoteTask = Box<dyn FnOnce(&mut LoopHandle) + Send>;

/// Why [`Handle::schedule`] refused a task. The task is dropped either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The loop's queue is full: the loop is behind. Retry later or shed load;
    /// the handle never blocks the caller.
    #[error("the reactor's queue is full")]
    Full,
    /// The loop has stopped and will run nothing more.
    #[error("the reactor has stopped")]
    Closed,
}

pub(crate) struct Remote {
    queue: Mutex<VecDeque<RemoteTask>>,
    capacity: usize,
    waker: Waker,
    closed: AtomicBool,
    stop_requested: AtomicBool,
}

impl Remote {
    pub(crate) fn new(waker: Waker, capacity: usize) -> Self {
        Remote {
            queue: Mutex::new(VecDeque::new()),
            capacity,
            waker,
            closed: AtomicBool::new(false),
            stop_requested: AtomicBool::new(false),
        }
    }

    /// Takes every queued task. Called by the loop after a wake.
    pub(crate) fn take_all(&self) -> VecDeque<RemoteTask> {
        // A poisoned lock only means a producer panicked while pushing; the
        // queue itself is still a valid VecDeque.
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *queue)
    }

    pub(crate) fn take_stop_request(&self) -> bool {
        self.stop_requested.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        // Drop what is queued now: nothing will run it.
        drop(self.take_all());
    }
}

/// A `Send + Clone` handle to a [`Reactor`](crate::reactor::Reactor), for other threads.
///
/// # Examples
///
/// ```
/// use pawl::reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// let handle = reactor.handle();
/// std::thread::spawn(move || {
///     handle.schedule(|reactor| reactor.stop()).expect("loop is running");
/// });
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) remote: Arc<Remote>,
}

impl Handle {
    /// Queues `task` to run on the loop thread at its next turn.
    ///
    /// Never blocks: when the queue is at capacity the task is refused with
    /// [`ScheduleError::Full`].
    pub fn schedule(
        &self,
        task: impl FnOnce(&mut LoopHandle) + Send + 'static,
    ) -> Result<(), ScheduleError> {
        if self.remote.closed.load(Ordering::Acquire) {
            return Err(ScheduleError::Closed);
        }
        let was_empty = {
            let mut queue = self.remote.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.len() >= self.remote.capacity {
                return Err(ScheduleError::Full);
            }
            queue.push_back(Box::new(task));
            queue.len() == 1
        };
        if was_empty {
            self.wake()?;
        }
        Ok(())
    }

    /// Asks the loop to stop gracefully, as SIGTERM does. Works even when the
    /// queue is full.
    pub fn stop(&self) -> Result<(), ScheduleError> {
        if self.remote.closed.load(Ordering::Acquire) {
            return Err(ScheduleError::Closed);
        }
        self.remote.stop_requested.store(true, Ordering::Release);
        self.wake()
    }

    fn wake(&self) -> Result<(), ScheduleError> {
        // The waker only fails if the poll is gone, i.e. the loop has stopped.
        self.remote.waker.wake().map_err(|_| ScheduleError::Closed)
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("capacity", &self.remote.capacity)
            .field("closed", &self.remote.closed.load(Ordering::Relaxed))
            .finish()
    }
}
