//! Ratchet's echo server: every message goes back to its sender.
//!
//! ```text
//! cargo run --example echo
//! ```
//!
//! Then, in a browser's console:
//!
//! ```text
//! let ws = new WebSocket('ws://127.0.0.1:8080/echo');
//! ws.onmessage = e => console.log(e.data);
//! ws.onopen = () => ws.send('hello');
//! ```

use pawl::{App, EchoServer};

fn main() -> pawl::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .init()
        .expect("logger");
    // Runs until Ctrl-C or SIGTERM, then closes every connection with 1001.
    App::new("127.0.0.1", 8080)
        .route("/echo", EchoServer, &["*"])
        .run()
}
