//! Issue 12's fan-out scenario against the `pawl` binary on its defaults:
//! 20 `/broadcast` clients that never read while one client sends 64 KiB
//! messages (some 71 MB in all). Each message is held once however many
//! clients have not read it, and a client that stops reading is closed
//! past `--max-backpressure` (4 MiB): the process's peak resident memory
//! stays under 200 MB (it passed 1.3 GB when every client held its own
//! copy up to 64 MiB).

#[path = "../../tests/util/mod.rs"]
mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use util::{Pawl, Raw, client_frame, proc_status_kib, upgrade_request};

#[test]
fn twenty_clients_that_never_read_do_not_multiply_a_broadcast() {
    let pawl = Pawl::start(&[], None);
    let mut idle: Vec<Raw> = Vec::new();
    for _ in 0..20 {
        let mut raw = Raw::connect(pawl.addr);
        raw.send(upgrade_request("/broadcast", &[]).as_bytes());
        assert_eq!(raw.response().0, 101);
        idle.push(raw); // and never read again
    }
    let mut sender = Raw::connect(pawl.addr);
    sender.send(upgrade_request("/broadcast", &[]).as_bytes());
    assert_eq!(sender.response().0, 101);
    // The sender reads its own copies, so it stays a reader.
    let mut reader: TcpStream = sender.stream.try_clone().expect("clone");
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let drain = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n as u64;
        }
        total
    });
    let message = vec![b'x'; 64 << 10];
    let frame = client_frame(true, 2, &message);
    let started = Instant::now();
    let mut sent = 0usize;
    // 1,100 messages of 64 KiB: 72 MB, bounded in time too.
    while sent < 1100 && started.elapsed() < Duration::from_secs(60) {
        sender.stream.write_all(&frame).expect("send");
        sent += 1;
    }
    assert_eq!(sent, 1100, "the sender was held up");
    // Let the loop catch up, then look at the peak.
    std::thread::sleep(Duration::from_millis(500));
    let peak = proc_status_kib(&pawl.child.id().to_string(), "VmHWM") * 1024;
    println!(
        "sent {} MB; pawl's peak RSS {} MB",
        (sent * message.len()) >> 20,
        peak >> 20
    );
    assert!(peak < 200 << 20, "peak RSS {} MB", peak >> 20);
    drop(idle);
    let _ = sender.stream.shutdown(std::net::Shutdown::Both);
    let _ = drain.join();
}
