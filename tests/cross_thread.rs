//! Other threads reach the loop: `ServerHandle::send` to a connection,
//! `ServerHandle::run` with a context, and `reactor::Handle::schedule`.

mod util;

use std::sync::mpsc;

use pawl::{ConnId, EchoServer, OwnedMessage, SendStatus};
use util::{Recorder, TIMEOUT, TestServer, app};

#[test]
fn server_handle_sends_to_a_connection_from_another_thread() {
    let (recorder, events) = Recorder::new(true);
    let server = TestServer::start(move || app().route("/rec", recorder, &["*"]));
    let mut client = server.client("/rec");
    let id = events.opened();

    let handle = server.server.clone();
    std::thread::spawn(move || {
        for i in 0..100 {
            handle
                .send(id, OwnedMessage::Text(format!("pushed {i}")))
                .expect("queue has room");
        }
        handle
            .send(id, OwnedMessage::Binary(vec![1, 2, 3]))
            .expect("queue has room");
    })
    .join()
    .expect("sender thread");

    for i in 0..100 {
        client.expect_text(&format!("pushed {i}"));
    }
    client.expect_binary(&[1, 2, 3]);
}

#[test]
fn server_handle_runs_code_with_a_context() {
    let server = TestServer::start(|| app().route("/echo", EchoServer, &["*"]));
    let mut clients: Vec<_> = (0..5).map(|_| server.client("/echo")).collect();
    // Make sure all five are open before counting them.
    for client in &mut clients {
        client.send_text("ready?");
        client.expect_text("ready?");
    }
    let (tx, rx) = mpsc::channel();
    let handle = server.server.clone();
    std::thread::spawn(move || {
        handle
            .run(move |ctx| {
                let conns: Vec<ConnId> = ctx.connections().collect();
                let sent = ctx.broadcast(conns.iter().copied(), "from a thread");
                let _ = tx.send((conns.len(), sent));
            })
            .expect("scheduled");
    });
    let (open, sent) = rx.recv_timeout(TIMEOUT).expect("the task ran");
    assert_eq!((open, sent), (5, 5));
    for client in &mut clients {
        client.expect_text("from a thread");
    }
}

#[test]
fn reactor_handle_schedules_on_the_loop_thread() {
    let server = TestServer::start(|| app().route("/echo", EchoServer, &["*"]));
    let (tx, rx) = mpsc::channel();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let handle = server.reactor.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let tx = tx.clone();
                    handle
                        .schedule(move |_reactor| {
                            let name = std::thread::current().name().map(str::to_owned);
                            let _ = tx.send((t, i, name));
                        })
                        .expect("scheduled");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("producer");
    }
    let mut last = [None; 4];
    for _ in 0..200 {
        let (t, i, name) = rx.recv_timeout(TIMEOUT).expect("every task runs");
        assert_eq!(
            name.as_deref(),
            Some("pawl-reactor"),
            "ran off the loop thread"
        );
        // Each producer's tasks run in the order it queued them.
        assert!(last[t].is_none_or(|prev| prev < i), "out of order");
        last[t] = Some(i);
    }
}

#[test]
fn send_from_a_thread_to_a_closed_connection_is_dropped() {
    let (recorder, events) = Recorder::new(true);
    let server = TestServer::start(move || app().route("/rec", recorder, &["*"]));
    let mut client = server.client("/rec");
    let id = events.opened();
    client.close(1000, "bye");
    client.expect_end();
    events.closed(id);
    let (tx, rx) = mpsc::channel();
    server
        .server
        .run(move |ctx| {
            let _ = tx.send(ctx.send(id, "too late"));
        })
        .expect("scheduled");
    assert_eq!(rx.recv_timeout(TIMEOUT).expect("ran"), SendStatus::Dropped);
}

#[test]
fn handles_report_a_stopped_loop_instead_of_blocking() {
    let (recorder, events) = Recorder::new(true);
    let server = TestServer::start(move || app().route("/rec", recorder, &["*"]));
    let client = server.client("/rec");
    let id = events.opened();
    drop(client);
    let (reactor, handle) = (server.reactor.clone(), server.server.clone());
    server.stop();
    assert_eq!(
        reactor.schedule(|_| {}),
        Err(pawl::reactor::ScheduleError::Closed)
    );
    assert_eq!(
        handle.send(id, OwnedMessage::Text("too late".into())),
        Err(pawl::reactor::ScheduleError::Closed)
    );
    assert_eq!(handle.stop(), Err(pawl::reactor::ScheduleError::Closed));
}
