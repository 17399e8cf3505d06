//! permessage-deflate (RFC 7692) over real sockets, with the client's side
//! written with flate2 (miniz_oxide, an implementation independent of the
//! server's zlib-rs): negotiation, compressed echo both ways, fragments,
//! the RSV1 rules, a decompression bomb, invalid UTF-8 inside compressed
//! text, and the dedicated mode's context takeover.

mod util;

use std::io::Read;

use flate2::{Compress, Compression as Level, Decompress, FlushCompress, FlushDecompress};
use pawl::{Compression, EchoServer, ServerConfig};
use util::{Raw, TestServer, app, client_frame, close_code_of, upgrade_request};

const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];
const CHROME_OFFER: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits";
const SHARED_RESPONSE: &str = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n";

/// A client's compressor: keeps its window unless reset.
fn compress(z: &mut Compress, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 64);
    let mut pos = 0;
    loop {
        out.reserve(4096);
        let before_in = z.total_in();
        z.compress_vec(&payload[pos..], &mut out, FlushCompress::Sync)
            .expect("compress");
        pos += (z.total_in() - before_in) as usize;
        // A sync flush is done when it leaves output space unused.
        if pos == payload.len() && out.len() < out.capacity() {
            break;
        }
    }
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - TAIL.len());
    out
}

fn fresh_compress(payload: &[u8]) -> Vec<u8> {
    compress(&mut Compress::new(Level::default(), false), payload)
}

/// A client's decompressor.
fn inflate(z: &mut Decompress, payload: &[u8]) -> Vec<u8> {
    let input = [payload, &TAIL].concat();
    let mut out = Vec::with_capacity(payload.len() * 4 + 1024);
    let mut pos = 0;
    loop {
        out.reserve(out.len().max(4096));
        let before_in = z.total_in();
        z.decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)
            .expect("valid deflate from the server");
        pos += (z.total_in() - before_in) as usize;
        if pos == input.len() && out.len() < out.capacity() {
            return out;
        }
    }
}

fn server(mode: Compression) -> TestServer {
    server_with(ServerConfig::default().compression(mode))
}

fn server_with(config: ServerConfig) -> TestServer {
    TestServer::start(move || {
        app()
            .config(config.max_message_size(1 << 20))
            .route("/echo", EchoServer, &["*"])
    })
}

/// Compression streams the server holds now, read on its loop.
fn compression_streams(server: &TestServer) -> u64 {
    let (tx, rx) = std::sync::mpsc::channel();
    server
        .server
        .run(move |ctx| {
            let _ = tx.send(ctx.stats().compression_streams);
        })
        .expect("schedule");
    rx.recv_timeout(util::TIMEOUT).expect("stats from the loop")
}

/// Upgrades with `offer` lines; returns the socket and the response head.
fn upgrade(server: &TestServer, offer: &[&str]) -> (Raw, String) {
    let mut raw = Raw::connect(server.addr);
    raw.send(upgrade_request("/echo", offer).as_bytes());
    let (status, head) = raw.response();
    assert_eq!(status, 101, "{head}");
    (raw, head)
}

/// One whole server frame: (first byte, payload).
fn read_frame(raw: &mut Raw) -> (u8, Vec<u8>) {
    let mut head = [0u8; 2];
    raw.stream.read_exact(&mut head).expect("frame head");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => {
            let mut b = [0u8; 2];
            raw.stream.read_exact(&mut b).expect("length");
            u16::from_be_bytes(b) as usize
        }
        127 => {
            let mut b = [0u8; 8];
            raw.stream.read_exact(&mut b).expect("length");
            u64::from_be_bytes(b) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0; len];
    raw.stream.read_exact(&mut payload).expect("payload");
    (head[0], payload)
}

/// A masked client frame with RSV1 as given.
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = client_frame(first & 0x80 != 0, first & 0x0f, payload);
    bytes[0] |= first & 0x70;
    bytes
}

fn json(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0u32;
    while out.len() < len {
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.extend_from_slice(
            format!(
                "{{\"type\":\"message\",\"id\":{},\"from\":\"user{}\",\"text\":\"hi there\"}}",
                i % 1000,
                i % 7
            )
            .as_bytes(),
        );
    }
    out.truncate(len);
    out
}

