//! The WebSocket framing layer (RFC 6455 §5): decoding client frames and
//! encoding server frames. No I/O here; the connection feeds bytes in and
//! takes bytes out.

pub(crate) mod decode;
pub(crate) mod encode;
pub mod mask;

pub use decode::{Violation, close_code};
