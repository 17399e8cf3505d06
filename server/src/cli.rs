//! Command-line flags. One vocabulary across the project: `--bind`,
//! `--redis`, `--tls-cert`/`--tls-key`, `--workers`, `--log-level`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use log::LevelFilter;
use pawl::{Compression, ServerConfig, TlsConfig, TrustedProxies};
use pawl_chat::ChatConfig;
use pawl_chat::setup::StoreConfig;

/// pawl: a single-threaded WebSocket server (RFC 6455) with a chat at / and /chat,
/// the seed's broadcast chat at /broadcast, and /echo.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// Address and port to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// PEM certificate chain: serve wss:// (and https://) instead of ws://.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Processes serving the port together (SO_REUSEPORT), each a full
    /// single-threaded server, under a supervisor that restarts them; 1 runs
    /// one process and no supervisor.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub workers: u16,

    /// Reverse proxy (IP or CIDR, e.g. 127.0.0.1 or 10.0.0.0/8) whose
    /// X-Forwarded-For names the client; repeat for several.
    #[arg(long = "trusted-proxy", value_name = "ADDR")]
    pub trusted_proxy: Vec<String>,

    /// Allowed Origin (host or full origin); repeat for several. `*` allows any.
    #[arg(long = "origin", value_name = "ORIGIN", default_value = "*")]
    pub origin: Vec<String>,

    /// Log level: off, error, warn, info, debug, trace.
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    pub log_level: LevelFilter,

    /// Largest message in bytes; bigger ones are closed with 1009.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub max_message_size: usize,

    /// Largest frame in bytes; bigger ones are closed with 1009.
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 20)]
    pub max_frame_size: usize,

    /// Connections above which new ones are refused at once.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    pub max_connections: usize,

    /// Time a client has to finish the HTTP upgrade (e.g. 10s, 500ms).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub handshake_timeout: Duration,

    /// Silence after which a connection is closed; a ping goes out half-way.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Time the peer has to answer a close frame.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub close_timeout: Duration,

    /// Largest HTTP upgrade request in bytes (431 above it).
    #[arg(long, value_name = "BYTES", default_value_t = 16 << 10)]
    pub max_request_size: usize,

    /// The longest one message may take to arrive, first byte to last
    /// (a frame trickled byte by byte is closed with 1008).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub message_timeout: Duration,

    /// Unsent bytes above which sends report backpressure.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub backpressure_threshold: usize,

    /// Unsent bytes above which a client that does not read is closed.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    pub max_backpressure: usize,

    /// Unsent bytes the process may hold for all its clients together
    /// (a broadcast frame counted once); past it the clients holding the
    /// most are closed first.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    pub unsent_budget: usize,

    /// permessage-deflate on every WebSocket route: `off`; `shared` (no
    /// context takeover: one compressor for the process, nothing per idle
    /// connection, a broadcast compressed once); `dedicated` or
    /// `dedicated:BITS` (a compressor per connection with a window of
    /// 2^BITS, 9 to 15, default 12: better ratios, more memory).
    #[arg(long, value_name = "MODE", default_value = "shared")]
    pub compression: Compression,

    /// Messages shorter than this are sent uncompressed.
    #[arg(long, value_name = "BYTES", default_value_t = 128)]
    pub compression_threshold: usize,

    /// Serve POST /publish?topic=NAME to requests carrying
    /// `Authorization: Bearer SECRET`: the body goes to the topic's
    /// subscribers on every worker and node. Also read from the
    /// PAWL_PUBLISH_SECRET environment variable, which `ps` does not show.
    #[arg(long, value_name = "SECRET")]
    pub publish_secret: Option<String>,

    /// Keep the chat's backlog in Redis (e.g. redis://127.0.0.1:6379);
    /// without it the backlog lives in memory only.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,

    /// Redis writes kept while Redis is unreachable; past this the oldest
    /// are dropped with a warning (the chat writes its rooms back from
    /// memory when Redis returns all the same).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub redis_max_queued: usize,

    /// With --redis: how long a pawl process stays in the others' presence
    /// after its last refresh (refreshed every third of it). A process
    /// that dies drops out of presence within 4/3 of this.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_duration)]
    pub presence_ttl: Duration,

    /// Public messages the chat keeps per room (and DMs per user).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub backlog: usize,

    /// Longest chat message text in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    pub max_text: usize,

    /// Chat messages per second one connection may send on average.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 10.0)]
    pub rate_limit: f64,

    /// Chat messages one connection may send in a burst.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub rate_burst: u32,

    /// Bytes the chat may hold (rooms, backlogs, members, DMs, by its own
    /// count); past it the oldest idle rooms, then offline members, are
    /// forgotten (with --redis they stay in Redis and are read again).
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub chat_memory: usize,

    /// Chat connections per second one client address may open on average.
    #[arg(long, value_name = "PER_SECOND", default_value_t = 20.0)]
    pub connect_rate: f64,

    /// Chat connections one client address may open in a burst.
    #[arg(long, value_name = "N", default_value_t = 200)]
    pub connect_burst: u32,

    /// Seconds between the one-line summaries of the server's counters in
    /// the log (at info level); 0 turns them off. The counters themselves
    /// are served on /metrics.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub stats_interval: u64,
}

/// Below this a full room (100 messages of 4 KiB) would not fit.
const MIN_CHAT_MEMORY: usize = 1 << 20;

