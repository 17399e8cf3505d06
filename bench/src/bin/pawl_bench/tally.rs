//! Checking what a subscriber receives from several publishers: each
//! publisher's messages must come whole and in its own order (publishers
//! interleave freely). Publisher `p` tags its payloads with connection id
//! `SENDER - p` and its own sequence numbers from 0.

use crate::fleet::SENDER;
use crate::wire::Payloads;

/// One subscriber's view: the next sequence number expected from each
/// publisher, and how many messages arrived in all.
pub struct Tally {
    next: Box<[u64]>,
    pub total: u64,
}

impl Tally {
    pub fn new(publishers: usize) -> Tally {
        Tally {
            next: vec![0; publishers.max(1)].into_boxed_slice(),
            total: 0,
        }
    }

    /// How many of publisher `p`'s messages arrived.
    pub fn next_of(&self, p: usize) -> u64 {
        self.next[p]
    }

    /// Checks one message; its publisher and sequence number, or why it is
    /// not the next message of any publisher.
    pub fn check(&mut self, payloads: &Payloads, got: &[u8]) -> Result<(usize, u64), String> {
        let publisher = match crate::wire::conn_of(got) {
            Some(conn) if conn > SENDER - self.next.len() as u32 => (SENDER - conn) as usize,
            // Too short to carry the tag in full: only one publisher can be meant.
            None if self.next.len() == 1 => 0,
            _ => return Err(format!("a message from no publisher ({} bytes)", got.len())),
        };
        let seq = self.next[publisher];
        if !payloads.matches(SENDER - publisher as u32, seq, got) {
            return Err(format!(
                "not message {seq} of publisher {publisher} ({} bytes)",
                got.len()
            ));
        }
        self.next[publisher] += 1;
        self.total += 1;
        Ok((publisher, seq))
    }
}
