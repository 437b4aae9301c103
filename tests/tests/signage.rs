//! Digital signage end to end over HTTP: registering and pairing a display,
//! content, the manifest with its ETag, live pushes (also across two
//! processes on one PostgreSQL), emergency overrides, presence, proof of
//! play, time travel, and every bad-input rule of the signage issue.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{Backend, TestApp, error_code, eventually, spawn_app};

/// A registered display: its secret and pairing code.
struct Device {
    id: String,
    secret: String,
    code: String,
}

async fn register(app: &TestApp) -> Device {
    let response = app
        .client
        .post(format!("{}/display/v1/register", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    Device {
        id: body["deviceId"].as_str().unwrap().into(),
        secret: body["deviceSecret"].as_str().unwrap().into(),
        code: body["pairingCode"].as_str().unwrap().into(),
    }
}

async fn get(app: &TestApp, device: &Device, path: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{path}", app.address))
        .bearer_auth(&device.secret)
        .send()
        .await
        .unwrap()
}

async fn manifest(app: &TestApp, device: &Device) -> Value {
    let response = get(app, device, "/display/v1/manifest").await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn pair(app: &TestApp, token: &str, code: &str, name: &str) -> Value {
    app.gql(
        Some(token),
        "mutation($i: PairDisplayInput!) { pairDisplay(input: $i) { id name online groupId } }",
        json!({"i": {"code": code, "name": name, "timeZone": "Europe/Berlin"}}),
    )
    .await
}

/// Runs a mutation and answers its payload, failing on errors.
async fn ok(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let body = app.gql(Some(token), query, variables).await;
    assert!(body["errors"].is_null(), "{query}: {body}");
    body["data"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone()
}

/// A notice in a playlist that is the default of a new group holding `display`.
async fn lobby_content(app: &TestApp, token: &str, display: &str) -> (String, String, String) {
    let notice = ok(
        app,
        token,
        "mutation { createNotice(input: {title: \"Lunch\", body: \"Soup\", durationSeconds: 8}) { id } }",
        json!({}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let playlist = ok(
        app,
        token,
        "mutation($n: ID!) { createPlaylist(input: {name: \"Day\", items: [{noticeId: $n, durationSeconds: 6}]}) { id } }",
        json!({"n": notice}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let group = ok(
        app,
        token,
        "mutation($p: ID!) { createDisplayGroup(input: {name: \"Lobby\", defaultPlaylistId: $p}) { id } }",
        json!({"p": playlist}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        app,
        token,
        "mutation($d: ID!, $g: ID) { moveDisplay(id: $d, groupId: $g) { id } }",
        json!({"d": display, "g": group}),
    )
    .await;
    (notice, playlist, group)
}

/// An open event stream.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp, device: &Device) -> Self {
        let response = get(app, device, "/display/v1/events").await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut events = Self {
            response,
            buffer: String::new(),
        };
        let (name, _) = events.next(Duration::from_secs(5)).await.expect("hello");
        assert_eq!(name, "hello");
        events
    }

    /// The next event (name, data), skipping comments.
    async fn next(&mut self, within: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.into();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = v.into();
                    }
                }
                if name.is_empty() {
                    continue;
                }
                return Some((name, serde_json::from_str(&data).unwrap_or(Value::Null)));
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_pairs_plays_its_group_default_and_obeys_an_emergency_at_once() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app(&backend.fresh().await).await;
        let (token, _) = app.sign_up("Signs", "owner@signs.example.org").await;
        let device = register(&app).await;
        assert_eq!(device.code.len(), 9, "ABCD-EFGH");

        // Before pairing: the code, no manifest.
        let status: Value = get(&app, &device, "/display/v1/status")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(status["paired"], false);
        assert_eq!(status["pairingCode"], device.code.as_str());
        assert_eq!(
            get(&app, &device, "/display/v1/manifest").await.status(),
            409
        );

        // Typed sloppily: case and dashes do not matter.
        let sloppy = device.code.to_lowercase().replace('-', " ");
        let paired = pair(&app, &token, &sloppy, "Lobby left").await;
        assert_eq!(
            paired["data"]["pairDisplay"]["id"],
            device.id.as_str(),
            "{paired}"
        );
        let status: Value = get(&app, &device, "/display/v1/status")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(status["paired"], true);
        assert_eq!(status["name"], "Lobby left");
        let empty = manifest(&app, &device).await;
        assert_eq!(empty["source"]["kind"], "NONE");
        assert_eq!(empty["slides"], json!([]));

        let mut events = Events::open(&app, &device).await;
        let (notice, _, group) = lobby_content(&app, &token, &device.id).await;
        // The move changed the manifest: pushed.
        let (name, data) = events.next(Duration::from_secs(5)).await.expect("push");
        assert_eq!(name, "manifest-changed");
        assert_eq!(data["emergency"], Value::Null);
        let shown = manifest(&app, &device).await;
        assert_eq!(shown["source"]["kind"], "GROUP_DEFAULT");
        assert_eq!(shown["source"]["id"], group.as_str());
        assert_eq!(shown["slides"][0]["noticeId"], notice.as_str());
        assert_eq!(shown["slides"][0]["title"], "Lunch");
        assert_eq!(shown["slides"][0]["durationSeconds"], 6);

        // ETag: unchanged → 304.
        let first = get(&app, &device, "/display/v1/manifest").await;
        let etag = first.headers()["etag"].to_str().unwrap().to_string();
        let again = app
            .client
            .get(format!("{}/display/v1/manifest", app.address))
            .bearer_auth(&device.secret)
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
        assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);

        // An override reaches the open stream within a second, carrying itself.
        let sent = Instant::now();
        let emergency = ok(
            &app,
            &token,
            "mutation { startEmergency(input: {message: \"Fire drill\", severity: HIGH}) { id } }",
            json!({}),
        )
        .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (name, data) = events.next(Duration::from_secs(5)).await.expect("override");
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "{:?}",
            sent.elapsed()
        );
        assert_eq!(name, "manifest-changed");
        assert_eq!(data["emergency"]["message"], "Fire drill");
        assert_eq!(data["emergency"]["severity"], "HIGH");
        let during = manifest(&app, &device).await;
        assert_eq!(during["source"]["kind"], "EMERGENCY");
        assert_ne!(
            get(&app, &device, "/display/v1/manifest").await.headers()["etag"]
                .to_str()
                .unwrap(),
            etag
        );
        let started = chrono::Utc::now();

        ok(
            &app,
            &token,
            "mutation($e: ID!) { clearEmergency(id: $e) { id } }",
            json!({"e": emergency}),
        )
        .await;
        let (_, data) = events.next(Duration::from_secs(5)).await.expect("cleared");
        assert_eq!(data["emergency"], Value::Null);
        assert_eq!(
            manifest(&app, &device).await["source"]["kind"],
            "GROUP_DEFAULT"
        );

        // Audited: who started and who cleared it.
        let audited = eventually(|| async {
            let body = app
                .gql(
                    Some(&token),
                    "{ auditLog(first: 100) { edges { node { actor action target summary } } } }",
                    json!({}),
                )
                .await;
            let edges = body["data"]["auditLog"]["edges"].as_array()?.clone();
            let actions: Vec<String> = edges
                .iter()
                .map(|e| e["node"]["action"].as_str().unwrap_or_default().to_string())
                .collect();
            (actions.contains(&"EmergencyStarted".to_string())
                && actions.contains(&"EmergencyCleared".to_string()))
            .then_some(edges)
        })
        .await;
        let started_row = audited
            .iter()
            .find(|e| e["node"]["action"] == "EmergencyStarted")
            .unwrap();
        assert!(
            started_row["node"]["actor"]
                .as_str()
                .unwrap()
                .starts_with("user:")
        );
        assert!(
            started_row["node"]["summary"]
                .as_str()
                .unwrap()
                .contains("Fire drill"),
            "{started_row}"
        );

        // Remote reload.
        ok(
            &app,
            &token,
            "mutation($d: ID!) { reloadDisplay(id: $d) { id } }",
            json!({"d": device.id}),
        )
        .await;
        let mut seen = Vec::new();
        while let Some((name, data)) = events.next(Duration::from_secs(3)).await {
            seen.push((name.clone(), data.clone()));
            if name == "command" {
                break;
            }
        }
        assert!(
            seen.iter()
                .any(|(n, d)| n == "command" && d["command"] == "reload"),
            "{seen:?}"
        );

        // Presence: connected → ONLINE (a transition event), listed.
        api::signage::presence::tick(&app.state).await.unwrap();
        let listed = eventually(|| async {
            let listed = ok(&app, &token, "{ displays { id online } }", json!({})).await;
            (listed[0]["online"] == true).then_some(listed)
        })
        .await;
        assert_eq!(listed[0]["id"], device.id.as_str());

        // Time travel: during the override, and now.
        let then = ok(
            &app,
            &token,
            "query($d: ID!, $t: DateTime) { displayManifest(displayId: $d, asOf: $t) { source emergency { message } slides { title } } }",
            json!({"d": device.id, "t": started}),
        )
        .await;
        assert_eq!(then["source"], "EMERGENCY", "{then}");
        assert_eq!(then["emergency"]["message"], "Fire drill");
        let now = ok(
            &app,
            &token,
            "query($d: ID!) { displayManifest(displayId: $d) { source slides { title } } }",
            json!({"d": device.id}),
        )
        .await;
        assert_eq!(now["source"], "GROUP_DEFAULT");
        assert_eq!(now["slides"][0]["title"], "Lunch");
    }
}

async fn plays(app: &TestApp, device: &Device, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/display/v1/plays", app.address))
        .bearer_auth(&device.secret)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plays_are_counted_once_late_ones_too_and_survive_deleting_the_notice() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    let (token, _) = app.sign_up("Plays", "owner@plays.example.org").await;
    let device = register(&app).await;
    pair(&app, &token, &device.code, "Canteen").await;
    let (notice, _, _) = lobby_content(&app, &token, &device.id).await;
    let now = chrono::Utc::now();
    let week_ago = now - chrono::Duration::days(7);
    let report = json!({"reportId": uuid::Uuid::new_v4(), "plays": [
        {"noticeId": notice, "playedAt": now, "durationSeconds": 6},
        {"noticeId": notice, "playedAt": now, "durationSeconds": 6},
        {"noticeId": notice, "playedAt": week_ago, "durationSeconds": 6},
    ]});
    assert_eq!(
        plays(&app, &device, report.clone()).await,
        (200, json!({"accepted": 3, "duplicate": false}))
    );
    let events = app.event_count().await;
    // The same report again (the answer was lost): accepted, nothing added.
    assert_eq!(
        plays(&app, &device, report).await,
        (200, json!({"accepted": 0, "duplicate": true}))
    );
    assert_eq!(app.event_count().await, events);

    ok(
        &app,
        &token,
        "mutation($n: ID!) { deleteNotice(id: $n) { id } }",
        json!({"n": notice}),
    )
    .await;
    let counted = ok(
        &app,
        &token,
        "query($n: ID!, $f: DateTime!, $t: DateTime!) { noticePlays(noticeId: $n, from: $f, to: $t) { displayId plays seconds } }",
        json!({"n": notice, "f": week_ago - chrono::Duration::hours(1), "t": now + chrono::Duration::hours(1)}),
    )
    .await;
    let counted = counted.as_array().unwrap();
    assert_eq!(counted.len(), 2, "two hours: {counted:?}");
    assert_eq!(
        counted
            .iter()
            .map(|r| r["plays"].as_i64().unwrap())
            .sum::<i64>(),
        3
    );
    assert_eq!(counted[0]["displayId"], device.id.as_str());
    // The deleted notice is gone from the manifest but still known for
    // late reports.
    assert_eq!(manifest(&app, &device).await["slides"], json!([]));
    let late = json!({"reportId": uuid::Uuid::new_v4(), "plays": [
        {"noticeId": notice, "playedAt": now, "durationSeconds": 6}]});
    assert_eq!(plays(&app, &device, late).await.0, 200);

    // A replay rebuilds the same read model.
    let live = eventually(|| async {
        let rows = signage_rows(&app).await;
        (rows.2.iter().map(|r| r.4).sum::<i64>() == 4).then_some(rows)
    })
    .await;
    app.state
        .projectors
        .replay(Some("signage"), Duration::from_secs(5), |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(signage_rows(&app).await, live);
}

type Rows = (
    Vec<(String, String, i64)>,
    Vec<(String, String, String, i64)>,
    Vec<(String, String, String, i64, i64)>,
);

/// Every row of the signage read model, in a stable order.
async fn signage_rows(app: &TestApp) -> Rows {
    let db = &app.state.db.any;
    (
        sqlx::query_as("SELECT tenant_id, state, updated_at FROM rm_signage ORDER BY tenant_id")
            .fetch_all(db)
            .await
            .unwrap(),
        sqlx::query_as("SELECT id, tenant_id, profile, paired_at FROM rm_displays ORDER BY id")
            .fetch_all(db)
            .await
            .unwrap(),
        sqlx::query_as(
            "SELECT notice_id, display_id, tenant_id, hour, plays FROM rm_notice_plays ORDER BY notice_id, display_id, hour",
        )
        .fetch_all(db)
        .await
        .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signage_input_gets_a_typed_error_and_stores_nothing() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    let (token, _) = app.sign_up("Bad", "owner@bad.example.org").await;
    let (other, _) = app.sign_up("Other", "owner@other.example.org").await;
    let device = register(&app).await;
    pair(&app, &token, &device.code, "Hall").await;
    let (notice, playlist, group) = lobby_content(&app, &token, &device.id).await;
    let before = app.event_count().await;

    let code_of = |body: &Value| error_code(body).map(str::to_string);
    // Wrong code; a code already used (by another tenant here).
    assert_eq!(
        code_of(&pair(&app, &token, "ZZZZ-ZZZZ", "x").await).as_deref(),
        Some("NOT_FOUND")
    );
    assert_eq!(
        code_of(&pair(&app, &other, &device.code, "mine").await).as_deref(),
        Some("NOT_FOUND")
    );
    // An expired code.
    let stale = register(&app).await;
    sqlx::query("UPDATE display_devices SET code_expires_at = 0 WHERE device_id = $1")
        .bind(&stale.id)
        .execute(&app.state.db.any)
        .await
        .unwrap();
    assert_eq!(
        code_of(&pair(&app, &token, &stale.code, "late").await).as_deref(),
        Some("NOT_FOUND")
    );
    assert_eq!(get(&app, &stale, "/display/v1/status").await.status(), 401);

    // A display secret is no key to anything else.
    let as_display = app
        .gql(Some(&device.secret), "{ displays { id } }", json!({}))
        .await;
    assert_eq!(error_code(&as_display), Some("FORBIDDEN"), "{as_display}");
    let mutate = app
        .gql(
            Some(&device.secret),
            "mutation { startEmergency(input: {message: \"x\", severity: HIGH}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&mutate), Some("FORBIDDEN"));
    // Nor is a member token a display.
    let member_manifest = app
        .client
        .get(format!("{}/display/v1/manifest", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(member_manifest.status(), 401);

    // Another tenant cannot see or touch the display or the content.
    for query in [
        "mutation($d: ID!) { renameDisplay(id: $d, name: \"mine\") { id } }",
        "mutation($d: ID!) { reloadDisplay(id: $d) { id } }",
        "query($d: ID!) { displayManifest(displayId: $d) { source } }",
    ] {
        let body = app.gql(Some(&other), query, json!({"d": device.id})).await;
        assert_eq!(error_code(&body), Some("NOT_FOUND"), "{query}: {body}");
    }
    let foreign = app
        .gql(
            Some(&other),
            "mutation($n: ID!) { createPlaylist(input: {name: \"x\", items: [{noticeId: $n, durationSeconds: 5}]}) { id } }",
            json!({"n": notice}),
        )
        .await;
    assert_eq!(error_code(&foreign), Some("NOT_FOUND"));

    // Content rules.
    let bad_notice = app
        .gql(
            Some(&token),
            "mutation { createNotice(input: {title: \"x\", validFrom: \"2027-01-02T00:00:00Z\", validTo: \"2027-01-01T00:00:00Z\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&bad_notice), Some("VALIDATION"));
    assert_eq!(bad_notice["errors"][0]["extensions"]["field"], "validTo");
    let schedule = |name: &str, start: &str, end: &str| {
        json!({"i": {"name": name, "priority": 5, "startsOn": "2027-01-01", "endsOn": "2027-12-31",
            "dayparts": [{"days": ["MON", "TUE"], "start": start, "end": end}],
            "groupIds": [group], "playlistId": playlist}})
    };
    const CREATE: &str =
        "mutation($i: SignageScheduleInput!) { createSignageSchedule(input: $i) { id name } }";
    let backwards = app
        .gql(Some(&token), CREATE, schedule("Lunch", "14:00", "11:30"))
        .await;
    assert_eq!(error_code(&backwards), Some("VALIDATION"), "{backwards}");
    assert_eq!(
        backwards["errors"][0]["extensions"]["field"],
        "dayparts.0.end"
    );
    let after_bad = app.event_count().await;
    assert_eq!(after_bad, before, "nothing stored by refused input");
    let lunch = ok(&app, &token, CREATE, schedule("Lunch", "11:30", "14:00")).await;
    let clash = app
        .gql(Some(&token), CREATE, schedule("Specials", "13:00", "15:00"))
        .await;
    assert_eq!(error_code(&clash), Some("CONFLICT"));
    let message = clash["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("Lunch"),
        "names the other schedule: {message}"
    );
    assert!(message.contains(lunch["id"].as_str().unwrap()));
    let stored = app.event_count().await;

    // Play reports: unknown notice, from the future, too many, malformed.
    let unknown = json!({"reportId": uuid::Uuid::new_v4(), "plays": [
        {"noticeId": uuid::Uuid::new_v4(), "playedAt": chrono::Utc::now(), "durationSeconds": 5}]});
    let (status, body) = plays(&app, &device, unknown).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "plays.0.noticeId");
    let future = json!({"reportId": uuid::Uuid::new_v4(), "plays": [
        {"noticeId": notice, "playedAt": chrono::Utc::now() + chrono::Duration::hours(1), "durationSeconds": 5}]});
    let (status, body) = plays(&app, &device, future).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["field"], "plays.0.playedAt");
    let many: Vec<Value> = (0..501)
        .map(|_| json!({"noticeId": notice, "playedAt": chrono::Utc::now(), "durationSeconds": 5}))
        .collect();
    let (status, _) = plays(
        &app,
        &device,
        json!({"reportId": uuid::Uuid::new_v4(), "plays": many}),
    )
    .await;
    assert_eq!(status, 413);
    let (status, _) = plays(&app, &device, json!({"plays": []})).await;
    assert_eq!(status, 400);
    assert_eq!(app.event_count().await, stored, "no refused report stored");

    // Unpaired: the secret stops working.
    ok(
        &app,
        &token,
        "mutation($d: ID!) { unpairDisplay(id: $d) { id } }",
        json!({"d": device.id}),
    )
    .await;
    assert_eq!(
        get(&app, &device, "/display/v1/manifest").await.status(),
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_rate_limited_per_ip() {
    let mut config = api::Settings::for_database(&test_support::fresh_sqlite());
    config.signage.registrations_per_minute = 3;
    let app = test_support::spawn_with(config).await;
    for _ in 0..3 {
        register(&app).await;
    }
    let refused = app
        .client
        .post(format!("{}/display/v1/register", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_through_one_process_reaches_a_display_connected_to_another() {
    let url = test_support::fresh_postgres().await;
    let one = spawn_app(&url).await;
    let two = spawn_app(&url).await;
    let (token, _) = one.sign_up("Two", "owner@two.example.org").await;
    let device = register(&two).await;
    pair(&one, &token, &device.code, "Far").await;
    let mut events = Events::open(&two, &device).await;
    let sent = Instant::now();
    ok(
        &one,
        &token,
        "mutation { startEmergency(input: {message: \"Evacuate\", severity: CRITICAL}) { id } }",
        json!({}),
    )
    .await;
    let (name, data) = events
        .next(Duration::from_secs(5))
        .await
        .expect("push crossed processes");
    assert_eq!(name, "manifest-changed");
    assert_eq!(data["emergency"]["message"], "Evacuate");
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_shows_a_media_asset_which_only_its_tenants_displays_can_fetch() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    let (token, _) = app.sign_up("Pics", "owner@pics.example.org").await;
    let (other, _) = app.sign_up("Else", "owner@else.example.org").await;
    let image = test_support::png(4, 3);
    let (status, uploaded) = app.upload(Some(&token), "menu.png", &image).await;
    assert_eq!(status, 201, "{uploaded}");
    let asset = uploaded["id"].as_str().unwrap().to_string();
    let device = register(&app).await;
    pair(&app, &token, &device.code, "Canteen").await;
    let stranger = register(&app).await;
    pair(&app, &other, &stranger.code, "Elsewhere").await;

    // A notice with the image, through a schedule targeting the display.
    let notice = ok(
        &app,
        &token,
        "mutation($m: ID) { createNotice(input: {title: \"Menu\", mediaId: $m}) { id mediaId } }",
        json!({"m": asset}),
    )
    .await;
    assert_eq!(notice["mediaId"], asset.as_str());
    let playlist = ok(
        &app,
        &token,
        "mutation($n: ID!) { createPlaylist(input: {name: \"Menu\", items: [{noticeId: $n, durationSeconds: 5}]}) { id } }",
        json!({"n": notice["id"]}),
    )
    .await;
    let every_day = json!({"i": {"name": "Always", "startsOn": "2020-01-01", "endsOn": "2100-01-01",
        "dayparts": [{"days": ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"], "start": "00:00", "end": "23:59"}],
        "displayIds": [device.id], "playlistId": playlist["id"]}});
    ok(
        &app,
        &token,
        "mutation($i: SignageScheduleInput!) { createSignageSchedule(input: $i) { id } }",
        every_day,
    )
    .await;
    let shown = manifest(&app, &device).await;
    assert_eq!(shown["source"]["kind"], "SCHEDULE", "{shown}");
    assert_eq!(shown["slides"][0]["mediaId"], asset.as_str());

    let path = format!("/display/v1/media/{asset}");
    let fetched = get(&app, &device, &path).await;
    assert_eq!(fetched.status(), 200);
    assert_eq!(fetched.headers()["content-type"], "image/png");
    assert_eq!(fetched.bytes().await.unwrap().as_ref(), image.as_slice());
    // Another tenant's display: as if it did not exist.
    assert_eq!(get(&app, &stranger, &path).await.status(), 404);
    // A media id of another tenant in a notice: NOT_FOUND, nothing stored.
    let foreign = app
        .gql(
            Some(&other),
            "mutation($m: ID) { createNotice(input: {title: \"x\", mediaId: $m}) { id } }",
            json!({"m": asset}),
        )
        .await;
    assert_eq!(error_code(&foreign), Some("NOT_FOUND"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_pushed_to_exactly_the_displays_whose_manifest_it_changes() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    let (token, _) = app.sign_up("Exact", "owner@exact.example.org").await;
    let lobby = register(&app).await;
    let kitchen = register(&app).await;
    pair(&app, &token, &lobby.code, "Lobby").await;
    pair(&app, &token, &kitchen.code, "Kitchen").await;
    let (notice, _, lobby_group) = lobby_content(&app, &token, &lobby.id).await;
    let mut lobby_events = Events::open(&app, &lobby).await;
    let mut kitchen_events = Events::open(&app, &kitchen).await;

    // An override of the lobby group only.
    ok(
        &app,
        &token,
        "mutation($g: ID!) { startEmergency(input: {message: \"Lobby closed\", severity: WARNING, groupIds: [$g]}) { id } }",
        json!({"g": lobby_group}),
    )
    .await;
    let (_, data) = lobby_events.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(data["emergency"]["message"], "Lobby closed");
    assert!(
        kitchen_events
            .next(Duration::from_millis(1500))
            .await
            .is_none(),
        "the kitchen's manifest did not change"
    );
    assert_eq!(manifest(&app, &kitchen).await["source"]["kind"], "NONE");

    // Editing a notice nobody shows (the lobby is overridden) pushes nothing.
    ok(
        &app,
        &token,
        "mutation($n: ID!) { updateNotice(id: $n, input: {title: \"Dinner\"}) { id } }",
        json!({"n": notice}),
    )
    .await;
    assert!(
        lobby_events
            .next(Duration::from_millis(1500))
            .await
            .is_none()
    );
    assert!(
        kitchen_events
            .next(Duration::from_millis(200))
            .await
            .is_none()
    );
}

/// A rebuild of the read models replays every signage event, but pushes
/// nothing: a display hears only of changes made now, not of old ones
/// rebuilt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_pushes_nothing_to_connected_displays() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app(&backend.fresh().await).await;
        let (token, _) = app.sign_up("Signs", "owner@signs.example.org").await;
        let device = register(&app).await;
        pair(&app, &token, &device.code, "Lobby").await;
        let mut events = Events::open(&app, &device).await;
        lobby_content(&app, &token, &device.id).await;
        let (name, _) = events.next(Duration::from_secs(5)).await.expect("push");
        assert_eq!(name, "manifest-changed");

        let replayed = app
            .state
            .projectors
            .replay(None, Duration::from_secs(5), |_, _, _| {})
            .await
            .unwrap();
        assert!(replayed.events > 0, "the rebuild applied the log");
        let heard = events.next(Duration::from_secs(1)).await;
        assert!(heard.is_none(), "the rebuild pushed {heard:?}");

        // The stream is alive: a change made now is pushed.
        ok(
            &app,
            &token,
            "mutation { startEmergency(input: {message: \"Drill\", severity: HIGH}) { id } }",
            json!({}),
        )
        .await;
        let (name, data) = events.next(Duration::from_secs(5)).await.expect("push");
        assert_eq!(name, "manifest-changed");
        assert_eq!(data["emergency"]["message"], "Drill");
    }
}
