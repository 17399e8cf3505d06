//! The chat page in real headless Chromium, driven over WebDriver
//! (chromedriver + fantoccini): alice and bob, each in a browser of their
//! own, exchange a public message and a DM; bob reloads and sees the
//! backlog. Screenshots of both pages land in `target/chat-screenshots/`.

mod chat_util;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use chat_util::{Pawl, TIMEOUT};
use fantoccini::elements::Element;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a port of its choosing; stopped with SIGTERM on drop so
/// it takes its browsers down with it.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: install Debian's chromium and chromium-driver"
            );
        }
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.split("started successfully on port ").nth(1) {
                    let _ = tx.send(port.trim_end_matches('.').parse::<u16>());
                }
            }
        });
        let port = match rx.recv_timeout(TIMEOUT) {
            Ok(Ok(port)) => port,
            other => {
                let _ = child.kill();
                panic!("chromedriver did not report its port: {other:?}");
            }
        };
        Driver { child, port }
    }

    async fn browser(&self, profile: &Path) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1100,720",
            &format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": CHROMIUM, "args": args}),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("WebDriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SIGTERM lets chromedriver close the browsers it started.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

/// A fresh folder under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("chat-browser-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

async fn wait_css(page: &Client, css: &str) -> Element {
    page.wait()
        .at_most(TIMEOUT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css:?} within {TIMEOUT:?}: {e}"))
}

/// Waits for an element whose text contains `text`.
async fn wait_text(page: &Client, css: &str, text: &str) -> Element {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        for element in page.find_all(Locator::Css(css)).await.expect("find") {
            if element.text().await.is_ok_and(|t| t.contains(text)) {
                return element;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {css:?} containing {text:?} within {TIMEOUT:?}"
        );
        // Polling the DOM: there is no event to wait on over WebDriver.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn join(
    page: &Client,
    base: &str,
    name: &str,
    status: &str,
    swatch: usize,
    shots: Option<&Path>,
) {
    page.goto(base).await.expect("open the page");
    wait_css(page, "#name")
        .await
        .send_keys(name)
        .await
        .expect("name");
    page.find(Locator::Css("#status"))
        .await
        .expect("status")
        .send_keys(status)
        .await
        .expect("type status");
    page.find(Locator::Css(&format!(
        "#swatches .swatch:nth-child({swatch})"
    )))
    .await
    .expect("swatch")
    .click()
    .await
    .expect("pick colour");
    if let Some(dir) = shots {
        screenshot(page, dir, "join-dialog").await;
    }
    page.find(Locator::Css("#join"))
        .await
        .expect("join button")
        .click()
        .await
        .expect("join");
    wait_text(page, "#state-text", &format!("connected as {name}")).await;
}

async fn type_and_enter(page: &Client, text: &str) {
    let input = wait_css(page, "#input:not([disabled])").await;
    input.send_keys(text).await.expect("type");
    input
        .send_keys(&String::from(char::from(Key::Enter)))
        .await
        .expect("Enter");
}

async fn screenshot(page: &Client, dir: &Path, name: &str) {
    let png = page.screenshot().await.expect("screenshot");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "current_thread")]
async fn alice_and_bob_chat_in_two_browsers() {
    let pawl = Pawl::start(&[]);
    let base = format!("http://{}/", pawl.addr);
    let driver = Driver::start();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("chat-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let (driver, shots) = (&driver, shots.as_path());

    let run = async move {
        let alice = driver.browser(&scratch("alice")).await;
        let bob = driver.browser(&scratch("bob")).await;

        join(&alice, &base, "alice", "writing Rust", 1, Some(shots)).await;
        join(&bob, &base, "bob", "on a coffee break", 4, None).await;
        wait_text(&alice, "#users li", "bob").await;

        // The binary compresses by default (`--compression shared`): the
        // browser offered permessage-deflate and the page's `ws.extensions`
        // says it was agreed, without context takeover.
        let extensions = alice
            .execute("return document.body.dataset.extensions || ''", vec![])
            .await
            .expect("read ws.extensions");
        let extensions = extensions.as_str().unwrap_or_default();
        assert!(
            extensions.starts_with("permessage-deflate")
                && extensions.contains("server_no_context_takeover"),
            "ws.extensions: {extensions:?}"
        );

        // A public message, sent with Enter.
        type_and_enter(&alice, "Hello bob! Welcome to the pawl chat.").await;
        wait_text(&bob, "#list .msg .text", "Hello bob!").await;
        type_and_enter(&bob, "Hi alice, glad to be here.").await;
        wait_text(&alice, "#list .msg .text", "glad to be here").await;

        // A DM: bob clicks alice in the online list.
        wait_css(&bob, "#users li[data-name='alice']")
            .await
            .click()
            .await
            .expect("open the DM");
        wait_text(&bob, "#conv-title", "@ alice").await;
        type_and_enter(&bob, "psst, this one is just for you").await;
        wait_text(&bob, "#list .msg.dm .text", "just for you").await;

        // alice sees an unread DM conversation and opens it.
        wait_css(&alice, "#convs li[data-conv='dm:bob'] .badge").await;
        alice
            .find(Locator::Css("#convs li[data-conv='dm:bob']"))
            .await
            .expect("DM conversation")
            .click()
            .await
            .expect("open it");
        wait_text(&alice, "#list .msg.dm .text", "just for you").await;
        type_and_enter(&alice, "Got it, thanks! See you at the standup.").await;
        wait_text(&bob, "#list .msg.dm .text", "Got it").await;
        screenshot(&alice, shots, "alice-dm").await;
        screenshot(&bob, shots, "bob-dm").await;

        // bob reloads: the saved token rejoins him and the backlog is back.
        bob.refresh().await.expect("reload");
        wait_text(&bob, "#state-text", "connected as bob").await;
        wait_text(&bob, "#list .msg .text", "Hello bob!").await;
        wait_text(&bob, "#list .msg .text", "glad to be here").await;
        wait_css(&bob, "#convs li[data-conv='dm:alice']").await;
        wait_text(&alice, "#users li", "bob").await;
        screenshot(&bob, shots, "bob-after-reload").await;
        alice
            .find(Locator::Css("#convs li[data-conv='public']"))
            .await
            .expect("public conversation")
            .click()
            .await
            .expect("open it");
        screenshot(&alice, shots, "alice-public").await;

        // The server goes away: both pages say so, then reconnect by
        // themselves to the new one on the same address.
        let addr = pawl.addr.to_string();
        pawl.kill();
        wait_text(&alice, "#state-text", "offline").await;
        wait_text(&bob, "#state-text", "offline").await;
        screenshot(&alice, shots, "alice-offline").await;
        let _pawl = Pawl::start_on(&addr, &[]);
        wait_text(&alice, "#state-text", "connected as alice").await;
        wait_text(&bob, "#state-text", "connected as bob").await;
        wait_text(&alice, "#users li", "bob").await;
        type_and_enter(&alice, "Back after a server restart.").await;
        wait_text(&bob, "#list .msg .text", "Back after a server restart").await;
        screenshot(&bob, shots, "bob-after-server-restart").await;

        alice.close().await.expect("close alice");
        bob.close().await.expect("close bob");
    };
    tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser test took over two minutes");
}
