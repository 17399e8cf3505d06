//! The connection's state machine over an in-memory peer that answers
//! `WouldBlock` as a full socket does: partial writes, backpressure and
//! drain, the close handshake from either side, overflow.

use super::*;
use crate::config::ServerConfig;
use crate::error::Limit;
use crate::frame::encode;
use crate::reactor::SourceId;
use crate::transport::Transport;
use crate::transport::memory::MemoryStream;

#[test]
fn an_idle_connection_stays_small() {
    // The per-connection figure the README promises rests on this.
    let size = std::mem::size_of::<Connection>();
    println!("Connection: {size} bytes");
    assert!(size <= 160, "{size}");
}

/// A table with one open connection whose peer takes `room` bytes.
fn open_connection(room: usize, config: ServerConfig) -> (Net, ConnId) {
    let mut net = Net::new(config, SourceId::for_tests(0));
    let stream = Transport::Memory(Box::new(MemoryStream {
        room,
        ..MemoryStream::default()
    }));
    let peer = "127.0.0.1:9".parse().expect("an address");
    let generation = net.next_generation();
    let key = net
        .conns
        .insert(Connection::new(stream, peer, generation, 0)) as u32;
    let conn = &mut net.conns[key as usize];
    conn.phase = Phase::Open;
    conn.flags |= flag::OPENED;
    (net, ConnId { key, generation })
}

fn peer(net: &mut Net, id: ConnId) -> &mut MemoryStream {
    match &mut net.conns[id.key as usize].stream {
        Transport::Memory(m) => m,
        _ => unreachable!("the tests only make memory streams"),
    }
}

fn frame(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    encode::message(&mut out, true, text.as_bytes());
    out
}

#[test]
fn a_send_the_socket_cannot_take_waits_and_drains_later() {
    let config = ServerConfig {
        backpressure_threshold: 64,
        ..ServerConfig::default()
    };
    let (mut net, id) = open_connection(10, config);
    let big = "x".repeat(100);
    assert_eq!(
        net.send_message(id, true, big.as_bytes()),
        SendStatus::Backpressure
    );
    assert_eq!(net.dirty, [id.key]);
    net.flush(id.key);
    // The socket took 10 bytes and said WouldBlock: the rest waits.
    assert_eq!(peer(&mut net, id).written.len(), 10);
    assert_eq!(net.conns[id.key as usize].unsent(), frame(&big).len() - 10);
    assert!(net.pending.is_empty(), "no drain while bytes wait");
    // A second send is queued behind the first, in order.
    assert_eq!(
        net.send_message(id, true, b"after"),
        SendStatus::Backpressure
    );
    peer(&mut net, id).room = usize::MAX;
    net.flush(id.key);
    let mut want = frame(&big);
    want.extend(frame("after"));
    assert_eq!(peer(&mut net, id).written, want);
    assert_eq!(net.conns[id.key as usize].unsent(), 0);
    assert!(matches!(
        net.pending.pop_front(),
        Some(Pending::Drain { conn, .. }) if conn == id
    ));
}

#[test]
fn our_close_waits_for_the_peers_then_the_socket_goes() {
    let (mut net, id) = open_connection(usize::MAX, ServerConfig::default());
    net.close(id, 4000, "bye", CloseReason::Shutdown);
    assert_eq!(net.conns[id.key as usize].phase, Phase::AwaitingClose);
    assert_eq!(net.send_message(id, true, b"late"), SendStatus::Dropped);
    net.flush(id.key);
    let mut want = Vec::new();
    encode::close(&mut want, 4000, "bye");
    assert_eq!(peer(&mut net, id).written, want);
    assert!(net.doomed.is_empty(), "still waiting for the peer's close");
    net.peer_closed(id.key, 4000, "");
    net.flush(id.key);
    assert_eq!(net.doomed, [id.key]);
    assert!(peer(&mut net, id).write_closed);
    let reason = net.conns[id.key as usize].reason.as_deref().cloned();
    assert_eq!(reason, Some(CloseReason::Shutdown));
}

#[test]
fn the_peers_close_is_echoed_then_the_socket_goes() {
    let (mut net, id) = open_connection(3, ServerConfig::default());
    net.peer_closed(id.key, 1001, "going");
    assert_eq!(net.conns[id.key as usize].phase, Phase::Flushing);
    net.flush(id.key);
    assert!(net.doomed.is_empty(), "the echo is not all out yet");
    peer(&mut net, id).room = usize::MAX;
    net.flush(id.key);
    let mut want = Vec::new();
    encode::close(&mut want, 1001, "");
    assert_eq!(peer(&mut net, id).written, want);
    assert_eq!(net.doomed, [id.key]);
    let reason = net.conns[id.key as usize].reason.as_deref().cloned();
    assert_eq!(
        reason,
        Some(CloseReason::Peer {
            code: 1001,
            reason: "going".into()
        })
    );
}

#[test]
fn a_peer_that_never_reads_is_closed_past_max_backpressure() {
    let config = ServerConfig {
        backpressure_threshold: 16,
        max_backpressure: 64,
        ..ServerConfig::default()
    };
    let (mut net, id) = open_connection(0, config);
    assert_eq!(
        net.send_message(id, true, &[b'a'; 40]),
        SendStatus::Backpressure
    );
    assert_eq!(net.send_message(id, true, &[b'b'; 40]), SendStatus::Dropped);
    assert_eq!(net.doomed, [id.key]);
    assert_eq!(
        net.conns[id.key as usize].out.capacity(),
        0,
        "buffer freed at once"
    );
    assert!(matches!(
        net.pending.pop_front(),
        Some(Pending::Error {
            error: Error::Limit(Limit::Backpressure),
            ..
        })
    ));
    assert_eq!(net.send_message(id, true, b"c"), SendStatus::Dropped);
}

#[test]
fn a_stale_id_reaches_nothing() {
    let (mut net, id) = open_connection(usize::MAX, ServerConfig::default());
    let stale = ConnId {
        generation: id.generation + 1,
        ..id
    };
    assert_eq!(net.send_message(stale, true, b"x"), SendStatus::Dropped);
    assert!(net.dirty.is_empty());
}