impl Args {
    /// The server settings the flags describe.
    pub fn server_config(&self) -> pawl::Result<ServerConfig> {
        let config = ServerConfig::default()
            .max_message_size(self.max_message_size)
            .max_frame_size(self.max_frame_size)
            .max_connections(self.max_connections)
            .handshake_timeout(self.handshake_timeout)
            .idle_timeout(self.idle_timeout)
            .close_timeout(self.close_timeout)
            .message_timeout(self.message_timeout)
            .max_request_size(self.max_request_size)
            .backpressure_threshold(self.backpressure_threshold)
            .max_backpressure(self.max_backpressure)
            .unsent_budget(self.unsent_budget)
            .compression(self.compression)
            .compression_threshold(self.compression_threshold)
            .trusted_proxies(self.trusted_proxies()?);
        config.validate()?;
        Ok(config)
    }

    /// The chat's limits the flags describe.
    pub fn chat_config(&self) -> pawl::Result<ChatConfig> {
        let bad = |what: &str| Err(pawl::Error::Config(what.to_owned()));
        if self.backlog == 0 {
            return bad("--backlog must be at least 1");
        }
        if self.max_text == 0 {
            return bad("--max-text must be at least 1");
        }
        if !(self.rate_limit.is_finite() && self.rate_limit > 0.0) {
            return bad("--rate-limit must be a positive number");
        }
        if self.rate_burst == 0 {
            return bad("--rate-burst must be at least 1");
        }
        if self.chat_memory < MIN_CHAT_MEMORY {
            return bad("--chat-memory must be at least 1048576 (1 MiB)");
        }
        if !(self.connect_rate.is_finite() && self.connect_rate > 0.0) {
            return bad("--connect-rate must be a positive number");
        }
        if self.connect_burst == 0 {
            return bad("--connect-burst must be at least 1");
        }
        Ok(ChatConfig {
            backlog: self.backlog,
            max_text: self.max_text,
            rate: self.rate_limit,
            burst: self.rate_burst,
            memory: self.chat_memory,
            connect_rate: self.connect_rate,
            connect_burst: self.connect_burst,
        })
    }

    /// Where the chat keeps its backlog.
    /// (`--presence-ttl` is checked when the chat is mounted.)
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            redis: self.redis.clone(),
            redis_max_queued: self.redis_max_queued,
            presence_ttl: self.presence_ttl,
        }
    }

    /// The secret of `POST /publish`: `--publish-secret`, else
    /// `PAWL_PUBLISH_SECRET`; `None` leaves the route out (404).
    pub fn publish_secret(&self) -> pawl::Result<Option<String>> {
        let secret = self
            .publish_secret
            .clone()
            .or_else(|| std::env::var(crate::publish::SECRET_ENV).ok());
        match secret {
            Some(s) if s.trim().is_empty() => Err(pawl::Error::Config(
                "--publish-secret must not be empty".to_owned(),
            )),
            other => Ok(other),
        }
    }

    /// `--bind` split into host and port (`[::1]:8080` works too).
    pub fn host_port(&self) -> pawl::Result<(String, u16)> {
        let bad = || pawl::Error::Config(format!("--bind {:?}: expected ADDR:PORT", self.bind));
        let (host, port) = self.bind.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Ok((host.to_owned(), port))
    }

    /// `--trusted-proxy`, parsed.
    pub fn trusted_proxies(&self) -> pawl::Result<TrustedProxies> {
        let mut proxies = TrustedProxies::new();
        for net in &self.trusted_proxy {
            proxies.add(net)?;
        }
        Ok(proxies)
    }

    /// The TLS settings of `--tls-cert`/`--tls-key`, if given: the files are
    /// read and checked now, so a bad path fails at startup.
    pub fn tls_config(&self) -> pawl::Result<Option<TlsConfig>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => TlsConfig::from_pem_files(cert, key).map(Some),
            _ => Ok(None),
        }
    }
}

/// `10s`, `500ms`, `2m`, or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("{text:?}: unit must be ms, s or m")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5h").is_err());
    }

    /// The chat's flags reach its config (the protocol tests in
    /// chat/tests set these fields directly, in process), and nonsense is
    /// refused.
    #[test]
    fn chat_flags() {
        let args = Args::parse_from([
            "pawl",
            "--backlog",
            "8",
            "--max-text",
            "64",
            "--rate-limit",
            "5",
            "--rate-burst",
            "20",
            "--chat-memory",
            "2000000",
            "--connect-rate",
            "3",
            "--connect-burst",
            "4",
        ]);
        let config = args.chat_config().expect("valid");
        assert_eq!(config.backlog, 8);
        assert_eq!(config.max_text, 64);
        assert_eq!(config.rate, 5.0);
        assert_eq!(config.burst, 20);
        assert_eq!(config.memory, 2_000_000);
        assert_eq!((config.connect_rate, config.connect_burst), (3.0, 4));
        for flags in [
            ["--chat-memory", "1000"],
            ["--connect-rate", "0"],
            ["--connect-burst", "0"],
            ["--backlog", "0"],
            ["--max-text", "0"],
            ["--rate-limit", "0"],
            ["--rate-limit", "inf"],
            ["--rate-burst", "0"],
        ] {
            let args = Args::parse_from(["pawl"].into_iter().chain(flags));
            assert!(args.chat_config().is_err(), "{flags:?} accepted");
        }
    }

    #[test]
    fn bind_addresses() {
        let args = Args::parse_from(["pawl", "--bind", "[::1]:9001"]);
        assert_eq!(args.host_port().expect("valid"), ("::1".to_owned(), 9001));
        let args = Args::parse_from(["pawl", "--bind", "nonsense"]);
        assert!(args.host_port().is_err());
    }
}
