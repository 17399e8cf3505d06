//! The connection machinery shared by the client and the subscriber.
//! (Skeleton: implementation follows.)

use std::fmt;
use std::rc::Rc;

use super::subscriber::MessageCallback;
use super::{RedisConfig, RedisError, RedisUrl, Value};
use crate::reactor::Reactor;

pub(crate) type Callback = Box<dyn FnOnce(&mut Reactor, Result<Value, RedisError>)>;

pub(crate) enum ReplyTo {
    Callback(Callback),
    Log,
}

pub(crate) enum Kind {
    Client,
    Subscriber,
}

impl Kind {
    pub(crate) fn subscriber() -> Kind {
        Kind::Subscriber
    }
}

pub(crate) struct Conn {}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").finish()
    }
}

impl Conn {
    pub(crate) fn start(
        _reactor: &mut Reactor,
        _url: RedisUrl,
        config: RedisConfig,
        _kind: Kind,
    ) -> Result<Rc<Conn>, RedisError> {
        config.validate()?;
        todo!()
    }
    pub(crate) fn command(&self, _args: &[&[u8]], _reply: ReplyTo) {
        todo!()
    }
    pub(crate) fn is_ready(&self) -> bool {
        todo!()
    }
    pub(crate) fn pending(&self) -> usize {
        todo!()
    }
    pub(crate) fn on_connect(&self, _cb: Box<dyn FnMut(&mut Reactor)>) {
        todo!()
    }
    pub(crate) fn close(&self, _reactor: &mut Reactor) {
        todo!()
    }
    pub(crate) fn subscribe(&self, _pattern: bool, _channel: &[u8], _cb: MessageCallback) {
        todo!()
    }
    pub(crate) fn unsubscribe(&self, _pattern: bool, _channel: &[u8]) {
        todo!()
    }
}
