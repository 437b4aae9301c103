//! Input no user means, refused at the edge on both databases: control
//! characters in any string (issue 14, defect 1), lists over their
//! documented maximum (defect 6) and timestamps outside the sane range
//! (defect 9). Each refusal is `VALIDATION` naming the field, and stores
//! nothing.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::{Backend, TestApp, error_code, spawn_app};

/// Asserts that `body` is one `VALIDATION` error whose `field` is `field`
/// and whose message names it.
#[track_caller]
fn assert_refused(body: &Value, field: &str, case: &str) {
    assert_eq!(error_code(body), Some("VALIDATION"), "{case}: {body}");
    let error = &body["errors"][0];
    assert_eq!(error["extensions"]["field"], field, "{case}: {body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(field),
        "{case}: the message names {field}: {body}"
    );
}

/// Runs a mutation that must succeed; answers its payload.
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

/// A registered device's id, secret and pairing code.
async fn register(app: &TestApp) -> (String, String, String) {
    let body: Value = app
        .client
        .post(format!("{}/display/v1/register", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let field = |k: &str| body[k].as_str().unwrap().to_string();
    (
        field("deviceId"),
        field("deviceSecret"),
        field("pairingCode"),
    )
}

const CREATE_NOTICE: &str = "mutation($i: NoticeInput!) { createNotice(input: $i) { id } }";
const CREATE_GROUP: &str =
    "mutation($i: CreateDisplayGroupInput!) { createDisplayGroup(input: $i) { id } }";
const CREATE_PLAYLIST: &str = "mutation($i: PlaylistInput!) { createPlaylist(input: $i) { id } }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_are_refused_in_every_string_naming_the_field() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app(&backend.fresh().await).await;
        let (token, _) = app.sign_up("Controls", "owner@controls.example.org").await;
        let before = app.event_count().await;

        // NUL in sign-up (no token): PostgreSQL cannot store it.
        let body = app
            .gql(
                None,
                "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }",
                json!({"i": {"organization": "Null\u{0}Org", "email": "nul@controls.example.org",
                             "password": "correct horse battery"}}),
            )
            .await;
        assert_refused(&body, "organization", "NUL in signUp");

        let cases: Vec<(&str, &str, Value, &str)> = vec![
            // Variables, each kind of control character, nested objects.
            (
                "NUL in a name",
                CREATE_GROUP,
                json!({"i": {"name": "Lobby\u{0}"}}),
                "name",
            ),
            (
                "BEL in a title",
                CREATE_NOTICE,
                json!({"i": {"title": "Bell\u{7}", "body": "", "durationSeconds": 8}}),
                "title",
            ),
            (
                "DEL in a body",
                CREATE_NOTICE,
                json!({"i": {"title": "Del", "body": "x\u{7f}y", "durationSeconds": 8}}),
                "body",
            ),
            (
                "C1 in a body",
                CREATE_NOTICE,
                json!({"i": {"title": "C1", "body": "x\u{85}y", "durationSeconds": 8}}),
                "body",
            ),
            (
                "ESC in an emergency message",
                "mutation($i: StartEmergencyInput!) { startEmergency(input: $i) { id } }",
                json!({"i": {"message": "\u{1b}[31mFire", "severity": "CRITICAL"}}),
                "message",
            ),
            // A list inside an input object: the element's index is named.
            (
                "NUL in a list element",
                "mutation($i: PairDisplayInput!) { pairDisplay(input: $i) { id } }",
                json!({"i": {"code": "ABCD-EFGH", "name": "Hall", "tags": ["ok", "b\u{0}d"]}}),
                "tags.1",
            ),
            // Inline literals, with the GraphQL escape.
            (
                "NUL in a literal",
                r#"mutation { createNoticeCategory(name: "Menu\u0000") { id } }"#,
                json!({}),
                "name",
            ),
            (
                "NUL in a nested literal",
                r#"mutation { createDisplayGroup(input: {name: "Hall\u0000"}) { id } }"#,
                json!({}),
                "name",
            ),
            // A variable used inside a literal object.
            (
                "NUL in a variable inside a literal",
                r#"mutation($n: String!) { createDisplayGroup(input: {name: $n}) { id } }"#,
                json!({"n": "x\u{0}"}),
                "name",
            ),
            // Single-line names refuse tab and newline, and the bidi
            // controls that reorder what others see.
            (
                "tab in a name",
                CREATE_GROUP,
                json!({"i": {"name": "Lob\tby"}}),
                "name",
            ),
            (
                "newline in a title",
                CREATE_NOTICE,
                json!({"i": {"title": "Two\nlines", "body": "", "durationSeconds": 8}}),
                "title",
            ),
            (
                "RLO in a name",
                CREATE_PLAYLIST,
                json!({"i": {"name": "exe.\u{202e}gpj", "items": []}}),
                "name",
            ),
            (
                "isolate in a name",
                CREATE_PLAYLIST,
                json!({"i": {"name": "a\u{2066}b\u{2069}", "items": []}}),
                "name",
            ),
        ];
        for (case, query, variables, field) in cases {
            let body = app.gql(Some(&token), query, variables).await;
            assert_refused(&body, field, case);
        }
        assert_eq!(app.event_count().await, before, "nothing was stored");

        // What text legitimately holds still passes: a multi-line body with
        // a tab, a right-to-left name with its marks, bidi controls in
        // free text.
        ok(
            &app,
            &token,
            CREATE_NOTICE,
            json!({"i": {"title": "Menu", "body": "Soup\r\n\tBread \u{202e}x", "durationSeconds": 8}}),
        )
        .await;
        let playlist = ok(
            &app,
            &token,
            CREATE_PLAYLIST,
            json!({"i": {"name": "\u{5e9}\u{5dc}\u{5d5}\u{5dd}\u{200f} 1", "items": []}}),
        )
        .await;
        assert_eq!(playlist["id"].as_str().map(str::len), Some(36));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_over_their_maximum_are_refused_at_once() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app(&backend.fresh().await).await;
        let (token, _) = app.sign_up("Lists", "owner@lists.example.org").await;
        let playlist = ok(
            &app,
            &token,
            CREATE_PLAYLIST,
            json!({"i": {"name": "P", "items": []}}),
        )
        .await;
        let before = app.event_count().await;

        let ids: Vec<String> = (0..20_000)
            .map(|_| uuid::Uuid::new_v4().to_string())
            .collect();
        let cases: Vec<(&str, &str, Value, &str)> = vec![
            (
                "displayIds",
                "mutation($i: SignageScheduleInput!) { createSignageSchedule(input: $i) { id } }",
                json!({"i": {"name": "S", "startsOn": "2030-01-01", "endsOn": "2030-12-31",
                          "dayparts": [{"days": ["MON"], "start": "08:00", "end": "12:00"}],
                          "displayIds": ids, "playlistId": playlist["id"]}}),
                "displayIds",
            ),
            (
                "groupIds",
                "mutation($i: StartEmergencyInput!) { startEmergency(input: $i) { id } }",
                json!({"i": {"message": "Fire", "severity": "CRITICAL", "groupIds": ids}}),
                "groupIds",
            ),
            (
                "tags",
                "mutation($i: PairDisplayInput!) { pairDisplay(input: $i) { id } }",
                json!({"i": {"code": "ABCD-EFGH", "name": "Hall", "tags": ids}}),
                "tags",
            ),
            (
                "playlist items",
                CREATE_PLAYLIST,
                json!({"i": {"name": "Big", "items": ids.iter().map(|n| json!({"noticeId": n, "durationSeconds": 5})).take(10_000).collect::<Vec<_>>()}}),
                "items",
            ),
        ];
        for (case, query, variables, field) in cases {
            let started = Instant::now();
            let body = app.gql(Some(&token), query, variables).await;
            let took = started.elapsed();
            eprintln!("{backend:?} {case}: refused in {took:?}");
            assert_refused(&body, field, case);
            assert!(took < Duration::from_millis(500), "{case} took {took:?}");
        }

        // A literal list is bounded the same way.
        let literal = format!(
            "mutation {{ startEmergency(input: {{message: \"Fire\", severity: CRITICAL, groupIds: [{}]}}) {{ id }} }}",
            ids[..5_000]
                .iter()
                .map(|i| format!("\"{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let body = app.gql(Some(&token), &literal, json!({})).await;
        assert_refused(&body, "groupIds", "a literal list");

        assert_eq!(app.event_count().await, before, "nothing was stored");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_outside_the_sane_range_are_refused() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let app = spawn_app(&backend.fresh().await).await;
        let (token, _) = app.sign_up("Times", "owner@times.example.org").await;
        let notice = ok(
            &app,
            &token,
            CREATE_NOTICE,
            json!({"i": {"title": "Lunch", "body": "Soup", "durationSeconds": 8}}),
        )
        .await;
        let (_, secret, code) = register(&app).await;
        ok(
            &app,
            &token,
            "mutation($i: PairDisplayInput!) { pairDisplay(input: $i) { id } }",
            json!({"i": {"code": code, "name": "Hall"}}),
        )
        .await;
        let before = app.event_count().await;

        // GraphQL: arguments and input fields, far past and far future.
        for (at, field) in [
            ("-9999-01-01T00:00:00Z", "validFrom"),
            ("1899-12-31T23:59:59Z", "validFrom"),
            ("2999-01-01T00:00:00Z", "validTo"),
        ] {
            let body = app
                .gql(
                    Some(&token),
                    CREATE_NOTICE,
                    json!({"i": {"title": "T", "body": "", "durationSeconds": 8, field: at}}),
                )
                .await;
            assert_refused(&body, field, at);
        }
        let body = app
            .gql(
                Some(&token),
                "query($a: DateTime) { auditLog(filter: {from: $a}) { edges { cursor } } }",
                json!({"a": "-9999-01-01T00:00:00Z"}),
            )
            .await;
        assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("from"),
            "{body}"
        );

        // REST: a play report dated year -9999.
        for at in ["-9999-01-01T00:00:00Z", "1970-01-01T00:00:00Z"] {
            let response = app
                .client
                .post(format!("{}/display/v1/plays", app.address))
                .bearer_auth(&secret)
                .json(&json!({"reportId": uuid::Uuid::new_v4(), "plays": [
                    {"noticeId": notice["id"], "playedAt": at, "durationSeconds": 8}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 400, "{at}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "VALIDATION", "{body}");
            assert_eq!(body["error"]["field"], "plays.0.playedAt", "{body}");
        }
        assert_eq!(app.event_count().await, before, "nothing was stored");
    }
}
