use std::any::Any;
use std::cell::RefCell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::Duration;

use mio::net::UnixStream;

use super::*;

fn step(reactor: &mut Reactor) {
    reactor.turn(Some(Duration::ZERO)).expect("turn");
}

#[test]
fn timers_fire_in_order_and_cancel_works() {
    let mut reactor = Reactor::new().expect("reactor");
    let log = Rc::new(RefCell::new(Vec::new()));
    let (a, b, c) = (log.clone(), log.clone(), log.clone());
    reactor.add_timer(Duration::from_millis(20), move |_| {
        a.borrow_mut().push("late")
    });
    reactor.add_timer(Duration::ZERO, move |_| b.borrow_mut().push("soon"));
    let cancelled = reactor.add_timer(Duration::ZERO, move |_| c.borrow_mut().push("cancelled"));
    assert!(reactor.cancel_timer(cancelled));
    let done = log.clone();
    reactor.add_timer(Duration::from_millis(30), move |r| {
        done.borrow_mut().push("stop");
        r.stop();
    });
    reactor.run().expect("run");
    assert_eq!(*log.borrow(), ["soon", "late", "stop"]);
}

#[test]
fn deferred_runs_on_the_next_turn_not_the_current_one() {
    let mut reactor = Reactor::new().expect("reactor");
    let log = Rc::new(RefCell::new(Vec::new()));
    let outer = log.clone();
    reactor.defer(move |r| {
        outer.borrow_mut().push(1);
        let inner = outer.clone();
        r.defer(move |_| inner.borrow_mut().push(2));
    });
    step(&mut reactor);
    assert_eq!(*log.borrow(), [1]);
    step(&mut reactor);
    assert_eq!(*log.borrow(), [1, 2]);
}

#[test]
fn a_registered_source_gets_its_events_until_removed() {
    let mut reactor = Reactor::new().expect("reactor");
    let (mut ours, theirs) = UnixStream::pair().expect("pair");
    let received = Rc::new(RefCell::new(Vec::new()));
    let sink = received.clone();
    reactor
        .register(theirs, Interest::READABLE, move |stream, _event, _r| {
            let mut buf = [0u8; 64];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => return PostAction::Remove,
                    Ok(n) => sink.borrow_mut().extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return PostAction::Continue,
                    Err(e) => panic!("read: {e}"),
                }
            }
        })
        .expect("register");
    ours.write_all(b"hello").expect("write");
    for _ in 0..10 {
        step(&mut reactor);
    }
    assert_eq!(&*received.borrow(), b"hello");
    drop(ours);
    for _ in 0..10 {
        step(&mut reactor);
    }
    assert_eq!(reactor.handlers.len(), 0, "source removed itself on EOF");
}

#[test]
fn handle_runs_closures_from_another_thread_and_refuses_when_full() {
    let mut reactor = Reactor::new().expect("reactor");
    let handle = reactor.handle();
    let total = Rc::new(RefCell::new(0u32));
    let thread = std::thread::spawn(move || {
        for i in 1..=100u32 {
            handle
                .schedule(move |r| {
                    // Rc is not Send: reach loop state through the reactor.
                    r.defer(move |_| {
                        let _ = i;
                    });
                })
                .expect("queue has room");
        }
        handle.stop().expect("stop");
    });
    let counter = total.clone();
    reactor.add_tick_hook(move |_| {
        *counter.borrow_mut() += 1;
        true
    });
    reactor.run().expect("run");
    thread.join().expect("thread");
    assert!(*total.borrow() > 0);

    let small = Reactor::with_handle_capacity(2).expect("reactor");
    let handle = small.handle();
    handle.schedule(|_| {}).expect("1");
    handle.schedule(|_| {}).expect("2");
    assert_eq!(handle.schedule(|_| {}), Err(ScheduleError::Full));
    drop(small);
    assert_eq!(handle.schedule(|_| {}), Err(ScheduleError::Closed));
}

#[test]
fn graceful_stop_waits_for_holders_then_ends() {
    let mut reactor = Reactor::new().expect("reactor");
    reactor.add_stop_hook(|r| {
        r.hold_stop();
        r.add_timer(Duration::from_millis(10), |r| r.release_stop());
    });
    let ended = Rc::new(RefCell::new(false));
    let flag = ended.clone();
    reactor.add_timer(Duration::ZERO, |r| r.stop());
    reactor.add_timer(Duration::from_millis(5), move |_| *flag.borrow_mut() = true);
    reactor.run().expect("run");
    assert!(
        *ended.borrow(),
        "the loop kept turning while the stop was held"
    );
}

