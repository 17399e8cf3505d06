//! Putting the chat on an app: the `/chat` route with its store, the page,
//! and, with Redis, the client on the loop and its wiring to the server.

use std::time::Duration;

use log::info;
use pawl::reactor::LoopHandle;
use pawl::redis::{RedisClient, RedisConfig};
use pawl::{App, Origins, Route};

use super::cluster::Cluster;
use super::redis_store::RedisStore;
use super::store::{MemoryStore, Store};
use super::{Chat, ChatConfig, page};

/// Below this, refreshing presence every third of it would be most of
/// what a node does.
const MIN_PRESENCE_TTL: Duration = Duration::from_millis(30);

/// How long Redis may stay silent while the chat waits for a reply (an id,
/// a claim) before it is treated as unreachable: every chat reply from a
/// healthy Redis takes a few milliseconds.
const STALL_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the chat keeps its backlog.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `redis://...`, or `None` for memory only.
    pub redis: Option<String>,
    /// Redis writes kept while Redis is unreachable.
    pub redis_max_queued: usize,
    /// How long a node's presence outlives its last refresh in Redis.
    /// Default 3 s.
    pub presence_ttl: Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            redis: None,
            redis_max_queued: 10_000,
            presence_ttl: Duration::from_secs(3),
        }
    }
}

/// Mounts the chat on `/chat` and its page on `/`, and connects to Redis on
/// the loop when asked to (never blocking: commands queue until it is up);
/// with Redis, the chat spans every pawl process sharing it: the app's
/// topics broker is set to the same Redis ([`App::broker`]), since rooms
/// are topics. Redis replies reach the chat through the returned route,
/// from the moment the app listens; nothing else needs wiring.
pub fn mount(
    app: App,
    lp: &mut LoopHandle,
    config: ChatConfig,
    store: &StoreConfig,
    origins: &Origins,
) -> pawl::Result<(App, Route<Chat>)> {
    if store.presence_ttl < MIN_PRESENCE_TTL {
        let what = format!("--presence-ttl must be at least {MIN_PRESENCE_TTL:?}");
        return Err(pawl::Error::Config(what));
    }
    let redis = match &store.redis {
        Some(url) => {
            // Only the writes the store marks idempotent are sent again
            // after a broken connection; ids and publishes are not (see
            // `claim`, `Cluster::next_id`). A Redis silent for a second while
            // a reply is awaited is stalled: the connection is dropped and
            // the chat goes on from memory, as when Redis is unreachable,
            // instead of holding every message until Redis resumes.
            let redis_config = RedisConfig::default()
                .max_queued(store.redis_max_queued)
                .command_timeout(Some(STALL_TIMEOUT));
            let bad = |e| pawl::Error::Config(format!("--redis {url}: {e}"));
            let client = RedisClient::connect(lp, url, redis_config).map_err(bad)?;
            info!("chat backlog in redis at {url}");
            let cluster = Cluster::new(client.clone(), store.presence_ttl);
            Some((RedisStore::new(client, config.backlog), cluster))
        }
        None => None,
    };
    let chat = match &redis {
        Some((store, cluster)) => {
            Chat::new(config, Box::new(store.clone())).with_cluster(cluster.clone())
        }
        None => Chat::new(config, Box::new(MemoryStore) as Box<dyn Store>),
    };
    let app = match &store.redis {
        Some(url) => app.broker(url),
        None => app,
    };
    let mut app = page::mount(app);
    let route = app.mount("/chat", chat, origins);
    if let Some((store, cluster)) = &redis {
        store.listen(route);
        cluster.listen(lp, route);
    }
    Ok((app, route))
}
