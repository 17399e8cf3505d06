//! Topics across processes and machines: Redis pub/sub under the topics of
//! one server. A node subscribes to a topic's channel only while it has a
//! local subscriber; a publish goes to the local subscribers at once and to
//! Redis for the other nodes, which deliver it to theirs.
//!
//! Delivery across nodes is at most once: Redis pub/sub keeps nothing, and
//! while Redis is unreachable a publish reaches only this node (the loss is
//! counted and logged, once per outage and with the count when Redis is
//! back). Order per topic and publisher is kept: one connection publishes
//! in order, and Redis delivers one channel in order.

use std::cell::Cell;
use std::fmt;
use std::rc::Rc;

use log::{info, warn};

use crate::message::Message;
use crate::reactor::LoopHandle;
use crate::redis::{RedisClient, RedisConfig, RedisError, RedisSubscriber, RedisUrl};
use crate::stats::RedisStats;

/// Delivers a message from another node to this node's subscribers.
pub(crate) type Deliver = Rc<dyn Fn(&mut LoopHandle, &str, Message<'_>)>;

/// Tells the server that the link is up (both connections ready).
pub(crate) type Connected = Rc<dyn Fn(&mut LoopHandle)>;

/// The channel of a topic.
fn channel(topic: &str) -> String {
    format!("pawl:topic:{topic}")
}

/// `url` for the log: `host:port` only, so a password never gets there.
fn shown(url: &str) -> String {
    RedisUrl::parse(url).map_or_else(|_| "?".to_owned(), |u| format!("{}:{}", u.host, u.port))
}

/// A node id: 16 lowercase hex digits, from the kernel's randomness.
fn node_id() -> [u8; 16] {
    use std::io::Read;

    let mut random = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut random));
    if read.is_err() {
        // Unique enough within one machine's processes.
        random = (u64::from(std::process::id()) << 32
            | u64::from(
                std::time::UNIX_EPOCH
                    .elapsed()
                    .map_or(0, |d| d.subsec_nanos()),
            ))
        .to_le_bytes();
    }
    let mut id = [0u8; 16];
    for (pair, byte) in id.chunks_mut(2).zip(random) {
        pair[0] = b"0123456789abcdef"[usize::from(byte >> 4)];
        pair[1] = b"0123456789abcdef"[usize::from(byte & 15)];
    }
    id
}

/// A message as it crosses Redis: its kind (`t` text, `b` binary), the
/// node that published it, its bytes.
fn encode(node: &[u8; 16], message: Message<'_>) -> Vec<u8> {
    let bytes = message.as_bytes();
    let mut out = Vec::with_capacity(17 + bytes.len());
    out.push(if message.is_text() { b't' } else { b'b' });
    out.extend_from_slice(node);
    out.extend_from_slice(bytes);
    out
}

/// The publishing node and the message, or `None` for a malformed payload.
fn decode(payload: &[u8]) -> Option<(&[u8], Message<'_>)> {
    let (&kind, rest) = payload.split_first()?;
    let (node, bytes) = rest.split_at_checked(16)?;
    let message = match kind {
        b't' => Message::Text(std::str::from_utf8(bytes).ok()?),
        b'b' => Message::Binary(bytes),
        _ => return None,
    };
    Some((node, message))
}

/// A server's link to the other nodes sharing a Redis.
pub(crate) struct Broker {
    node: [u8; 16],
    client: RedisClient,
    subscriber: RedisSubscriber,
    deliver: Deliver,
    /// Publishes that reached only this node during the current outage.
    lost: Rc<Cell<u64>>,
    /// Publishes that reached only this node since the broker started.
    lost_total: Cell<u64>,
}

