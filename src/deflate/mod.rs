//! permessage-deflate (RFC 7692): which mode a route compresses in, the
//! negotiation of the extension's parameters in the upgrade handshake
//! ([`offer`]), and the compressor and decompressor of one message
//! ([`codec`]).
//!
//! Two ways to hold the compression state, as uWebSockets has them:
//!
//! - **shared**: neither side keeps its LZ77 window between messages (the
//!   response always carries `server_no_context_takeover` and
//!   `client_no_context_takeover`), so one compressor and one decompressor
//!   serve every connection of the loop, a message to many connections is
//!   compressed once, and an idle connection holds no compression state at
//!   all;
//! - **dedicated**: each connection keeps its own windows (context
//!   takeover), which compresses small, similar messages much better and
//!   costs memory per connection from its first compressed message on.
//!
//! The DEFLATE streams themselves come from `zlib-rs`, the memory-safe
//! zlib that flate2 uses as its fast backend: used directly, it lets the
//! dedicated mode choose zlib's `memLevel` (it sizes the pending buffer;
//! zlib-rs's hash table is 128 KiB whatever it is, see
//! [`Compression::dedicated`]), which flate2 does not expose, and
//! writes into uninitialised output without zeroing it first.

pub(crate) mod codec;
pub(crate) mod codecs;
pub(crate) mod offer;

/// How a WebSocket route answers a client that offers permessage-deflate
/// (every browser does).
///
/// ```
/// use pawl::{Compression, ServerConfig};
///
/// let config = ServerConfig::default().compression(Compression::Shared);
/// assert_eq!("dedicated".parse(), Ok(Compression::dedicated()));
/// assert_eq!("dedicated:10".parse(), Ok(Compression::Dedicated { window_bits: 10 }));
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Decline the extension: messages go uncompressed.
    #[default]
    Off,
    /// No context takeover in either direction: one compressor and one
    /// decompressor for the whole loop, nothing per connection, and a
    /// message sent to many connections is compressed once.
    Shared,
    /// Context takeover with a compressor (and, unless the client declines
    /// it, a decompressor) per connection, created at its first compressed
    /// message; `window_bits` (9 to 15) sizes the compressor's window, and
    /// the client's when the client lets the server choose it.
    Dedicated {
        /// Base-2 logarithm of the LZ77 window, 9 (512 B) to 15 (32 KiB).
        window_bits: u8,
    },
}

impl Compression {
    /// The dedicated mode with its default window, 2^12 = 4 KiB, for most
    /// of the gain on chat-sized messages. Measured (the README's
    /// compression table): about 180 KB of RSS per connection once it has
    /// sent and been sent compressed messages, against some 380 KB at
    /// zlib's defaults; zlib-rs keeps a 128 KiB hash table whatever the
    /// window and `memLevel`, and its decompressor takes some 47 KB.
    pub const fn dedicated() -> Compression {
        Compression::Dedicated {
            window_bits: DEFAULT_DEDICATED_WINDOW_BITS,
        }
    }

    /// False for [`Compression::Off`].
    pub fn is_on(self) -> bool {
        self != Compression::Off
    }
}

/// The dedicated mode's default window: see [`Compression::dedicated`].
pub const DEFAULT_DEDICATED_WINDOW_BITS: u8 = 12;

/// The largest window RFC 7692 allows (and zlib supports).
pub(crate) const MAX_WINDOW_BITS: u8 = 15;

/// The smallest window zlib's compressor supports: it turns a request for 8
/// into 9, which a peer that asked for 8 could not inflate.
pub(crate) const MIN_DEFLATE_WINDOW_BITS: u8 = 9;

/// Why a string is not a [`Compression`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCompression(String);

impl std::fmt::Display for InvalidCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid compression mode {:?}: expected off, shared, dedicated or dedicated:BITS (9 to 15)",
            self.0
        )
    }
}

impl std::error::Error for InvalidCompression {}

impl std::str::FromStr for Compression {
    type Err = InvalidCompression;

    /// `off`, `shared`, `dedicated` or `dedicated:BITS`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidCompression(s.to_owned());
        match s {
            "off" => Ok(Compression::Off),
            "shared" => Ok(Compression::Shared),
            "dedicated" => Ok(Compression::dedicated()),
            _ => {
                let bits = s.strip_prefix("dedicated:").ok_or_else(invalid)?;
                match bits.parse::<u8>() {
                    Ok(window_bits @ MIN_DEFLATE_WINDOW_BITS..=MAX_WINDOW_BITS) => {
                        Ok(Compression::Dedicated { window_bits })
                    }
                    _ => Err(invalid()),
                }
            }
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::Off => f.write_str("off"),
            Compression::Shared => f.write_str("shared"),
            Compression::Dedicated { window_bits } => write!(f, "dedicated:{window_bits}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print_back() {
        for mode in [
            Compression::Off,
            Compression::Shared,
            Compression::dedicated(),
            Compression::Dedicated { window_bits: 9 },
            Compression::Dedicated { window_bits: 15 },
        ] {
            assert_eq!(mode.to_string().parse(), Ok(mode));
        }
        for bad in [
            "",
            "on",
            "Shared",
            "dedicated:8",
            "dedicated:16",
            "dedicated:x",
        ] {
            assert!(bad.parse::<Compression>().is_err(), "{bad}");
        }
    }
}
