//! `GET /metrics` on the `pawl` binary, scraped over a real socket while
//! real clients connect, talk and leave: the counters move as they should,
//! refusals are counted by status and closes by reason, the Redis links'
//! state follows a real redis-server, and `--stats-interval` puts a summary
//! line in the log (`--stats-interval 0` sets no timer at all).
//!
//! ```text
//! cargo test -p pawl-server --test metrics
//! ```

#[path = "../../tests/util/mod.rs"]
mod util;

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

mod chat_util;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use chat_util::Pawl;
use redis_server::RedisServer;
use util::{Client, Raw, TIMEOUT, wait_for};

/// One scrape: every sample line, `name{labels}` to value.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: pawl\r\n\r\n")
        .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("application/openmetrics-text"),
        "content type in {head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (name, value) = l.rsplit_once(' ').expect("name value");
            (name.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// Scrapes until `want` holds for the samples (`/metrics` serves a snapshot
/// at most a second old), and returns them; fails after [`TIMEOUT`] with
/// the last scrape.
#[track_caller]
fn until(addr: SocketAddr, what: &str, want: impl Fn(&Metric) -> bool) -> Metric {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let metric = Metric(scrape(addr));
        if want(&metric) {
            return metric;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: last scrape {:#?}",
            metric.0
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Metric(HashMap<String, f64>);

impl Metric {
    fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(f64::NAN)
    }
}

#[test]
fn counters_move_with_clients_messages_refusals_and_closes() {
    let pawl = Pawl::start(&[]);
    let first = until(pawl.addr, "a first snapshot", |m| {
        m.get("pawl_connections_open") == 0.0
    });
    for name in [
        "pawl_connections_accepted_total",
        "pawl_connections_opened_total",
        "pawl_messages_received_total",
        "pawl_messages_sent_total",
        "pawl_received_bytes_total",
        "pawl_sent_bytes_total",
        "pawl_backpressure_events_total",
        "pawl_unsent_bytes",
        "pawl_connections_closed_total{reason=\"peer\"}",
    ] {
        assert!(first.0.contains_key(name), "no {name} in {:#?}", first.0);
    }
    // Without --redis there is no Redis link to report.
    assert!(!first.0.keys().any(|k| k.starts_with("pawl_redis_")));

    let mut clients: Vec<Client> = (0..3)
        .map(|_| Client::connect(pawl.addr, "/echo"))
        .collect();
    for client in &mut clients {
        for text in ["one", "two"] {
            client.send_text(text);
            client.expect_text(text);
        }
    }
    let open = until(pawl.addr, "three open, six messages each way", |m| {
        m.get("pawl_connections_open") == 3.0
            && m.get("pawl_messages_received_total") == 6.0
            && m.get("pawl_messages_sent_total") == 6.0
    });
    assert_eq!(open.get("pawl_connections_opened_total"), 3.0);
    // Three upgrade requests and six frames at least.
    assert!(open.get("pawl_received_bytes_total") > 3.0 * 100.0);
    assert!(open.get("pawl_sent_bytes_total") > 3.0 * 100.0);

    let mut gone = clients.pop().expect("a client");
    for client in &mut clients {
        client.close(1000, "bye");
        client.expect_close(1000);
    }
    // The third leaves without a close frame.
    gone.ws
        .get_mut()
        .shutdown(std::net::Shutdown::Both)
        .expect("shutdown");
    drop(gone);
    let mut refused = Raw::connect(pawl.addr);
    refused.send(b"GET /nope HTTP/1.1\r\nHost: pawl\r\n\r\n");
    assert_eq!(refused.response().0, 404);
    let mut no_host = Raw::connect(pawl.addr);
    no_host.send(
        util::upgrade_request("/echo", &[])
            .replace("Host: 127.0.0.1\r\n", "")
            .as_bytes(),
    );
    assert_eq!(no_host.response().0, 400);

    let closed = until(pawl.addr, "all closed, two refusals", |m| {
        m.get("pawl_connections_open") == 0.0
            && m.get("pawl_connections_closed_total{reason=\"peer\"}") == 2.0
            && m.get("pawl_connections_closed_total{reason=\"io\"}") == 1.0
            && m.get("pawl_handshake_refusals_total{status=\"404\"}") == 1.0
            && m.get("pawl_handshake_refusals_total{status=\"400\"}") == 1.0
    });
    assert_eq!(closed.get("pawl_connections_opened_total"), 3.0);
    assert_eq!(closed.get("pawl_messages_received_total"), 6.0);
    assert!(closed.get("pawl_sent_bytes_total") > open.get("pawl_sent_bytes_total"));
    // Every scrape so far is an HTTP response too.
    assert!(closed.get("pawl_http_responses_total") >= 3.0);
}

#[test]
fn redis_links_report_their_state() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let pawl = Pawl::start(&["--redis", &url]);
    until(pawl.addr, "both links up", |m| {
        m.get("pawl_redis_up{link=\"chat\"}") == 1.0
            && m.get("pawl_redis_up{link=\"topics\"}") == 1.0
    });
    redis.kill();
    let down = until(pawl.addr, "both links down", |m| {
        m.get("pawl_redis_up{link=\"chat\"}") == 0.0
            && m.get("pawl_redis_up{link=\"topics\"}") == 0.0
    });
    assert!(down.get("pawl_redis_pending_commands{link=\"chat\"}") >= 0.0);
    redis.restart();
    until(pawl.addr, "both links up again", |m| {
        m.get("pawl_redis_up{link=\"chat\"}") == 1.0
            && m.get("pawl_redis_up{link=\"topics\"}") == 1.0
    });
}

#[test]
fn the_log_gets_a_summary_line_every_interval() {
    let pawl = Pawl::start(&["--stats-interval", "1"]);
    let mut client = Client::connect(pawl.addr, "/echo");
    client.send_text("hi");
    client.expect_text("hi");
    wait_for("a summary with the open connection", || {
        pawl.log()
            .lines()
            .any(|l| l.contains("stats: open 1, opened 1, closed 0") && l.contains("in 1 msgs"))
            .then_some(())
    });
}
