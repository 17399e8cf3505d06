//! A connection's input: bytes read from Redis and the decoder that turns
//! them into replies.
//!
//! The buffer is zeroed once when it grows, never per read: reads go into
//! its free tail, replies are taken from its front, and what is left of a
//! reply in progress moves to the front only when the tail runs out. The
//! decoder resumes where it stopped, so a large reply costs its length,
//! whatever the number of reads it arrives in.

use std::io::{self, Read};

use crate::redis::Value;
use crate::redis::resp::{Decoder, ParseError};

/// The least free space a read gets; also the first size of the buffer.
const READ_CHUNK: usize = 64 * 1024;
/// A buffer grown past this for a large reply goes back to
/// [`READ_CHUNK`] once it is empty.
const KEEP_AT_MOST: usize = 1 << 20;

/// Bytes from Redis not yet decoded.
#[derive(Debug, Default)]
pub(super) struct Input {
    /// Initialised bytes; `buf[start..end]` is unconsumed input.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    decoder: Decoder,
}

impl Input {
    /// One read from `stream` into the free tail: what `read` returned.
    pub(super) fn read_from(&mut self, stream: &mut impl Read) -> io::Result<usize> {
        self.make_room();
        let n = stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// The next whole reply, if the input holds one.
    pub(super) fn next_reply(&mut self) -> Result<Option<Value>, ParseError> {
        let Some((value, used)) = self.decoder.decode(&self.buf[self.start..self.end])? else {
            return Ok(None);
        };
        self.start += used;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > KEEP_AT_MOST {
                self.buf = Vec::new();
            }
        }
        Ok(Some(value))
    }

    /// Forgets everything (the connection ended), keeping no memory.
    pub(super) fn clear(&mut self) {
        *self = Input::default();
    }

    /// At least [`READ_CHUNK`] free bytes after `end`: by moving a partial
    /// reply to the front when that frees enough, else by growing (which
    /// zeroes only the new part, once).
    fn make_room(&mut self) {
        if self.buf.len() - self.end >= READ_CHUNK {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK {
            let size = (self.buf.len() * 2).max(self.end + READ_CHUNK);
            self.buf.resize(size, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that hands out its bytes `piece` at a time.
    struct Trickle<'a> {
        data: &'a [u8],
        piece: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.piece.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn replies_come_out_whole_across_reads_and_the_buffer_shrinks_after() {
        let big = vec![b'x'; 3 << 20];
        let mut wire = Vec::new();
        crate::redis::resp::encode_command(&mut wire, &[b"a", &big]);
        wire.extend_from_slice(b"+OK\r\n:1\r\n");
        let mut stream = Trickle {
            data: &wire,
            piece: 10_000,
        };
        let mut input = Input::default();
        let mut got = Vec::new();
        while input.read_from(&mut stream).unwrap() > 0 {
            while let Some(value) = input.next_reply().unwrap() {
                got.push(value);
            }
        }
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[0],
            Value::Array(vec![Value::Bulk(b"a".to_vec()), Value::Bulk(big)])
        );
        assert_eq!(got[1..], [Value::Simple("OK".into()), Value::Int(1)]);
        assert!(input.buf.len() <= KEEP_AT_MOST, "{}", input.buf.len());
    }
}
