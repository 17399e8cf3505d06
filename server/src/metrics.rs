//! `GET /metrics` in the Prometheus (OpenMetrics) text format, through
//! `prometheus-client`, and the periodic one-line summary in the log.
//!
//! The library counts on the loop ([`pawl::Stats`]); an HTTP handler runs
//! inside the server and cannot read the server itself, so a timer on the
//! loop takes a snapshot every [`REFRESH`] and the handler encodes the
//! latest one. With `--workers N` each worker counts and answers for
//! itself (the kernel picks which worker serves a scrape).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::info;
use pawl::reactor::LoopHandle;
use pawl::{HttpRequest, HttpResponse, RedisStats, Route, Stats};
use pawl_chat::Chat;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// How old the numbers `/metrics` serves may be.
pub const REFRESH: Duration = Duration::from_secs(1);

/// What `/metrics` serves: the server's counters and the chat's Redis link.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The server's counters.
    pub stats: Stats,
    /// The chat's Redis link, with `--redis`.
    pub chat_redis: Option<RedisStats>,
}

impl Snapshot {
    /// Takes one from the loop, through the chat's route (its context
    /// reaches the whole server's counters). `None` while the server is busy
    /// or gone.
    pub fn take(lp: &mut LoopHandle, chat: Route<Chat>) -> Option<Snapshot> {
        lp.try_with(chat, |chat, ctx| Snapshot {
            stats: ctx.stats(),
            chat_redis: chat.redis_stats(),
        })
    }

    /// The summary line the log gets every `--stats-interval`.
    pub fn summary(&self) -> String {
        let mut line = self.stats.summary();
        if let Some(redis) = self.chat_redis {
            line.push_str(&format!(", chat redis {redis}"));
        }
        line
    }

    /// The snapshot in the OpenMetrics text format Prometheus scrapes.
    pub fn encode(&self) -> String {
        let mut registry = Registry::with_prefix("pawl");
        registry.register_collector(Box::new(self.clone()));
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
        text
    }
}

/// Serves the latest snapshot on `/metrics`, refreshed on the loop, and
/// logs a summary every `interval` (never with `Duration::ZERO`).
pub fn start(lp: &mut LoopHandle, chat: Route<Chat>, latest: Latest, interval: Duration) {
    let refresh = move |lp: &mut LoopHandle| {
        if let Some(snapshot) = Snapshot::take(lp, chat) {
            *latest.0.borrow_mut() = snapshot;
        }
    };
    let first = refresh.clone();
    first(lp);
    lp.add_periodic(REFRESH, refresh);
    if !interval.is_zero() {
        lp.add_periodic(interval, move |lp| {
            if let Some(snapshot) = Snapshot::take(lp, chat) {
                info!("stats: {}", snapshot.summary());
            }
        });
    }
}

/// The latest snapshot, shared by the refresh timer and the handler.
#[derive(Debug, Clone, Default)]
pub struct Latest(Rc<RefCell<Snapshot>>);

impl Latest {
    /// The `/metrics` handler.
    pub fn handler(&self) -> impl Fn(&HttpRequest) -> HttpResponse + 'static {
        let latest = self.clone();
        move |_| {
            let text = latest.0.borrow().encode();
            HttpResponse::new(
                200,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                text.into_bytes(),
            )
        }
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = &self.stats;
        let mut counter = |name: &str, help: &str, value: u64| -> Result<(), std::fmt::Error> {
            let metric = ConstCounter::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
        };
        counter(
            "connections_accepted",
            "TCP connections accepted",
            s.connections_accepted,
        )?;
        counter(
            "connections_refused",
            "TCP connections closed at once (max connections, shutdown, out of descriptors)",
            s.connections_refused,
        )?;
        counter(
            "connections_opened",
            "WebSocket connections opened (upgraded)",
            s.connections_opened,
        )?;
        counter(
            "handshakes_dropped",
            "connections dropped during the handshake without an HTTP answer",
            s.handshakes_dropped,
        )?;
        counter(
            "http_responses",
            "plain HTTP requests answered below 400",
            s.http_responses,
        )?;
        counter(
            "messages_received",
            "data messages received from clients",
            s.messages_in,
        )?;
        counter(
            "messages_sent",
            "data messages queued to clients",
            s.messages_out,
        )?;
        counter(
            "received_bytes",
            "bytes read from client sockets",
            s.bytes_in,
        )?;
        counter("sent_bytes", "bytes written to client sockets", s.bytes_out)?;
        counter(
            "backpressure_events",
            "times a connection's unsent output passed the backpressure threshold",
            s.backpressure_events,
        )?;

        let mut family = encoder.encode_descriptor(
            "connections_closed",
            "WebSocket connections closed, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in s.closed.by_reason() {
            let labels = [("reason", reason)];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        let mut family = encoder.encode_descriptor(
            "handshake_refusals",
            "upgrade requests answered with an HTTP error, by status",
            None,
            MetricType::Counter,
        )?;
        for (status, n) in &s.handshake_refusals {
            let labels = [("status", status.to_string())];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }

        let mut gauge = |name: &str, help: &str, value: i64| -> Result<(), std::fmt::Error> {
            let metric = ConstGauge::new(value);
            metric.encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
        };
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        gauge(
            "connections_open",
            "WebSocket connections open now",
            clamp(s.connections_open),
        )?;
        gauge(
            "unsent_bytes",
            "bytes queued on connections and not yet written",
            clamp(s.unsent_bytes),
        )?;
        gauge(
            "compression_streams",
            "zlib streams held for dedicated-mode compression",
            clamp(s.compression_streams),
        )?;

        let links = [("chat", self.chat_redis), ("topics", s.broker)];
        let links: Vec<_> = links
            .into_iter()
            .filter_map(|(link, stats)| Some((link, stats?)))
            .collect();
        if !links.is_empty() {
            let mut family = encoder.encode_descriptor(
                "redis_up",
                "1 while the Redis link is connected, by link (chat, topics)",
                None,
                MetricType::Gauge,
            )?;
            for (link, redis) in &links {
                let labels = [("link", *link)];
                ConstGauge::new(i64::from(redis.connected))
                    .encode(family.encode_family(&labels)?)?;
            }
            let mut family = encoder.encode_descriptor(
                "redis_pending_commands",
                "Redis commands queued, unwritten or awaiting a reply, by link",
                None,
                MetricType::Gauge,
            )?;
            for (link, redis) in &links {
                let labels = [("link", *link)];
                let pending = i64::try_from(redis.pending).unwrap_or(i64::MAX);
                ConstGauge::new(pending).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_metric_once() {
        let mut snapshot = Snapshot::default();
        snapshot.stats.connections_open = 3;
        snapshot.stats.closed.peer = 2;
        snapshot.stats.handshake_refusals.insert(404, 5);
        snapshot.chat_redis = Some(RedisStats::new(true, 7));
        let text = snapshot.encode();
        for line in [
            "# TYPE pawl_connections_open gauge",
            "pawl_connections_open 3",
            "pawl_connections_closed_total{reason=\"peer\"} 2",
            "pawl_connections_closed_total{reason=\"io\"} 0",
            "pawl_handshake_refusals_total{status=\"404\"} 5",
            "pawl_redis_up{link=\"chat\"} 1",
            "pawl_redis_pending_commands{link=\"chat\"} 7",
            "pawl_sent_bytes_total 0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        assert!(!text.contains("link=\"topics\""), "{text}");
    }
}
