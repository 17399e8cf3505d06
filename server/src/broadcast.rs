//! The seed's `MyChat` on topics: every message goes to every client of
//! the same topic (`/broadcast?topic=NAME`, default `all`), the sender too,
//! on every pawl process sharing `--redis`. The chat's topics (`chat:...`)
//! are not open to it.

use log::warn;
use pawl::{CloseCode, Component, ConnId, Context, Message};

/// The topic of a connection that names none.
pub const DEFAULT_TOPIC: &str = "all";

/// Ratchet's chat example, on topics. It keeps no set of clients: each
/// connection's session is its topic, and the server knows the topic's
/// subscribers (here and, with a broker, on the other nodes).
#[derive(Debug, Default)]
pub struct Broadcast;

impl Component for Broadcast {
    /// The connection's topic.
    type Session = Box<str>;

    fn on_open(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId) -> Box<str> {
        let topic: Box<str> = ctx
            .request(conn)
            .and_then(|r| r.query_param("topic"))
            .filter(|t| !t.is_empty())
            .map_or_else(|| DEFAULT_TOPIC.into(), |t| t.as_ref().into());
        // The chat's rooms and DMs are topics on the same server: a client
        // naming one would read DMs and speak as anyone.
        if pawl_chat::is_chat_topic(&topic) {
            warn!("{conn}: /broadcast refused the chat's topic {topic:?}");
            ctx.close(conn, CloseCode::POLICY, "reserved topic");
            return topic;
        }
        ctx.subscribe(conn, &topic);
        topic
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        _: ConnId,
        topic: &mut Box<str>,
        message: Message<'_>,
    ) {
        if !pawl_chat::is_chat_topic(topic) {
            ctx.publish(topic, message);
        }
    }
}
