//! The WebSocket framing layer (RFC 6455 §5): decoding client frames and
//! encoding server frames. No I/O here ("sans-IO"): the connection feeds
//! bytes in and takes bytes out, and so can a fuzzer or a benchmark.

pub mod decode;
pub mod encode;
mod header;
pub mod mask;
pub(crate) mod utf8;

pub use decode::{Decoder, Incoming, Limits, Violation, close_code};
