//! The upgrade request: pawl's path (httparse's borrowed view, the upgrade
//! rules, the 101 written by hand, the compact request a connection keeps)
//! beside tungstenite's server handshake doing the same work (an
//! `http::Request`, `create_response`, `write_response`), the path pawl
//! took before.
//!
//! ```text
//! cargo bench --bench handshake
//! ```

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pawl::HttpRequest;
use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{Request, create_response, write_response};

const BROWSER_REQUEST: &[u8] = b"GET /chat?room=lobby HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
Connection: Upgrade\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Safari/537.36\r\n\
Upgrade: websocket\r\nOrigin: http://127.0.0.1:8080\r\nSec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

fn handshake(c: &mut Criterion) {
    let mut out = Vec::with_capacity(256);
    c.bench_function("pawl: parse a browser upgrade and write the 101", |b| {
        b.iter(|| {
            out.clear();
            let kept = pawl::upgrade_response(black_box(BROWSER_REQUEST), &mut out)
                .expect("valid upgrade");
            black_box((out.len(), kept))
        })
    });
    c.bench_function(
        "tungstenite: parse a browser upgrade and write the 101",
        |b| {
            b.iter(|| {
                let Ok(Some((_, request))) = Request::try_parse(black_box(BROWSER_REQUEST)) else {
                    panic!("the request parses");
                };
                let response = create_response(&request).expect("valid upgrade");
                out.clear();
                write_response(&mut out, &response).expect("write to a Vec");
                let kept = HttpRequest::new(
                    request.uri().path_and_query().map_or("/", |pq| pq.as_str()),
                    request.headers().iter().map(|(k, v)| {
                        (
                            k.as_str().to_owned(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    }),
                );
                black_box((out.len(), kept))
            })
        },
    );
}

criterion_group!(benches, handshake);
criterion_main!(benches);
