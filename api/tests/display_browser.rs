//! The display player page in a real browser: Debian's headless Chromium,
//! driven through chromedriver (WebDriver), against Herald started in this
//! process on an SQLite file. It pairs the page as a display (after its
//! first code expired), schedules a notice with an image, raises and clears
//! an emergency, then stops the server and starts it again on the same port
//! and file to check that the page keeps playing offline, comes back by
//! itself, reports its plays, obeys a reload and shows when nothing is
//! scheduled.
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian packages
//! `chromium` and `chromium-driver`; CI installs them). Screenshots land in
//! the temp directory (`herald-display-*`); the path is printed.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::Settings;
use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};
use test_support::{TestApp, fixtures, free_port};
use uuid::Uuid;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const HOW: &str = "install Chromium and its WebDriver: apt-get install -y chromium chromium-driver";

/// A chromedriver process on a free port, killed when dropped together with
/// the Chromium it started (a failed test never closes its session).
struct Chromedriver {
    child: Child,
    url: String,
}

impl Chromedriver {
    async fn start(log: &Path) -> Self {
        assert!(Path::new(CHROMEDRIVER).exists(), "{HOW}");
        assert!(Path::new(CHROMIUM).exists(), "{HOW}");
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so the browsers it starts go with it.
            .process_group(0)
            .spawn()
            .expect(HOW);
        let driver = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                return driver;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium session with its own, empty profile.
    async fn browser(&self, profile: &Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    // Containers run tests as root, where the sandbox cannot start.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    "--window-size=1280,720",
                    "--no-first-run",
                    "--disable-crash-reporter",
                    "--disable-breakpad",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("a Chromium session through chromedriver")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Herald serving in this process on `listen` with the database at
/// `database_url`, retrying while the port is still held by a server just
/// stopped.
async fn start_server(database_url: &str, listen: SocketAddr) -> TestApp {
    let mut config = Settings::for_database(database_url);
    config.http.listen = listen;
    test_support::app::spawn_retrying(config, Duration::from_secs(10)).await
}

/// The value of a JavaScript expression in the page.
async fn eval(browser: &Client, expression: &str) -> Value {
    browser
        .execute(&format!("return {expression};"), Vec::new())
        .await
        .unwrap_or_else(|e| panic!("cannot evaluate `{expression}`: {e}"))
}

async fn text(browser: &Client, id: &str) -> String {
    let value = eval(
        browser,
        &format!("(document.getElementById('{id}') || {{}}).textContent || ''"),
    )
    .await;
    value.as_str().unwrap_or_default().trim().to_string()
}

async fn dataset(browser: &Client, key: &str) -> String {
    eval(browser, &format!("document.body.dataset.{key} || ''"))
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Polls `check` every 20 ms until it returns `Some`, for at most `within`;
/// returns the value and how long it took.
async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return (value, started.elapsed());
        }
        assert!(
            started.elapsed() < within,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until element `id` shows `expected`; returns how long it took.
async fn wait_for_text(browser: &Client, id: &str, expected: &str, within: Duration) -> Duration {
    wait_for(&format!("#{id} to show {expected:?}"), within, || async {
        (text(browser, id).await == expected).then_some(())
    })
    .await
    .1
}

async fn wait_for_dataset(browser: &Client, key: &str, expected: &str, within: Duration) {
    wait_for(&format!("data-{key}={expected}"), within, || async {
        (dataset(browser, key).await == expected).then_some(())
    })
    .await;
}

/// Takes a screenshot, saves it as `dir/name.png`, and checks it is a real
/// picture of the page: a PNG of the window's size with more than a few
/// colours (a blank or failed page is one colour).
async fn screenshot(browser: &Client, dir: &Path, name: &str) -> PathBuf {
    let bytes = browser.screenshot().await.expect("screenshot");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, &bytes).expect("write screenshot");
    let mut reader = png::Decoder::new(std::io::Cursor::new(&bytes))
        .read_info()
        .expect("the screenshot is a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let frame = reader.next_frame(&mut pixels).expect("the PNG decodes");
    assert!(
        frame.width >= 640 && frame.height >= 360,
        "{name}: {}x{}",
        frame.width,
        frame.height
    );
    let pixel = frame.line_size / frame.width as usize;
    let colours: std::collections::HashSet<&[u8]> = pixels[..frame.buffer_size()]
        .chunks(frame.line_size)
        .flat_map(|line| line.chunks(pixel))
        .collect();
    assert!(
        colours.len() > 16,
        "{name}: only {} colours, the page drew nothing ({})",
        colours.len(),
        path.display()
    );
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn display_pairs_plays_shows_emergencies_and_survives_a_server_restart() {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("herald-display-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("screenshots and logs in {}", dir.display());
    let database_url = format!("sqlite://{}", dir.join("herald.db").display());
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let base = format!("http://{listen}");

    let driver = Chromedriver::start(&dir.join("chromedriver.log")).await;
    let server = start_server(&database_url, listen).await;
    let browser = driver.browser(&dir.join("profile")).await;

    // The page's own files, with their types and a policy that lets them run.
    for (path, content_type) in [
        ("/display", "text/html"),
        ("/display/player.js", "text/javascript"),
        ("/display/player.css", "text/css"),
    ] {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert!(header("content-type").starts_with(content_type), "{path}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        assert_eq!(
            header("content-security-policy"),
            api::http::hardening::PLAYER_CSP,
            "{path}"
        );
    }

    // 1. A new display registers by itself and shows its pairing code.
    browser.goto(&format!("{base}/display")).await.unwrap();
    let (code, _) = wait_for("a pairing code", Duration::from_secs(15), || async {
        let code = text(&browser, "pairing-code").await;
        (code.len() == 9 && code.as_bytes()[4] == b'-').then_some(code)
    })
    .await;
    assert_eq!(dataset(&browser, "state").await, "pairing");
    screenshot(&browser, &dir, "1-pairing").await;

    // Its code expires unused: the page registers again and shows a new one.
    let device_id = eval(
        &browser,
        "JSON.parse(localStorage.getItem('herald.display.credentials')).deviceId",
    )
    .await;
    sqlx::query("UPDATE display_devices SET code_expires_at = 0 WHERE device_id = $1")
        .bind(device_id.as_str().expect("a stored device id"))
        .execute(&server.state.db.any)
        .await
        .unwrap();
    let (code, _) = wait_for("a new pairing code", Duration::from_secs(10), || async {
        let new = text(&browser, "pairing-code").await;
        (new.len() == 9 && new != code).then_some(new)
    })
    .await;

    // 2. A tenant pairs it and gives its group a default playlist.
    let email = format!("signage-{}@example.org", Uuid::new_v4().simple());
    let admin = server.api.sign_up_user("Lobby Ltd", &email).await;
    let display = admin
        .mutate(
            "pairDisplay",
            "mutation($i: PairDisplayInput!) { pairDisplay(input: $i) { id } }",
            json!({"i": {"code": code, "name": "Lobby"}}),
        )
        .await;
    let category = admin
        .mutate(
            "createNoticeCategory",
            "mutation { createNoticeCategory(name: \"Canteen\") { id } }",
            json!({}),
        )
        .await;
    let (status, uploaded) = admin
        .api
        .upload(Some(&admin.token), "soup.png", &fixtures::png(400, 300))
        .await;
    assert_eq!(status, 201, "upload failed: {uploaded}");
    let image = uploaded["id"].clone();
    let notice = admin
        .mutate(
            "createNotice",
            "mutation($i: NoticeInput!) { createNotice(input: $i) { id } }",
            json!({"i": {"title": "Soup of the day", "body": "Lentils, with bread",
                         "categoryId": category["id"], "mediaId": image}}),
        )
        .await;
    let playlist = admin
        .mutate(
            "createPlaylist",
            "mutation($i: PlaylistInput!) { createPlaylist(input: $i) { id } }",
            json!({"i": {"name": "Lobby loop", "items": [{"noticeId": notice["id"], "durationSeconds": 2}]}}),
        )
        .await;
    let group = admin
        .mutate(
            "createDisplayGroup",
            "mutation($i: CreateDisplayGroupInput!) { createDisplayGroup(input: $i) { id } }",
            json!({"i": {"name": "Ground floor", "defaultPlaylistId": playlist["id"]}}),
        )
        .await;
    admin
        .mutate(
            "moveDisplay",
            "mutation($id: ID!, $group: ID!) { moveDisplay(id: $id, groupId: $group) { id } }",
            json!({"id": display["id"], "group": group["id"]}),
        )
        .await;

    // 3. The page notices the pairing and plays the notice.
    wait_for_text(
        &browser,
        "slide-title",
        "Soup of the day",
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(dataset(&browser, "state").await, "playing");
    assert_eq!(text(&browser, "slide-body").await, "Lentils, with bread");
    assert_eq!(text(&browser, "slide-category").await, "Canteen");
    wait_for_dataset(&browser, "connection", "online", Duration::from_secs(10)).await;
    // The image came through the display API (with the device secret) and
    // shows from a blob: URL, which the player's CSP allows.
    wait_for("the slide's image", Duration::from_secs(10), || async {
        let image = eval(
            &browser,
            "(() => { const i = document.getElementById('slide-image'); \
             return [i.hidden, i.src.slice(0, 5), i.complete ? i.naturalWidth : 0]; })()",
        )
        .await;
        (image == json!([false, "blob:", 400])).then_some(())
    })
    .await;
    screenshot(&browser, &dir, "2-playing").await;
    // Each 2-second showing is queued as a play for the proof-of-play report.
    wait_for("a queued play", Duration::from_secs(10), || async {
        let queued = eval(
            &browser,
            "JSON.parse(localStorage.getItem('herald.display.plays') || '[]').length \
             + (JSON.parse(localStorage.getItem('herald.display.report') || 'null') || {plays: []}).plays.length",
        )
        .await;
        (queued.as_u64().unwrap_or(0) > 0).then_some(())
    })
    .await;

    // 4. An emergency takes over the screen within a second, and goes.
    let start_emergency = "mutation($i: StartEmergencyInput!) { startEmergency(input: $i) { id } }";
    let clear_emergency = "mutation($id: ID!) { clearEmergency(id: $id) { id } }";
    let sent = Instant::now();
    let emergency = admin
        .mutate(
            "startEmergency",
            start_emergency,
            json!({"i": {"message": "Fire drill", "severity": "HIGH"}}),
        )
        .await;
    let answered = sent.elapsed();
    wait_for_text(
        &browser,
        "emergency-message",
        "Fire drill",
        Duration::from_secs(5),
    )
    .await;
    let shown = sent.elapsed();
    eprintln!("emergency: mutation answered after {answered:?}, shown after {shown:?}");
    assert!(
        shown < Duration::from_millis(1000),
        "the emergency took {shown:?} to appear"
    );
    assert_eq!(dataset(&browser, "state").await, "emergency");
    screenshot(&browser, &dir, "3-emergency").await;
    admin
        .mutate(
            "clearEmergency",
            clear_emergency,
            json!({"id": emergency["id"]}),
        )
        .await;
    // The cleared override leaves once the (spread) refetch brings the
    // slides back.
    wait_for_dataset(&browser, "state", "playing", Duration::from_secs(5)).await;
    wait_for_text(
        &browser,
        "slide-title",
        "Soup of the day",
        Duration::from_secs(5),
    )
    .await;

    // 5. With the server gone, the page keeps playing what it has.
    server.stop().await;
    wait_for_dataset(&browser, "connection", "offline", Duration::from_secs(10)).await;
    let offline = Instant::now();
    while offline.elapsed() < Duration::from_secs(4) {
        assert_eq!(dataset(&browser, "state").await, "playing");
        assert_eq!(text(&browser, "slide-title").await, "Soup of the day");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    screenshot(&browser, &dir, "4-offline").await;

    // Back on the same port and database: the page reconnects by itself,
    // and pushes reach it again.
    let server = start_server(&database_url, listen).await;
    wait_for_dataset(&browser, "connection", "online", Duration::from_secs(40)).await;
    assert_eq!(text(&browser, "slide-title").await, "Soup of the day");

    // 6. The plays queued before and during the outage reach the server
    // (the player reports when it reconnects, besides every 30 s).
    let (counted, _) = wait_for("plays counted by the server", Duration::from_secs(20), || async {
        let now = chrono::Utc::now();
        let body = admin
            .gql(
                "query($n: ID!, $f: DateTime!, $t: DateTime!) { noticePlays(noticeId: $n, from: $f, to: $t) { displayId plays seconds } }",
                json!({"n": notice["id"], "f": now - chrono::Duration::hours(1), "t": now + chrono::Duration::hours(1)}),
            )
            .await;
        let rows = body["data"]["noticePlays"].as_array()?;
        let plays: i64 = rows.iter().filter_map(|r| r["plays"].as_i64()).sum();
        (plays > 0).then(|| (plays, rows[0]["displayId"].clone()))
    })
    .await;
    assert_eq!(counted.1, display["id"], "plays of this display");
    eprintln!("plays reported: {}", counted.0);

    // 7. Pushes reach it again after the restart.
    let sent = Instant::now();
    let evacuate = admin
        .mutate(
            "startEmergency",
            start_emergency,
            json!({"i": {"message": "Evacuate now", "severity": "CRITICAL"}}),
        )
        .await;
    wait_for_text(
        &browser,
        "emergency-message",
        "Evacuate now",
        Duration::from_secs(5),
    )
    .await;
    eprintln!(
        "after the restart, the emergency showed after {:?}",
        sent.elapsed()
    );
    screenshot(&browser, &dir, "5-emergency-after-restart").await;

    // 8. A remote reload: the page loads again and, still paired, shows at
    // once what its stored manifest says.
    eval(&browser, "window.beforeReload = true").await;
    admin
        .mutate(
            "reloadDisplay",
            "mutation($id: ID!) { reloadDisplay(id: $id) { id } }",
            json!({"id": display["id"]}),
        )
        .await;
    wait_for("the page to reload", Duration::from_secs(10), || async {
        let reloaded = eval(&browser, "window.beforeReload === undefined").await;
        (reloaded == json!(true)).then_some(())
    })
    .await;
    wait_for_text(
        &browser,
        "emergency-message",
        "Evacuate now",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(dataset(&browser, "state").await, "emergency");

    // 9. Cleared, and out of its group: nothing scheduled.
    admin
        .mutate(
            "clearEmergency",
            clear_emergency,
            json!({"id": evacuate["id"]}),
        )
        .await;
    admin
        .mutate(
            "moveDisplay",
            "mutation($id: ID!) { moveDisplay(id: $id, groupId: null) { id } }",
            json!({"id": display["id"]}),
        )
        .await;
    wait_for_dataset(&browser, "state", "empty", Duration::from_secs(5)).await;
    assert_eq!(text(&browser, "empty-message").await, "Nothing scheduled");

    browser.close().await.expect("close the browser");
    server.stop().await;
    drop(driver);
    // Keep the screenshots; the browser profile and the database go.
    let _ = std::fs::remove_dir_all(dir.join("profile"));
    for file in ["herald.db", "herald.db-wal", "herald.db-shm"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    eprintln!("display browser test took {:?}", started.elapsed());
}

/// GraphiQL runs in a real browser from the assets Herald serves itself,
/// under its Content-Security-Policy (scripts from 'self' only), and loads
/// the schema through the standard introspection query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphiql_runs_offline_from_vendored_assets_under_its_policy() {
    let dir = std::env::temp_dir().join(format!("herald-graphiql-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let database_url = format!("sqlite://{}", dir.join("herald.db").display());
    let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let driver = Chromedriver::start(&dir.join("chromedriver.log")).await;
    let _server = start_server(&database_url, listen).await;
    let browser = driver.browser(&dir.join("profile")).await;

    browser
        .goto(&format!("http://{listen}/graphql"))
        .await
        .unwrap();
    wait_for("GraphiQL to render", Duration::from_secs(30), || async {
        let rendered = eval(
            &browser,
            "!!document.querySelector('.graphiql-container .graphiql-editors')",
        )
        .await;
        (rendered == Value::Bool(true)).then_some(())
    })
    .await;
    // The schema arrived: the documentation explorer can be opened on it.
    wait_for("the schema to load", Duration::from_secs(30), || async {
        let loaded = eval(
            &browser,
            "(() => { const b = document.querySelector('[aria-label=\"Show Documentation Explorer\"]'); if (b) b.click(); return !!document.querySelector('.graphiql-doc-explorer') && document.body.innerText.includes('Mutation'); })()",
        )
        .await;
        (loaded == Value::Bool(true)).then_some(())
    })
    .await;
    screenshot(&browser, &dir, "graphiql").await;
    browser.close().await.unwrap();
}
