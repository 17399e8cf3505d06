//! Putting the chat on an app: the `/chat` route with its store, the page,
//! and, with Redis, the client on the loop and its wiring to the server.

use log::info;
use pawl::reactor::Reactor;
use pawl::redis::{RedisClient, RedisConfig};
use pawl::{App, Server};

use super::redis_store::RedisStore;
use super::store::{MemoryStore, Store};
use super::{Chat, ChatConfig, page};

/// Where the chat keeps its backlog.
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    /// `redis://...`, or `None` for memory only.
    pub redis: Option<String>,
    /// Redis writes kept while Redis is unreachable.
    pub redis_max_queued: usize,
}

/// The chat once mounted; [`Mounted::attach`] it to the server `listen`
/// returned.
#[derive(Debug)]
#[must_use = "attach it to the server, or Redis replies reach no chat"]
pub struct Mounted {
    redis: Option<RedisStore>,
}

/// Mounts the chat on `/chat`, its page on `/`, and connects to Redis on
/// `reactor` when asked to (never blocking: commands queue until it is up).
pub fn mount(
    app: &mut App,
    reactor: &mut Reactor,
    config: ChatConfig,
    store: &StoreConfig,
    origins: &[&str],
) -> pawl::Result<Mounted> {
    let redis = match &store.redis {
        Some(url) => {
            // Every chat write is idempotent (ZADD scored by id, HSET, SADD,
            // SET of the sequence), so what was in flight when Redis went
            // away may safely be written again.
            let redis_config = RedisConfig::default()
                .max_queued(store.redis_max_queued)
                .retry_in_flight(true);
            let client = RedisClient::connect(reactor, url, redis_config)
                .map_err(|e| pawl::Error::Config(format!("--redis {url}: {e}")))?;
            info!("chat backlog in redis at {url}");
            Some(RedisStore::new(client, config.backlog))
        }
        None => None,
    };
    let backend: Box<dyn Store> = match &redis {
        Some(store) => Box::new(store.clone()),
        None => Box::new(MemoryStore),
    };
    app.route("/chat", Chat::new(config, backend), origins);
    page::mount(app);
    Ok(Mounted { redis })
}

impl Mounted {
    /// Lets Redis replies reach the chat on `server`.
    pub fn attach(self, server: &Server) {
        if let Some(store) = &self.redis {
            store.attach(server.clone());
        }
    }
}
