//! RESP2, the Redis serialization protocol: commands are encoded as arrays
//! of bulk strings, and replies are decoded incrementally from a byte buffer.
//!
//! Decoding is in two steps. [`Decoder`] first finds where a reply ends,
//! resuming where the previous call stopped (so a large reply arriving in
//! many reads is scanned once, not from its start after every read), and
//! enforces the limits a client needs against a hostile or broken server:
//! bulk and array lengths, nesting depth, line length, all checked before
//! anything is allocated. Only once a whole reply is in the buffer is it
//! decoded, in one pass, by the `redis-protocol` crate (RESP2, sans-IO),
//! whose parser has no limits of its own: its recursion follows the
//! nesting it is given, so it must never see more than the scan allowed.
//!
//! # Examples
//!
//! ```
//! use pawl::redis::resp::{encode_command, Decoder, Value};
//!
//! let mut out = Vec::new();
//! encode_command(&mut out, &[b"GET", b"key"]);
//! assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
//!
//! let mut decoder = Decoder::default();
//! assert_eq!(decoder.decode(b"$5\r\nhel")?, None); // partial: wait for more
//! assert_eq!(decoder.decode(b"$5\r\nhello\r\n")?, Some((Value::Bulk(b"hello".to_vec()), 11)));
//! # Ok::<(), pawl::redis::resp::ParseError>(())
//! ```

use std::fmt;

use redis_protocol::resp2::types::RangeFrame;

mod scan;

use scan::{Limits, Scan};

/// A RESP2 reply.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// A null bulk string (`$-1`) or null array (`*-1`).
    Nil,
    /// An integer (`:42`).
    Int(i64),
    /// A simple string (`+OK`).
    Simple(String),
    /// A bulk string (`$5\r\nhello`): binary-safe.
    Bulk(Vec<u8>),
    /// An array (`*2 ...`).
    Array(Vec<Value>),
    /// An error reply (`-ERR ...`). A top-level error reply reaches command
    /// callbacks as [`RedisError::Server`](super::RedisError::Server); this
    /// variant is for errors nested in arrays (`EXEC`).
    Error(String),
}

impl Value {
    /// The bytes of a bulk or simple string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// A bulk or simple string that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bulk(b) => std::str::from_utf8(b).ok(),
            Value::Simple(s) => Some(s),
            _ => None,
        }
    }

    /// An integer, or a bulk/simple string holding one (`GET` of a counter).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bulk(_) | Value::Simple(_) => self.as_str()?.parse().ok(),
            _ => None,
        }
    }

    /// The elements of an array; `Nil` is an empty array; anything else is
    /// given back as the error.
    pub fn into_array(self) -> Result<Vec<Value>, Value> {
        match self {
            Value::Array(items) => Ok(items),
            Value::Nil => Ok(Vec::new()),
            other => Err(other),
        }
    }

    /// Takes the bytes out of a bulk or simple string.
    pub fn into_bytes(self) -> Option<Vec<u8>> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Simple(s) => Some(s.into_bytes()),
            _ => None,
        }
    }

    /// True for [`Value::Nil`].
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Nil)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("Nil"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Simple(s) => write!(f, "Simple({s:?})"),
            Value::Bulk(b) => write!(f, "Bulk(b\"{}\")", b.escape_ascii()),
            Value::Array(items) => f.debug_tuple("Array").field(items).finish(),
            Value::Error(e) => write!(f, "Error({e:?})"),
        }
    }
}

