//! The inspector page in a real browser: Debian's headless Chromium driven over WebDriver by its
//! `chromedriver` (both installed by `scripts/setup`). The page is opened, logged in to with the
//! admin token (which never shows in a URL), an object is found by name, a stored value edited,
//! and the Counter's next increment uses it; the live tail shows the increment.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::common::{TestServer, eventually, read_guest};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const TOKEN: &str = "inspector-s3cret";
const WAIT: Duration = Duration::from_secs(30);

/// A chromedriver process on a free loopback port, killed on drop.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    pub async fn start() -> Self {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
            "the browser test needs Debian's chromium and chromium-driver: run scripts/setup"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let status = reqwest::Client::new();
        eventually(WAIT, || async {
            let answer = status.get(format!("{url}/status")).send().await.ok()?;
            let body: Value = answer.json().await.ok()?;
            (body["value"]["ready"] == true).then_some(())
        })
        .await;
        Self { child, url }
    }

    /// A new headless browser session.
    pub async fn browser(&self) -> Client {
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1280,960"],
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a browser session")
    }
}

/// The text of the first element matching `css`, once it equals `expected`.
async fn wait_for_text(browser: &Client, css: &str, expected: &str) {
    let mut last = String::new();
    let found = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(element) = browser.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if text.trim() == expected {
                    return;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "{css}: {last:?}, not {expected:?}");
}

