//! RESP2, the Redis serialization protocol: commands are encoded as arrays
//! of bulk strings, and replies are parsed incrementally from a byte buffer.
//!
//! # Examples
//!
//! ```
//! use pawl::redis::resp::{encode_command, Parser, Value};
//!
//! let mut out = Vec::new();
//! encode_command(&mut out, &[b"GET", b"key"]);
//! assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n");
//!
//! let parser = Parser::default();
//! assert_eq!(parser.parse(b"$5\r\nhel")?, None); // partial: wait for more
//! assert_eq!(parser.parse(b"$5\r\nhello\r\n")?, Some((Value::Bulk(b"hello".to_vec()), 11)));
//! # Ok::<(), pawl::redis::resp::ParseError>(())
//! ```

use std::fmt;

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

/// Why a reply could not be parsed. The connection it came from cannot be
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
    /// A bulk string longer than [`Parser::max_bulk`].
    #[error("bulk string of {0} bytes exceeds the limit")]
    BulkTooLong(i64),
    /// An array longer than [`Parser::max_array`].
    #[error("array of {0} elements exceeds the limit")]
    ArrayTooLong(i64),
    /// Arrays nested deeper than [`Parser::max_depth`].
    #[error("arrays nested too deep")]
    TooDeep,
    /// A simple string, error or number line longer than
    /// [`Parser::max_line`].
    #[error("line too long")]
    LineTooLong,
}

/// An incremental RESP2 parser with limits. It keeps no state between calls:
/// give it the whole unconsumed buffer each time.
#[derive(Debug, Clone, Copy)]
pub struct Parser {
    /// Longest bulk string accepted, in bytes. Default 512 MiB (Redis' own
    /// `proto-max-bulk-len`).
    pub max_bulk: usize,
    /// Most elements in one array. Default 16 Mi.
    pub max_array: usize,
    /// Deepest array nesting. Default 32 (Redis replies nest a few levels).
    pub max_depth: usize,
    /// Longest simple string, error or number line. Default 64 KiB.
    pub max_line: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            max_bulk: 512 << 20,
            max_array: 16 << 20,
            max_depth: 32,
            max_line: 64 << 10,
        }
    }
}

type Step<T> = Result<Option<(T, usize)>, ParseError>;

impl Parser {
    /// Parses one value from the start of `buf`. Returns `Ok(None)` when
    /// `buf` holds only part of a value (read more and call again with the
    /// longer buffer), or the value and how many bytes it took.
    pub fn parse(&self, buf: &[u8]) -> Step<Value> {
        self.value(buf, 0)
    }

    fn value(&self, buf: &[u8], depth: usize) -> Step<Value> {
        let Some(&kind) = buf.first() else {
            return Ok(None);
        };
        if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
            return Err(ParseError::UnknownType(kind));
        }
        let Some((line, mut used)) = self.line(&buf[1..])? else {
            return Ok(None);
        };
        used += 1;
        let value = match kind {
            b'+' => Value::Simple(String::from_utf8_lossy(line).into_owned()),
            b'-' => Value::Error(String::from_utf8_lossy(line).into_owned()),
            b':' => Value::Int(number(line)?),
            b'$' => {
                let len = number(line)?;
                if len < 0 {
                    if len != -1 {
                        return Err(ParseError::BadNumber(len.to_string()));
                    }
                    return Ok(Some((Value::Nil, used)));
                }
                if len as u64 > self.max_bulk as u64 {
                    return Err(ParseError::BulkTooLong(len));
                }
                let len = len as usize;
                let rest = &buf[used..];
                if rest.len() < len + 2 {
                    return Ok(None);
                }
                if &rest[len..len + 2] != b"\r\n" {
                    return Err(ParseError::MissingCrlf);
                }
                return Ok(Some((Value::Bulk(rest[..len].to_vec()), used + len + 2)));
            }
            b'*' => {
                let len = number(line)?;
                if len < 0 {
                    if len != -1 {
                        return Err(ParseError::BadNumber(len.to_string()));
                    }
                    return Ok(Some((Value::Nil, used)));
                }
                if len as u64 > self.max_array as u64 {
                    return Err(ParseError::ArrayTooLong(len));
                }
                if depth >= self.max_depth {
                    return Err(ParseError::TooDeep);
                }
                // Not `with_capacity(len)`: a hostile length must not
                // allocate before the elements actually arrive.
                let mut items = Vec::with_capacity((len as usize).min(1024));
                for _ in 0..len {
                    match self.value(&buf[used..], depth + 1)? {
                        Some((item, n)) => {
                            items.push(item);
                            used += n;
                        }
                        None => return Ok(None),
                    }
                }
                Value::Array(items)
            }
            other => return Err(ParseError::UnknownType(other)),
        };
        Ok(Some((value, used)))
    }

    /// The line before the first CRLF and the bytes it took with its CRLF.
    fn line<'a>(&self, buf: &'a [u8]) -> Step<&'a [u8]> {
        let window = &buf[..buf.len().min(self.max_line + 2)];
        match window.iter().position(|&b| b == b'\n') {
            Some(0) => Err(ParseError::MissingCrlf),
            Some(nl) if buf[nl - 1] == b'\r' => Ok(Some((&buf[..nl - 1], nl + 1))),
            Some(_) => Err(ParseError::MissingCrlf),
            // At most `max_line` bytes, then CRLF: a longer prefix without a
            // newline, or a byte other than CR right after the limit, is over.
            None if buf.len() >= self.max_line + 2 => Err(ParseError::LineTooLong),
            None if buf.len() > self.max_line && buf[self.max_line] != b'\r' => {
                Err(ParseError::LineTooLong)
            }
            None => Ok(None),
        }
    }
}

fn number(line: &[u8]) -> Result<i64, ParseError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| ParseError::BadNumber(String::from_utf8_lossy(line).into_owned()))
}

#[cfg(test)]
mod tests;