#[test]
fn sub_tokens_round_trip() {
    let id = SourceId {
        key: 7,
        generation: 1,
    };
    assert_eq!(sub_key(id.token()), None);
    assert_eq!(sub_key(id.sub_token(0)), Some(0));
    assert_eq!(sub_key(id.sub_token(123_456)), Some(123_456));
    assert_eq!(id.sub_token(5).0 & KEY_MASK, 7);
}

/// A handler the loop owns, reached through its typed key.
struct Tally {
    log: Rc<RefCell<Vec<&'static str>>>,
    me: Option<SourceKey<Tally>>,
}

impl Handler for Tally {
    fn ready(&mut self, _: &Event, lp: &mut LoopHandle) -> PostAction {
        self.log.borrow_mut().push("ready");
        // Reaching itself while lent out: deferred until it is back, never
        // dropped, and before anything else runs.
        if let Some(me) = self.me {
            let found = lp.with_source(me, |tally, _| tally.log.borrow_mut().push("reached"));
            assert!(found, "a lent-out source still counts as present");
        }
        self.log.borrow_mut().push("ready ends");
        PostAction::Continue
    }
    fn reregister(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Ok(())
    }
    fn deregister(&mut self, _: &Registry) -> io::Result<()> {
        Ok(())
    }
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

#[test]
fn a_source_reached_while_lent_out_gets_the_work_right_after() {
    let mut reactor = Reactor::new().expect("reactor");
    let log = Rc::new(RefCell::new(Vec::new()));
    let (mut ours, mut theirs) = UnixStream::pair().expect("pair");
    let key = reactor
        .insert_with(|id, registry| {
            registry.register(&mut theirs, id.token(), Interest::READABLE)?;
            Ok(Tally {
                log: log.clone(),
                me: None,
            })
        })
        .expect("insert");
    assert!(reactor.with_source(key, move |tally, _| tally.me = Some(key)));
    ours.write_all(b"x").expect("write");
    let (tail, log_) = (log.clone(), log.clone());
    reactor.defer(move |_| tail.borrow_mut().push("deferred"));
    step(&mut reactor);
    assert_eq!(
        *log_.borrow(),
        ["ready", "ready ends", "reached", "deferred"]
    );
    assert_eq!(
        reactor.try_with_source(key, |tally, _| tally.log.borrow().len()),
        Some(4)
    );
    assert!(reactor.remove(key.id()));
    assert!(!reactor.with_source(key, |_, _| unreachable!("gone")));
    drop(theirs);
}

#[test]
fn a_panicking_source_is_removed_and_the_loop_goes_on() {
    let mut reactor = Reactor::new().expect("reactor");
    let (mut ours, theirs) = UnixStream::pair().expect("pair");
    let id = reactor
        .register(theirs, Interest::READABLE, |_, _, _| {
            panic!("a bug in a source")
        })
        .expect("register");
    ours.write_all(b"x").expect("write");
    let fired = Rc::new(RefCell::new(0));
    let count = fired.clone();
    reactor.add_periodic(Duration::from_millis(1), move |_| {
        *count.borrow_mut() += 1;
    });
    let panicking = reactor.add_periodic(Duration::from_millis(1), |_| panic!("a bug in a timer"));
    reactor.defer(|_| panic!("a bug in a deferred callback"));
    let after = fired.clone();
    reactor.defer(move |_| *after.borrow_mut() += 100);
    for _ in 0..20 {
        reactor.turn(Some(Duration::from_millis(2))).expect("turn");
    }
    assert!(!reactor.contains(id), "the panicking source was removed");
    assert!(
        !reactor.cancel_timer(panicking),
        "the panicking timer was cancelled"
    );
    assert!(*fired.borrow() > 100, "the rest of the loop kept running");
}

/// A value reached while an outer lender holds it, from inside another
/// value it lent: the work waits for the outer lender, runs once, and
/// nothing spins.
#[test]
fn work_for_a_source_lent_further_out_waits_for_that_lender() {
    let mut reactor = Reactor::new().expect("reactor");
    let log = Rc::new(RefCell::new(Vec::new()));
    let tally = || Tally {
        log: log.clone(),
        me: None,
    };
    let a = reactor.insert(tally());
    let b = reactor.insert(tally());
    reactor.with_source(a, move |a_value, lp| {
        a_value.log.borrow_mut().push("in a");
        lp.with_source(b, move |b_value, lp| {
            b_value.log.borrow_mut().push("in b");
            // a is lent out by the outermost call: this waits for it.
            lp.with_source(a, |a_value, _| a_value.log.borrow_mut().push("a again"));
            b_value.log.borrow_mut().push("b ends");
        });
        a_value.log.borrow_mut().push("a ends");
    });
    assert_eq!(
        *log.borrow(),
        ["in a", "in b", "b ends", "a ends", "a again"]
    );
}