#[test]
fn a_browser_offer_is_agreed_and_echo_is_compressed_both_ways() {
    let server = server(Compression::Shared);
    let (mut raw, head) = upgrade(&server, &[CHROME_OFFER]);
    assert!(head.contains(SHARED_RESPONSE), "{head}");

    let text = json(2000);
    raw.send(&frame(0xc1, &fresh_compress(&text)));
    let (first, payload) = read_frame(&mut raw);
    assert_eq!(first, 0xc1, "a compressed text frame");
    assert!(payload.len() < text.len() / 2, "{}", payload.len());
    // No context takeover: a fresh decompressor per message must do.
    assert_eq!(inflate(&mut Decompress::new(false), &payload), text);

    // Every size class of the shared compressors.
    for len in [200, 512, 513, 4096, 4097, 100_000] {
        let text = json(len);
        raw.send(&frame(0xc1, &fresh_compress(&text)));
        let (first, payload) = read_frame(&mut raw);
        assert_eq!(first, 0xc1, "{len}");
        assert_eq!(
            inflate(&mut Decompress::new(false), &payload),
            text,
            "{len}"
        );
    }

    // Uncompressed messages are accepted; short replies go uncompressed.
    raw.send(&frame(0x81, b"hi"));
    assert_eq!(read_frame(&mut raw), (0x81, b"hi".to_vec()));
    raw.send(&frame(0xc2, &fresh_compress(&[1, 2, 3])));
    assert_eq!(read_frame(&mut raw), (0x82, vec![1, 2, 3]));
    // An empty compressed message.
    raw.send(&frame(0xc1, &fresh_compress(b"")));
    assert_eq!(read_frame(&mut raw), (0x81, Vec::new()));
}

#[test]
fn off_declines_and_rsv1_then_fails_with_1002() {
    let server = server(Compression::Off);
    let (mut raw, head) = upgrade(&server, &[CHROME_OFFER]);
    assert!(!head.to_ascii_lowercase().contains("extensions"), "{head}");
    raw.send(&frame(0xc1, &fresh_compress(b"hello")));
    let (first, payload) = read_frame(&mut raw);
    assert_eq!((first & 0x0f, close_code_of(&payload)), (8, 1002));
}

#[test]
fn fragments_carry_rsv1_on_the_first_frame_only() {
    let server = server(Compression::Shared);
    let (mut raw, _) = upgrade(&server, &[CHROME_OFFER]);
    let text = json(3000);
    let compressed = fresh_compress(&text);
    let third = compressed.len() / 3;
    raw.send(&frame(0x41, &compressed[..third]));
    raw.send(&frame(0x89, b"ping"));
    raw.send(&frame(0x00, &compressed[third..2 * third]));
    raw.send(&frame(0x80, &compressed[2 * third..]));
    assert_eq!(read_frame(&mut raw), (0x8a, b"ping".to_vec()));
    let (first, payload) = read_frame(&mut raw);
    assert_eq!(first, 0xc1);
    assert_eq!(inflate(&mut Decompress::new(false), &payload), text);

    // RSV1 on a continuation: 1002.
    raw.send(&frame(0x41, &compressed[..third]));
    raw.send(&frame(0xc0, &compressed[third..]));
    let (first, payload) = read_frame(&mut raw);
    assert_eq!((first & 0x0f, close_code_of(&payload)), (8, 1002));
}

#[test]
fn invalid_utf8_inside_compressed_text_is_1007() {
    let server = server(Compression::Shared);
    let (mut raw, _) = upgrade(&server, &[CHROME_OFFER]);
    raw.send(&frame(0xc1, &fresh_compress(b"ok \xff\xfe not utf-8")));
    let (first, payload) = read_frame(&mut raw);
    assert_eq!((first & 0x0f, close_code_of(&payload)), (8, 1007));
}

