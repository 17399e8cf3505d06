//! Where a reply ends: a scan that resumes where it stopped and checks the
//! decoder's limits before anything is allocated.
//!
//! The scan reads each header line once and skips bulk payloads by their
//! length, so a reply that arrives in many reads costs its length in work,
//! not its length times the number of reads. Its state is a position in the
//! reply and one counter per open array: no recursion, so no nesting can
//! overflow the stack.

use super::ParseError;

/// The decoder's limits, copied for one scan step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) max_bulk: usize,
    pub(super) max_array: usize,
    pub(super) max_depth: usize,
    pub(super) max_line: usize,
}

/// How far the current reply has been checked.
#[derive(Debug, Clone, Default)]
pub(super) struct Scan {
    /// Bytes of the reply checked: whole headers and bulk payloads.
    pos: usize,
    /// Bytes after `pos` already searched for the end of a header line.
    searched: usize,
    /// The payload length of the bulk string whose header was read.
    bulk: Option<usize>,
    /// Elements still to come in each open array, the innermost last.
    open: Vec<u64>,
}

impl Scan {
    pub(super) fn reset(&mut self) {
        self.pos = 0;
        self.searched = 0;
        self.bulk = None;
        self.open.clear();
    }

    /// Goes on over `buf` (the bytes of the same reply as before, maybe
    /// more of them): the length of the reply once it is all in `buf`.
    pub(super) fn advance(
        &mut self,
        buf: &[u8],
        limits: &Limits,
    ) -> Result<Option<usize>, ParseError> {
        loop {
            if let Some(len) = self.bulk {
                // `len` is at most `max_bulk`, so this cannot overflow.
                let end = self.pos + len + 2;
                if buf.len() < end {
                    return Ok(None);
                }
                if &buf[end - 2..end] != b"\r\n" {
                    return Err(ParseError::MissingCrlf);
                }
                self.pos = end;
                self.bulk = None;
                if self.element_done() {
                    return Ok(Some(self.pos));
                }
                continue;
            }
            let Some(&kind) = buf.get(self.pos) else {
                return Ok(None);
            };
            if !matches!(kind, b'+' | b'-' | b':' | b'$' | b'*') {
                return Err(ParseError::UnknownType(kind));
            }
            let Some((line, used)) = self.line(&buf[self.pos + 1..], limits.max_line)? else {
                return Ok(None);
            };
            let mut opened = false;
            match kind {
                b':' => {
                    number(line)?;
                }
                b'$' => match number(line)? {
                    -1 => {}
                    len if len < 0 => return Err(ParseError::BadNumber(len.to_string())),
                    len if len as u64 > limits.max_bulk as u64 => {
                        return Err(ParseError::BulkTooLong(len));
                    }
                    len => self.bulk = Some(len as usize),
                },
                b'*' => match number(line)? {
                    -1 | 0 => {}
                    len if len < 0 => return Err(ParseError::BadNumber(len.to_string())),
                    len if len as u64 > limits.max_array as u64 => {
                        return Err(ParseError::ArrayTooLong(len));
                    }
                    _ if self.open.len() >= limits.max_depth => return Err(ParseError::TooDeep),
                    len => {
                        self.open.push(len as u64);
                        opened = true;
                    }
                },
                _ => {}
            }
            self.pos += 1 + used;
            self.searched = 0;
            if self.bulk.is_none() && !opened && self.element_done() {
                return Ok(Some(self.pos));
            }
        }
    }

    /// One element is complete: counts it in its array, and closes every
    /// array it completes. True when that completes the reply.
    fn element_done(&mut self) -> bool {
        while let Some(left) = self.open.last_mut() {
            *left -= 1;
            if *left > 0 {
                return false;
            }
            self.open.pop();
        }
        true
    }

    /// The header line at the start of `buf` (after its type byte) and the
    /// bytes it took with its CRLF, searching only bytes not searched
    /// before.
    fn line<'a>(
        &mut self,
        buf: &'a [u8],
        max_line: usize,
    ) -> Result<Option<(&'a [u8], usize)>, ParseError> {
        let window = &buf[..buf.len().min(max_line + 2)];
        let from = self.searched.min(window.len());
        match window[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|at| from + at)
        {
            Some(0) => Err(ParseError::MissingCrlf),
            Some(nl) if buf[nl - 1] == b'\r' => Ok(Some((&buf[..nl - 1], nl + 1))),
            Some(_) => Err(ParseError::MissingCrlf),
            // At most `max_line` bytes, then CRLF: a longer prefix without a
            // newline, or a byte other than CR right after the limit, is over.
            None if buf.len() >= max_line + 2 => Err(ParseError::LineTooLong),
            None if buf.len() > max_line && buf[max_line] != b'\r' => Err(ParseError::LineTooLong),
            None => {
                self.searched = window.len();
                Ok(None)
            }
        }
    }
}

fn number(line: &[u8]) -> Result<i64, ParseError> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| ParseError::BadNumber(String::from_utf8_lossy(line).into_owned()))
}