async fn click(browser: &Client, css: &str) {
    browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    let field = browser
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_finds_an_object_by_name_and_edits_its_value() {
    let mut s = TestServer::start_with(|c| c.admin_token = Some(TOKEN.into())).await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    s.http = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    assert_eq!(
        s.upload("Counter", read_guest("duro-example-counter"))
            .await
            .0,
        reqwest::StatusCode::CREATED
    );
    for (name, times) in [("alpha", 3), ("beta", 1), ("gamma", 1)] {
        for _ in 0..times {
            s.post(&format!("/objects/Counter/{name}/increment")).await;
        }
    }
    // The page's files need no token; the API they call does.
    let page = reqwest::get(format!("{}/inspector", s.admin))
        .await
        .unwrap();
    assert_eq!(page.status(), reqwest::StatusCode::OK);
    let unauthorized = reqwest::get(format!("{}/classes", s.admin)).await.unwrap();
    assert_eq!(unauthorized.status(), reqwest::StatusCode::UNAUTHORIZED);

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    // `/` leads to the page, which asks for the token.
    browser.goto(&format!("{}/", s.admin)).await.unwrap();
    type_into(&browser, "#token", "wrong").await;
    click(&browser, "#login button[type=submit]").await;
    wait_for_text(&browser, "#login-error", "That token was refused.").await;
    type_into(&browser, "#token", TOKEN).await;
    click(&browser, "#login button[type=submit]").await;

    // The classes, then the Counter's objects found by a name prefix.
    click(&browser, "a[href='#/class/Counter']").await;
    wait_for_text(&browser, "h1", "Counter").await;
    type_into(&browser, "#name-prefix", "alp").await;
    click(&browser, "#search button[type=submit]").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = browser.find_all(Locator::Css("a.object")).await.unwrap();
        let mut names = Vec::new();
        for link in &found {
            names.push(link.text().await.unwrap_or_default());
        }
        if names == ["alpha"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "found {names:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    click(&browser, "a.object").await;

    // Its stored count, edited in the page: 3 becomes 41.
    wait_for_text(&browser, "tr[data-key='count'] td.value", "3").await;
    wait_for_text(&browser, "#object-name", "alpha").await;
    click(&browser, "tr[data-key='count'] button.edit").await;
    type_into(&browser, "textarea.edit-value", "41").await;
    click(&browser, "form.save button[type=submit]").await;
    wait_for_text(&browser, "tr[data-key='count'] td.value", "41").await;
    let url = browser.current_url().await.unwrap();
    assert!(!url.as_str().contains(TOKEN), "{url}");
    // A picture of the object's page, for the README (target/tmp/inspector.png).
    if let Ok(png) = browser.screenshot().await {
        let _ = std::fs::write(
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("inspector.png"),
            png,
        );
    }

    // A key whose pieces look like a path's ("a/../.."): deleting it from the page deletes that
    // key only (sent as one segment, never resolved by the browser into the object's route).
    let odd = "/classes/Counter/objects/by-name/alpha/entries/a%2F..%2F..";
    assert_eq!(
        s.admin_call(reqwest::Method::PUT, odd, b"1".to_vec())
            .await
            .0,
        reqwest::StatusCode::OK
    );
    browser.refresh().await.unwrap();
    click(&browser, "tr[data-key='a/../..'] button.danger").await;
    browser.accept_alert().await.unwrap();
    eventually(WAIT, || async {
        let rows = browser.find_all(Locator::Css("tr[data-key]")).await.ok()?;
        (rows.len() == 1).then_some(())
    })
    .await;
    wait_for_text(&browser, "tr[data-key='count'] td.value", "41").await;

    // The Counter's next increment uses the value put.
    assert_eq!(
        s.post("/objects/Counter/alpha/increment").await,
        (reqwest::StatusCode::OK, json!({"count": 42}))
    );

    // The live tail shows the next ones (incremented until one shows: the page subscribes on
    // its own time).
    click(&browser, "nav a[href='#/tail']").await;
    type_into(&browser, "#tail-class", "Counter").await;
    click(&browser, "form.inline button[type=submit]").await;
    wait_for_text(&browser, "#tail-state", "following").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        s.post("/objects/Counter/alpha/increment").await;
        let lines = browser
            .find(Locator::Css("#tail-lines"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if lines.contains("fetch Counter/alpha") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "tail: {lines:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = browser.current_url().await.unwrap();
    assert!(!url.as_str().contains(TOKEN), "{url}");
    browser.close().await.unwrap();
}

/// Not a check: the page's weight and its time to first render, printed for BENCHMARKS.md
/// (`scripts/bench-inspector`). Each load is a fresh navigation of a logged-in tab to the
/// classes view; the figures are the browser's own (Navigation and Paint Timing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: scripts/bench-inspector"]
async fn inspector_page_weight_and_first_render() {
    let s = TestServer::start().await;
    s.upload("Counter", read_guest("duro-example-counter"))
        .await;
    for name in ["alpha", "beta", "gamma"] {
        s.post(&format!("/objects/Counter/{name}/increment")).await;
    }
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    let loads = 30;
    let mut figures: Vec<Value> = Vec::new();
    for _ in 0..loads {
        browser
            .goto(&format!("{}/inspector#/", s.admin))
            .await
            .unwrap();
        // Navigation to the same URL with a fragment may not reload: force it.
        browser.refresh().await.unwrap();
        let figure = eventually(WAIT, || async {
            let value = browser
                .execute(
                    r#"const view = performance.getEntriesByName("duro:first-view")[0];
                       if (!view) return null;
                       const nav = performance.getEntriesByType("navigation")[0];
                       const paint = performance.getEntriesByName("first-contentful-paint")[0];
                       const files = performance.getEntriesByType("resource")
                         .filter((r) => r.name.includes("/inspector/"));
                       return {
                         bytes: nav.encodedBodySize + files.reduce((n, r) => n + r.encodedBodySize, 0),
                         requests: 1 + files.length,
                         first_paint_ms: paint ? paint.startTime : null,
                         dom_ready_ms: nav.domContentLoadedEventEnd,
                         first_view_ms: view.startTime,
                       };"#,
                    Vec::new(),
                )
                .await
                .ok()?;
            (!value.is_null()).then_some(value)
        })
        .await;
        figures.push(figure);
    }
    // The browser's own floor: a one-line page from a data: URL, no server.
    let mut floor = Vec::new();
    for _ in 0..loads {
        browser.goto("data:text/html,<p>duro</p>").await.unwrap();
        let paint = eventually(WAIT, || async {
            let script = r#"const p = performance.getEntriesByName("first-contentful-paint")[0];
                            return p ? p.startTime : null;"#;
            browser.execute(script, Vec::new()).await.ok()?.as_f64()
        })
        .await;
        floor.push(json!({ "first_paint_ms": paint }));
    }
    let median = |figures: &[Value], key: &str| {
        let mut values: Vec<f64> = figures.iter().filter_map(|f| f[key].as_f64()).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "inspector: {} bytes in {} requests; over {loads} loads, median first contentful paint \
         {:.1} ms, DOM ready {:.1} ms, first view with data {:.1} ms; a one-line data: page's \
         first contentful paint {:.1} ms",
        figures[0]["bytes"],
        figures[0]["requests"],
        median(&figures, "first_paint_ms"),
        median(&figures, "dom_ready_ms"),
        median(&figures, "first_view_ms"),
        median(&floor, "first_paint_ms")
    );
    browser.close().await.unwrap();
}

/// A server with the example Counter deployed, no token.
async fn counter_server() -> TestServer {
    let s = TestServer::start().await;
    let counter = read_guest("duro-example-counter");
    assert_eq!(
        s.upload("Counter", counter).await.0,
        reqwest::StatusCode::CREATED
    );
    s
}

/// Serves `page` as HTML to every request on a loopback port until dropped; its address.
async fn serve_page(page: String) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let page = page.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{page}",
                    page.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    // `localhost`, where the admin API is 127.0.0.1: another site, as the browser sees it.
    (format!("http://localhost:{port}/"), task)
}

/// Issue 35: duro serves its admin API on loopback with no token (the quick start); a page of
/// another site, open in a real browser, does what a cross-site request forgery does — `no-cors`
/// POSTs of an import over an object and of a migration that deletes a class — and nothing
/// changes: the requests reach duro and are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_site_cannot_drive_the_admin_api() {
    let s = counter_server().await;
    s.post("/objects/Counter/a/increment").await;
    let (_, export) = s
        .admin_call(
            reqwest::Method::GET,
            "/classes/Counter/objects/by-name/a/export",
            vec![],
        )
        .await;
    let export = export.as_str().unwrap_or_default().to_string();
    let forged = export.replace("\"value\":1}", "\"value\":666}");
    assert_ne!(forged, export);
    let migration = json!({"tag": "evil", "deleted_classes": ["Counter"]}).to_string();
    let page = format!(
        r#"<!doctype html><title>sending</title><script>
const admin = {admin};
Promise.allSettled([
  fetch(admin + "/classes/Counter/objects/by-name/a/import?replace=true",
        {{ method: "POST", mode: "no-cors", body: {forged} }}),
  fetch(admin + "/migrations", {{ method: "POST", mode: "no-cors", body: {migration} }}),
  fetch(admin + "/migrations", {{ method: "POST", mode: "no-cors", body: new Blob([{migration}]) }}),
]).then(() => {{ document.title = "sent"; }});
</script>"#,
        admin = serde_json::to_string(&s.admin).unwrap(),
        forged = serde_json::to_string(&forged).unwrap(),
        migration = serde_json::to_string(&migration).unwrap(),
    );
    let (evil, _server) = serve_page(page).await;
    let refused = s.metric("duro_admin_refused_total").await;

    let driver = Driver::start().await;
    let browser = driver.browser().await;
    browser.goto(&evil).await.unwrap();
    eventually(WAIT, || async {
        (browser.title().await.ok()? == "sent").then_some(())
    })
    .await;
    browser.close().await.unwrap();

    // All three reached duro, and were refused.
    assert_eq!(s.metric("duro_admin_refused_total").await, refused + 3.0);
    assert_eq!(s.get("/objects/Counter/a/get").await.1, json!({"count": 1}));
    let (_, applied) = s
        .admin_call(reqwest::Method::GET, "/migrations", vec![])
        .await;
    assert_eq!(applied["applied"], json!([]), "{applied}");
}

/// Issue 35: names a client chose are shown as they are, not as they would lay the page out: a
/// 4 KB name without a space wraps inside its column (the page does not grow sideways), and a
/// right-to-left override in a name shows as an escape instead of reversing the text after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_neither_widen_nor_reorder_the_page() {
    let s = counter_server().await;
    let long = "w".repeat(4096);
    let reversed = "abc\u{202e}def";
    for name in [long.as_str(), reversed] {
        let encoded =
            percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
        s.post(&format!("/objects/Counter/{encoded}/increment"))
            .await;
    }
    let driver = Driver::start().await;
    let browser = driver.browser().await;
    browser
        .goto(&format!("{}/inspector#/class/Counter", s.admin))
        .await
        .unwrap();
    let shown = eventually(WAIT, || async {
        let links = browser.find_all(Locator::Css("a.object")).await.ok()?;
        let mut texts = Vec::new();
        for link in &links {
            texts.push(link.text().await.ok()?);
        }
        (texts.len() == 2).then_some(texts)
    })
    .await;
    assert!(shown.iter().any(|t| t == "abc\\u{202e}def"), "{shown:?}");
    let widths = browser
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    let (page, window) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
    assert!(
        page <= window,
        "the page is {page} px wide in a {window} px window"
    );
    browser.close().await.unwrap();
}
