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
    let reason = net.conns[id.key as usize].reason().cloned();
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
    let reason = net.conns[id.key as usize].reason().cloned();
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
    // One message larger than the limit is taken by an empty queue.
    assert_eq!(
        net.send_message(id, true, &[b'a'; 100]),
        SendStatus::Backpressure
    );
    assert!(net.doomed.is_empty());
    // The next finds the peer has not read the last 64 bytes: closed.
    assert_eq!(net.send_message(id, true, &[b'b'; 1]), SendStatus::Dropped);
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

/// A table with `count` open connections whose peers take `room` bytes.
fn open_connections(count: usize, room: usize, config: ServerConfig) -> (Net, Vec<ConnId>) {
    let (mut net, first) = open_connection(room, config.clone());
    let mut ids = vec![first];
    for _ in 1..count {
        let (other, id) = open_connection(room, config.clone());
        let conn = other.conns.into_iter().next().expect("one").1;
        let key = net.conns.insert(conn) as u32;
        ids.push(ConnId {
            key,
            generation: id.generation,
        });
    }
    (net, ids)
}

/// A table with `count` open connections that agreed to permessage-deflate
/// in `mode`, each with room for anything.
fn deflate_connections(count: usize, mode: crate::Compression) -> (Net, Vec<ConnId>) {
    let config = ServerConfig::default().compression(mode);
    let (mut net, ids) = open_connections(count, usize::MAX, config);
    let agreed =
        crate::deflate::offer::negotiate([&b"permessage-deflate"[..]], mode).expect("accepted");
    for id in &ids {
        net.conns[id.key as usize].flags |= flag::DEFLATE | flag::COMPRESS;
        net.codecs.open(id.key, &agreed);
    }
    (net, ids)
}

#[test]
fn a_fan_out_is_compressed_once_in_shared_mode_and_per_connection_in_dedicated() {
    let text = "{\"type\":\"message\",\"text\":\"hello hello hello hello\"}".repeat(10);
    let (mut net, ids) = deflate_connections(5, crate::Compression::Shared);
    let message = crate::Message::Text(&text);
    assert_eq!(net.fan_out(ids.iter().copied(), message), 5);
    assert_eq!(net.codecs.messages_deflated, 1);
    // Every connection got the same compressed frame, RSV1 set.
    let frames: Vec<Vec<u8>> = ids
        .iter()
        .map(|&id| net.conns[id.key as usize].out.clone())
        .collect();
    assert_eq!(frames[0][0], 0xc1);
    assert!(frames[0].len() < text.len() / 2);
    assert!(frames.iter().all(|f| *f == frames[0]));
    // A prepared message too: compressed on first use, once.
    let prepared = crate::message::Prepared::new(frame(&text), true, text.len());
    for &id in &ids {
        assert_eq!(net.send_prepared(id, &prepared), SendStatus::Sent);
    }
    assert_eq!(net.codecs.messages_deflated, 2);
    // Below the threshold nothing is compressed.
    net.fan_out(ids.iter().copied(), crate::Message::Text("short"));
    assert_eq!(net.codecs.messages_deflated, 2);

    let (mut net, ids) = deflate_connections(3, crate::Compression::dedicated());
    net.fan_out(ids.iter().copied(), message);
    assert_eq!(net.codecs.messages_deflated, 3);
}

#[test]
fn a_stale_id_does_not_touch_the_compressor_of_the_connection_in_its_slot() {
    let (mut net, ids) = deflate_connections(1, crate::Compression::dedicated());
    let stale = ConnId {
        generation: ids[0].generation.wrapping_add(1),
        ..ids[0]
    };
    let text = "x".repeat(500);
    assert_eq!(
        net.send_message(stale, true, text.as_bytes()),
        SendStatus::Dropped
    );
    assert_eq!(net.codecs.messages_deflated, 0);
}

#[test]
fn a_broadcast_holds_its_frame_once_however_many_do_not_read() {
    let config = ServerConfig {
        backpressure_threshold: 1 << 20,
        max_backpressure: 1 << 20,
        ..ServerConfig::default()
    };
    let (mut net, ids) = open_connections(20, 0, config);
    let first = ids[0];
    let message = vec![7u8; 64 << 10];
    for _ in 0..10 {
        assert_eq!(
            net.fan_out(ids.iter().copied(), crate::Message::Binary(&message)),
            20
        );
    }
    // 20 connections hold 10 frames each, 13 MB between them, all shared:
    // the server holds 10 frames' worth.
    let frame_len = message.len() + 10;
    assert_eq!(net.conns[first.key as usize].unsent(), 10 * frame_len);
    assert_eq!(net.unsent_held(), 10 * frame_len);
    // Small messages are copied, and counted per connection.
    net.fan_out(ids.iter().copied(), crate::Message::Text("hi"));
    assert_eq!(net.unsent_held(), 10 * frame_len + 20 * 4);
    // A reader drains its share; the frames stay while others hold them.
    peer(&mut net, first).room = usize::MAX;
    net.flush(first.key);
    assert_eq!(peer(&mut net, first).written.len(), 10 * frame_len + 4);
    assert_eq!(net.conns[first.key as usize].unsent(), 0);
    assert_eq!(net.unsent_held(), 10 * frame_len + 19 * 4);
    net.recount_unsent();
    assert_eq!(net.unsent_held(), 10 * frame_len + 19 * 4);
}

#[test]
fn past_the_budget_the_connections_holding_the_most_are_closed_first() {
    let config = ServerConfig {
        backpressure_threshold: 1 << 20,
        max_backpressure: 8 << 20,
        unsent_budget: 1 << 20,
        ..ServerConfig::default()
    };
    let (mut net, ids) = open_connections(4, 0, config);
    // Each holds its own: 100 KB, 200 KB, 300 KB, then 600 KB crosses 1 MiB.
    for (i, id) in ids.iter().enumerate().take(3) {
        let status = net.send_message(*id, false, &vec![1; (i + 1) * 100_000]);
        assert_eq!(status, SendStatus::Sent);
    }
    assert!(net.doomed.is_empty());
    assert_eq!(
        net.send_message(ids[3], false, &vec![1; 600_000]),
        SendStatus::Dropped
    );
    // The largest holder (the one that crossed it) went first; that was
    // enough to get under 7/8 of the budget.
    assert_eq!(net.doomed, [ids[3].key]);
    assert!(net.unsent_held() <= (1 << 20) - (1 << 17));
    assert!(matches!(
        net.pending.pop_front(),
        Some(Pending::Error {
            error: Error::Limit(Limit::UnsentBudget),
            ..
        })
    ));
}