/// Appends `args` to `out` as a RESP array of bulk strings, the form Redis
/// expects for every command.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.reserve(16 + args.iter().map(|a| a.len() + 16).sum::<usize>());
    write_len(out, b'*', args.len());
    for arg in args {
        write_len(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn write_len(out: &mut Vec<u8>, prefix: u8, len: usize) {
    out.push(prefix);
    // itoa by hand: this runs once per argument on the hot path.
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = len;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

/// Why a reply could not be decoded. The connection it came from cannot be
/// trusted any more and is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A byte that starts no RESP2 type.
    #[error("unknown type byte 0x{0:02x}")]
    UnknownType(u8),
    /// A length or integer that is not a decimal number in range.
    #[error("bad number {0:?}")]
    BadNumber(String),
    /// A line not ended by CRLF, or a bulk string not followed by CRLF.
    #[error("missing CRLF")]
    MissingCrlf,
    /// A bulk string longer than [`Decoder::max_bulk`].
    #[error("bulk string of {0} bytes exceeds the limit")]
    BulkTooLong(i64),
    /// An array longer than [`Decoder::max_array`].
    #[error("array of {0} elements exceeds the limit")]
    ArrayTooLong(i64),
    /// Arrays nested deeper than [`Decoder::max_depth`].
    #[error("arrays nested too deep")]
    TooDeep,
    /// A simple string, error or number line longer than
    /// [`Decoder::max_line`].
    #[error("line too long")]
    LineTooLong,
    /// The decoder refused a reply the scan had accepted (a bug of one of
    /// the two, reported rather than trusted).
    #[error("malformed reply: {0}")]
    Malformed(String),
}

/// An incremental RESP2 decoder with limits.
///
/// Give [`Decoder::decode`] the whole unconsumed buffer each time, the same
/// bytes as before and maybe more at the end: it goes on from where the
/// last call stopped. Once it returns a value, the caller drops that many
/// bytes from the front and the next call starts a new reply. After an
/// error, or to decode an unrelated buffer, call [`Decoder::reset`].
#[derive(Debug, Clone)]
pub struct Decoder {
    /// Longest bulk string accepted, in bytes. Default 512 MiB (Redis' own
    /// `proto-max-bulk-len`).
    pub max_bulk: usize,
    /// Most elements in one array. Default 16 Mi.
    pub max_array: usize,
    /// Deepest array nesting. Default 32 (Redis replies nest a few levels).
    pub max_depth: usize,
    /// Longest simple string, error or number line. Default 64 KiB.
    pub max_line: usize,
    scan: Scan,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            max_bulk: 512 << 20,
            max_array: 16 << 20,
            max_depth: 32,
            max_line: 64 << 10,
            scan: Scan::default(),
        }
    }
}

type Step<T> = Result<Option<(T, usize)>, ParseError>;

impl Decoder {
    /// Decodes one reply from the start of `buf`. Returns `Ok(None)` when
    /// `buf` holds only part of a reply (read more and call again with the
    /// longer buffer), or the reply and how many bytes it took.
    pub fn decode(&mut self, buf: &[u8]) -> Step<Value> {
        let limits = Limits {
            max_bulk: self.max_bulk,
            max_array: self.max_array,
            max_depth: self.max_depth,
            max_line: self.max_line,
        };
        let end = match self.scan.advance(buf, &limits) {
            Ok(Some(end)) => end,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.reset();
                return Err(e);
            }
        };
        self.reset();
        let whole = &buf[..end];
        match redis_protocol::resp2::decode::decode_range(whole) {
            Ok(Some((frame, used))) if used == end => Ok(Some((value(whole, frame), end))),
            Ok(other) => Err(ParseError::Malformed(format!(
                "a reply of {end} bytes decoded as {:?} bytes",
                other.map(|(_, used)| used)
            ))),
            Err(e) => Err(ParseError::Malformed(e.to_string())),
        }
    }

    /// Forgets a reply in progress.
    pub fn reset(&mut self) {
        self.scan.reset();
    }
}

/// Decodes one reply from the start of `buf` with the default limits, as a
/// fresh [`Decoder`] would: the entry point for fuzzing (a prefix of a
/// reply must decode to `Ok(None)`, never to a value or an error).
pub fn decode(buf: &[u8]) -> Step<Value> {
    Decoder::default().decode(buf)
}

/// The crate's frame, its ranges read from `buf`. Recursion is bounded by
/// [`Decoder::max_depth`], which the scan enforced.
fn value(buf: &[u8], frame: RangeFrame) -> Value {
    let text =
        |(start, end): (usize, usize)| String::from_utf8_lossy(&buf[start..end]).into_owned();
    match frame {
        RangeFrame::SimpleString(range) => Value::Simple(text(range)),
        RangeFrame::Error(range) => Value::Error(text(range)),
        RangeFrame::Integer(i) => Value::Int(i),
        RangeFrame::BulkString((start, end)) => Value::Bulk(buf[start..end].to_vec()),
        RangeFrame::Array(items) => {
            Value::Array(items.into_iter().map(|item| value(buf, item)).collect())
        }
        RangeFrame::Null => Value::Nil,
    }
}

#[cfg(test)]
mod tests;