impl Broker {
    /// Connects to Redis on the loop (never blocking: it goes on
    /// connecting in the background); `deliver` hands other nodes'
    /// messages to this node's subscribers, and `connected` is called each
    /// time both connections are ready, the first time and after an outage.
    pub(crate) fn connect(
        lp: &mut LoopHandle,
        url: &str,
        deliver: Deliver,
        connected: Connected,
    ) -> Result<Broker, RedisError> {
        // A publish is not idempotent: one whose reply was lost is not sent
        // again (at most once).
        let config = RedisConfig::default();
        let client = RedisClient::connect(lp, url, config.clone())?;
        let subscriber = RedisSubscriber::connect(lp, url, config)?;
        let lost = Rc::new(Cell::new(0));
        let counted = Rc::clone(&lost);
        client.on_connect(move |_| {
            let lost = counted.replace(0);
            if lost > 0 {
                warn!("topics: redis is back; {lost} publishes reached only this node meanwhile");
            }
        });
        // Each connection comes back on its own: whichever is second makes
        // the link whole. (Both may see the other ready, when one dropped
        // and came back while the other stayed: then the call is once, by
        // the one that came back.)
        let (publisher, listener) = (client.clone(), subscriber.clone());
        let tell = Rc::clone(&connected);
        client.on_connect(move |lp| {
            if listener.is_connected() {
                tell(lp);
            }
        });
        subscriber.on_connect(move |lp| {
            if publisher.is_connected() {
                connected(lp);
            }
        });
        let node = node_id();
        info!(
            "topics across nodes through redis at {}; this node is {}",
            shown(url),
            String::from_utf8_lossy(&node)
        );
        Ok(Broker {
            node,
            client,
            subscriber,
            deliver,
            lost,
            lost_total: Cell::new(0),
        })
    }

    /// The state of its Redis link: up while both connections are.
    pub(crate) fn stats(&self) -> RedisStats {
        RedisStats::new(self.is_connected(), self.client.pending())
    }

    /// True while both connections are ready: a publish reaches the other
    /// nodes, and theirs reach this one.
    pub(crate) fn is_connected(&self) -> bool {
        self.client.is_connected() && self.subscriber.is_connected()
    }

    /// This node has its first subscriber to `topic`: listen to its channel.
    pub(crate) fn subscribe(&self, topic: &str) {
        let (node, deliver, name) = (self.node, Rc::clone(&self.deliver), topic.to_owned());
        self.subscriber
            .subscribe(channel(topic).as_bytes(), move |lp, _, payload| {
                match decode(payload) {
                    // This node delivered its own publishes already.
                    Some((from, _)) if from == node => {}
                    Some((_, message)) => deliver(lp, &name, message),
                    None => warn!("topics: a malformed message on topic {name:?}, dropped"),
                }
            });
    }

    /// This node's last subscriber to `topic` left: stop listening.
    pub(crate) fn unsubscribe(&self, topic: &str) {
        self.subscriber.unsubscribe(channel(topic).as_bytes());
    }

    /// Sends a message published here to the other nodes.
    pub(crate) fn publish(&self, topic: &str, message: Message<'_>) {
        if !self.client.is_connected() {
            if self.lost.get() == 0 {
                warn!(
                    "topics: redis is unreachable; publishes reach only this node until it is back"
                );
            }
            self.lost.set(self.lost.get() + 1);
            self.lost_total.set(self.lost_total.get() + 1);
            return;
        }
        let payload = encode(&self.node, message);
        self.client
            .send(&[b"PUBLISH", channel(topic).as_bytes(), &payload]);
    }
}

impl Broker {
    /// Publishes that reached only this node, since the broker started,
    /// because Redis was unreachable when they were made.
    pub(crate) fn lost(&self) -> u64 {
        self.lost_total.get()
    }
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("node", &String::from_utf8_lossy(&self.node))
            .field("connected", &self.client.is_connected())
            .field("lost", &self.lost_total.get())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_redis_with_their_kind_and_node() {
        let node = node_id();
        assert!(node.iter().all(u8::is_ascii_hexdigit));
        assert_ne!(node, node_id(), "two nodes, two ids");
        for message in [
            Message::Text("héllo"),
            Message::Binary(&[0, 255, 1]),
            Message::Text(""),
        ] {
            let payload = encode(&node, message);
            assert_eq!(decode(&payload), Some((&node[..], message)));
        }
        assert_eq!(decode(b""), None);
        assert_eq!(decode(b"t0123"), None, "too short for a node id");
        assert_eq!(decode(b"x0123456789abcdefdata"), None, "unknown kind");
        assert_eq!(
            decode(b"t0123456789abcdef\xff"),
            None,
            "text that is not UTF-8"
        );
    }
}