#[test]
fn a_decompression_bomb_is_closed_with_1009_and_the_loop_serves_the_others() {
    let server = server(Compression::Shared);
    let (mut bystander, _) = upgrade(&server, &[CHROME_OFFER]);
    let (mut attacker, _) = upgrade(&server, &[CHROME_OFFER]);
    // 20 MB of zeros in about 20 KB, against a 1 MiB message limit.
    let bomb = fresh_compress(&vec![0u8; 20 << 20]);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    attacker.send(&frame(0xc2, &bomb));
    let (first, payload) = read_frame(&mut attacker);
    assert_eq!((first & 0x0f, close_code_of(&payload)), (8, 1009));
    bystander.send(&frame(0x81, b"still here"));
    assert_eq!(read_frame(&mut bystander), (0x81, b"still here".to_vec()));
    // Exactly at the limit inflates fine.
    let limit = fresh_compress(&vec![b'a'; 1 << 20]);
    bystander.send(&frame(0xc2, &limit));
    let (first, payload) = read_frame(&mut bystander);
    assert_eq!(first, 0xc2);
    assert_eq!(
        inflate(&mut Decompress::new(false), &payload).len(),
        1 << 20
    );
}

#[test]
fn dedicated_mode_keeps_both_windows_between_messages() {
    // A 2 s handshake timeout makes the sweep, which frees the compression
    // streams of a connection idle for a whole interval, run every 500 ms:
    // soon, but not between two lines of this test.
    let config = ServerConfig::default()
        .compression(Compression::dedicated())
        .handshake_timeout(std::time::Duration::from_secs(2));
    let server = server_with(config);
    let (mut raw, head) = upgrade(&server, &[CHROME_OFFER]);
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=12; client_max_window_bits=12\r\n"),
        "{head}"
    );
    // The client keeps its window too (its messages stay within 4 KiB of
    // history, the window it was given).
    let mut ours = Compress::new(Level::default(), false);
    let mut theirs = Decompress::new(false);
    let text = json(300);
    let mut sizes = Vec::new();
    for round in 0..5 {
        if round == 3 {
            // Idle for a sweep: the server frees its compressor and
            // decompressor, keeping only the windows' bytes.
            assert_eq!(compression_streams(&server), 2);
            util::wait_for("the idle connection's streams freed", || {
                (compression_streams(&server) == 0).then_some(())
            });
        }
        raw.send(&frame(0xc1, &compress(&mut ours, &text)));
        let (first, payload) = read_frame(&mut raw);
        assert_eq!(first, 0xc1);
        sizes.push(payload.len());
        assert_eq!(inflate(&mut theirs, &payload), text);
    }
    // The second time the whole message is a back-reference, and so it is
    // after the rest: both sides' streams went on from the same history.
    assert!(sizes[1] * 4 < sizes[0], "{sizes:?}");
    assert!(sizes[3] * 4 < sizes[0], "{sizes:?}");
    assert_eq!(compression_streams(&server), 2);
}

#[test]
fn a_server_window_of_eight_is_accepted_and_answered_uncompressed() {
    let server = server(Compression::Shared);
    let (mut raw, head) = upgrade(
        &server,
        &["Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8"],
    );
    assert!(head.contains("server_max_window_bits=8"), "{head}");
    let text = json(1000);
    raw.send(&frame(0xc1, &fresh_compress(&text)));
    assert_eq!(read_frame(&mut raw), (0x81, text));
}

#[test]
fn many_offers_in_several_headers_take_the_first_acceptable() {
    let server = server(Compression::Shared);
    let (_, head) = upgrade(
        &server,
        &[
            "Sec-WebSocket-Extensions: permessage-deflate; bogus, x-webkit-deflate-frame",
            "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10, permessage-deflate",
        ],
    );
    assert!(
        head.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10\r\n"),
        "{head}"
    );
    // Nothing acceptable: declined, the upgrade still succeeds.
    let (_, head) = upgrade(
        &server,
        &["Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=16"],
    );
    assert!(!head.to_ascii_lowercase().contains("extensions"), "{head}");
}

/// Python's `websockets` (an independent client that offers deflate by
/// default) echoes text and binary of 0 B, 125 B, 64 KiB and 1 MiB.
#[test]
fn python_websockets_echoes_through_deflate() {
    let python = "/usr/bin/python3";
    let probe = std::process::Command::new(python)
        .args(["-c", "import websockets"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "needs Debian's python3-websockets (scripts/test installs it)"
    );
    let server = TestServer::start(|| {
        app()
            .config(ServerConfig::default().compression(Compression::Shared))
            .route("/echo", EchoServer, &["*"])
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/deflate_client.py"
    );
    let output = std::process::Command::new(python)
        .args([script, &server.url("/echo")])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("extensions: permessage-deflate"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("echoed").count(), 8, "{stdout}");
}
