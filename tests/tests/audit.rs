//! Black-box tests of the audit trail: a busy tenant's export verifies in every
//! format; an altered, deleted or reordered row is detected in the database
//! and in an exported file; tenants and roles are kept apart; replay
//! reproduces identical hashes; the export streams page by page.

use std::path::PathBuf;
use std::time::Duration;

use api::audit::cli::{CheckError, VERIFY_PAGE_ROWS, verify_database, verify_file};
use domain::audit::{BrokenReason, Head, Verified};
use projections::audit::AuditQueries;
use serde_json::{Value, json};
use test_support::{Backend, TestApp, database, error_code, on_both_databases, spawn_app};
use uuid::Uuid;

on_both_databases!(
    a_busy_tenants_export_verifies_in_every_format,
    tampering_with_the_database_is_detected,
    tampering_with_an_export_is_detected,
    tenants_and_roles_see_only_what_they_may,
    replay_reproduces_identical_rows_and_hashes,
    the_export_streams_page_by_page_without_buffering,
);

const FORMATS: [&str; 3] = ["ndjson", "json", "csv"];

/// Signs up and drives a few hundred events through the API; returns the
/// owner's token and the tenant id.
async fn busy_tenant(app: &TestApp, posts_per_campaign: usize) -> (String, String) {
    let (token, tenant) = app.sign_up("Acme", "ada@example.org").await;
    for c in 0..3 {
        let campaign = app.create_campaign(&token, &format!("Campaign {c}")).await;
        for p in 0..posts_per_campaign {
            let post = app
                .create_post(&token, &campaign, &format!("post {p}, \"quoted\" #tag"))
                .await;
            if p % 3 == 0 {
                let body = app
                    .gql(
                        Some(&token),
                        "mutation($i: SchedulePostInput!) { schedulePost(input: $i) { id } }",
                        json!({"i": {"postId": post, "at": "2030-03-25T08:00:00Z"}}),
                    )
                    .await;
                assert!(body["errors"].is_null(), "{body}");
            }
        }
        app.gql(
            Some(&token),
            "mutation($id: ID!) { activateCampaign(id: $id) { id } }",
            json!({"id": campaign}),
        )
        .await;
    }
    // The tests read the audit tables behind the API.
    app.settled().await;
    (token, tenant)
}

fn temp_file(ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!("herald-audit-{}.{ext}", Uuid::new_v4().simple()))
}

/// GETs the export; returns status and body.
async fn export(app: &TestApp, token: Option<&str>, params: &[(&str, &str)]) -> (u16, String) {
    let mut request = app
        .client
        .get(format!("{}/api/v1/audit/export", app.address))
        .query(params);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("request succeeds");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn export_to_file(app: &TestApp, token: &str, params: &[(&str, &str)]) -> PathBuf {
    let format = params
        .iter()
        .find(|(k, _)| *k == "format")
        .map_or("ndjson", |(_, v)| v);
    let (status, body) = export(app, Some(token), params).await;
    assert_eq!(status, 200, "{body}");
    let path = temp_file(format);
    std::fs::write(&path, body).unwrap();
    path
}

fn queries(app: &TestApp) -> AuditQueries {
    AuditQueries::new(app.state.db.any.clone())
}

async fn stored_head(app: &TestApp, tenant: &str) -> Head {
    queries(app).head(tenant).await.unwrap().expect("a head")
}

async fn verify_db(app: &TestApp, tenant: &str) -> Result<Verified, CheckError> {
    verify_database(&queries(app), tenant, VERIFY_PAGE_ROWS).await
}

fn broken_seq(result: Result<Verified, CheckError>) -> (i64, String) {
    match result {
        Err(CheckError::Broken(b)) => (b.seq, b.reason.to_string()),
        Err(CheckError::Malformed { seq, message, .. }) => (seq.unwrap_or(-1), message),
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

async fn audit_log(
    app: &TestApp,
    token: &str,
    filter: Value,
    first: i32,
    after: Option<&str>,
) -> Value {
    app.gql(
        Some(token),
        "query($f: AuditFilter, $n: Int, $a: String) { auditLog(filter: $f, first: $n, after: $a) {
            edges { cursor node { seq recordedAt actor action target summary prevHash hash } }
            pageInfo { hasNextPage endCursor } } }",
        json!({"f": filter, "n": first, "a": after}),
    )
    .await
}

async fn a_busy_tenants_export_verifies_in_every_format(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, tenant) = busy_tenant(&app, 60).await;
    let events = app.event_count().await;
    assert!(events >= 200, "a busy tenant: {events} events");
    let head = stored_head(&app, &tenant).await;
    assert_eq!(head.seq, events, "one row per event");

    let verified = verify_db(&app, &tenant).await.unwrap();
    assert_eq!(
        (verified.rows, verified.head.clone()),
        (events as u64, head.clone())
    );

    for format in FORMATS {
        let path = export_to_file(&app, &token, &[("format", format)]).await;
        let verified = verify_file(&path, &tenant).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(verified.rows, events as u64, "{format}");
        assert_eq!(verified.first_seq, 1, "{format}");
        assert_eq!(verified.head, head, "{format}");
        std::fs::remove_file(path).unwrap();
    }

    // The query pages through the same chain.
    let body = audit_log(&app, &token, json!(null), 100, None).await;
    let edges = body["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(edges.len(), 100);
    let first = &edges[0]["node"];
    assert_eq!(first["seq"], 1);
    // Sign-up registers the owner, then creates the tenant.
    assert_eq!(first["action"], "UserRegistered");
    assert_eq!(first["prevHash"], "0".repeat(64));
    assert_eq!(edges[1]["node"]["prevHash"], first["hash"]);
    assert_eq!(edges[1]["node"]["action"], "TenantCreated");
    let summary = first["summary"].as_str().unwrap();
    assert!(
        !summary.contains("ada@example.org") && !summary.contains("argon2"),
        "{summary}"
    );
    let cursor = body["data"]["auditLog"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap();
    let body = audit_log(&app, &token, json!(null), 100, Some(cursor)).await;
    assert_eq!(
        body["data"]["auditLog"]["edges"][0]["node"]["seq"], 101,
        "{body}"
    );
    let body = audit_log(&app, &token, json!({"action": "PostScheduled"}), 100, None).await;
    let scheduled = body["data"]["auditLog"]["edges"].as_array().unwrap();
    assert_eq!(scheduled.len(), 3 * 20, "{body}");
    assert!(
        scheduled
            .iter()
            .all(|e| e["node"]["action"] == "PostScheduled")
    );
    let actor = first["actor"].as_str().unwrap();
    let body = audit_log(&app, &token, json!({"actor": actor}), 5, None).await;
    assert!(
        body["data"]["auditLog"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["node"]["actor"] == actor)
    );

    // A time-filtered export is a contiguous slice that verifies from its
    // first row's prev_hash.
    let from = edges[49]["node"]["recordedAt"]
        .as_str()
        .unwrap()
        .to_string();
    let to = edges[89]["node"]["recordedAt"]
        .as_str()
        .unwrap()
        .to_string();
    let body = audit_log(&app, &token, json!({"from": from, "to": to}), 100, None).await;
    let window = body["data"]["auditLog"]["edges"].as_array().unwrap().len();
    for format in FORMATS {
        let path = export_to_file(
            &app,
            &token,
            &[("format", format), ("from", &from), ("to", &to)],
        )
        .await;
        let verified = verify_file(&path, &tenant).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert!(
            verified.first_seq > 1 && verified.first_seq <= 50,
            "{verified:?}"
        );
        assert!(verified.head.seq < 90, "{verified:?}");
        assert!(
            verified.rows as usize >= window,
            "{verified:?}, window {window}"
        );
        std::fs::remove_file(path).unwrap();
    }
    // From alone runs to the stored head.
    let path = export_to_file(&app, &token, &[("format", "csv"), ("from", &from)]).await;
    let verified = verify_file(&path, &tenant).unwrap();
    assert_eq!(verified.head, head);
    std::fs::remove_file(path).unwrap();
}

async fn tampering_with_the_database_is_detected(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (_, tenant) = busy_tenant(&app, 10).await;
    let db = &app.state.db.any;
    let rebuild = || async {
        app.state
            .projectors
            .replay(Some("audit"), Duration::from_secs(5), |_, _, _| {})
            .await
            .unwrap();
        verify_db(&app, &tenant)
            .await
            .expect("a rebuilt chain verifies");
    };
    verify_db(&app, &tenant).await.unwrap();

    // Altered.
    sqlx::query(
        "UPDATE rm_audit SET summary = 'nothing happened' WHERE tenant_id = $1 AND seq = 7",
    )
    .bind(&tenant)
    .execute(db)
    .await
    .unwrap();
    let (seq, reason) = broken_seq(verify_db(&app, &tenant).await);
    assert_eq!(seq, 7, "{reason}");
    assert!(reason.contains("altered"), "{reason}");
    rebuild().await;

    // Altered and re-hashed: the next link breaks.
    let mut row = queries(&app)
        .rows_after(&tenant, 6, Some(7), 1)
        .await
        .unwrap()[0]
        .clone();
    row.actor = "system".into();
    row.hash = row.expected_hash();
    sqlx::query("UPDATE rm_audit SET actor = $1, hash = $2 WHERE tenant_id = $3 AND seq = 7")
        .bind(&row.actor)
        .bind(&row.hash)
        .bind(&tenant)
        .execute(db)
        .await
        .unwrap();
    let (seq, reason) = broken_seq(verify_db(&app, &tenant).await);
    assert_eq!(seq, 8, "{reason}");
    assert!(reason.contains("prev_hash"), "{reason}");
    rebuild().await;

    // Deleted, in the middle and at the end.
    sqlx::query("DELETE FROM rm_audit WHERE tenant_id = $1 AND seq = 12")
        .bind(&tenant)
        .execute(db)
        .await
        .unwrap();
    let (seq, reason) = broken_seq(verify_db(&app, &tenant).await);
    assert_eq!(seq, 12, "{reason}");
    assert!(reason.contains("missing"), "{reason}");
    rebuild().await;
    let head = stored_head(&app, &tenant).await;
    sqlx::query("DELETE FROM rm_audit WHERE tenant_id = $1 AND seq = $2")
        .bind(&tenant)
        .bind(head.seq)
        .execute(db)
        .await
        .unwrap();
    let (seq, reason) = broken_seq(verify_db(&app, &tenant).await);
    assert_eq!(seq, head.seq, "{reason}");
    rebuild().await;

    // Reordered: rows 4 and 5 swap places.
    for (from, to) in [(4, -4), (5, 4), (-4, 5)] {
        sqlx::query("UPDATE rm_audit SET seq = $1 WHERE tenant_id = $2 AND seq = $3")
            .bind(to as i64)
            .bind(&tenant)
            .bind(from as i64)
            .execute(db)
            .await
            .unwrap();
    }
    let (seq, reason) = broken_seq(verify_db(&app, &tenant).await);
    assert_eq!(seq, 4, "{reason}");
    rebuild().await;

    // A forged head.
    sqlx::query("UPDATE rm_audit_heads SET hash = $1 WHERE tenant_id = $2")
        .bind("f".repeat(64))
        .bind(&tenant)
        .execute(db)
        .await
        .unwrap();
    let (seq, reason) = broken_seq(verify_db(&app, &tenant).await);
    assert_eq!(seq, head.seq, "{reason}");
    rebuild().await;
}

/// Applies `edit` to the lines of a file and verifies the result.
fn verify_edited(
    path: &PathBuf,
    tenant: &str,
    edit: impl FnOnce(&mut Vec<String>),
) -> Result<Verified, CheckError> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    edit(&mut lines);
    let edited = temp_file("edited");
    std::fs::write(&edited, lines.join("\n") + "\n").unwrap();
    let result = verify_file(&edited, tenant);
    std::fs::remove_file(edited).unwrap();
    result
}

async fn tampering_with_an_export_is_detected(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, tenant) = busy_tenant(&app, 10).await;
    for format in FORMATS {
        let path = export_to_file(&app, &token, &[("format", format)]).await;
        // Line of the row with seq n: the CSV and JSON exports open with one
        // header line; no summary here spans lines (post texts are counted).
        let offset = if format == "ndjson" { 0 } else { 1 };
        let line = |seq: usize| seq - 1 + offset;
        assert!(verify_file(&path, &tenant).is_ok(), "{format}");

        let (seq, reason) = broken_seq(verify_edited(&path, &tenant, |lines| {
            let l = line(5);
            lines[l] = lines[l].replacen("user:", "user:f", 1);
        }));
        assert_eq!(seq, 5, "{format} altered: {reason}");
        assert!(reason.contains("altered"), "{format}: {reason}");

        let (seq, reason) = broken_seq(verify_edited(&path, &tenant, |lines| {
            lines.remove(line(9));
        }));
        assert_eq!(seq, 9, "{format} deleted: {reason}");

        let (seq, reason) = broken_seq(verify_edited(&path, &tenant, |lines| {
            lines.swap(line(3), line(4));
        }));
        assert_eq!(seq, 3, "{format} reordered: {reason}");

        // The first row gone: the slice still chains, but the trailer counts it.
        let (seq, reason) = broken_seq(verify_edited(&path, &tenant, |lines| {
            lines.remove(line(1));
        }));
        assert_eq!(seq, 1, "{format} first row deleted: {reason}");

        // The last row gone, or the download cut short.
        let (seq, reason) = broken_seq(verify_edited(&path, &tenant, |lines| {
            // The trailer is the last line, the last row the one before.
            let last = lines.len() - 2;
            lines.remove(last);
            if format == "json" {
                // Keep it valid JSON: the new last row loses its comma.
                let l = last - 1;
                lines[l] = lines[l].trim_end_matches(',').to_string();
            }
        }));
        assert!(seq > 30, "{format} last row deleted: {seq} {reason}");
        let (_, reason) = broken_seq(verify_edited(&path, &tenant, |lines| {
            lines.truncate(lines.len() / 2);
        }));
        assert!(!reason.is_empty(), "{format} cut short");

        // Another tenant's export is not this tenant's chain.
        let (seq, reason) = broken_seq(verify_file(&path, &Uuid::new_v4().to_string()));
        assert!(reason.contains("tenant") && seq <= 1, "{format}: {reason}");
        std::fs::remove_file(path).unwrap();
    }
}

/// Adds a member with `role` to the owner's tenant through an invitation.
async fn member_token(
    app: &TestApp,
    owner: &str,
    email: &str,
    role: domain::access::Role,
) -> String {
    app.add_member(owner, email, &role.as_str().to_uppercase())
        .await
        .0
}

async fn tenants_and_roles_see_only_what_they_may(backend: Backend) {
    use domain::access::Role;
    let app = spawn_app(&backend.fresh().await).await;
    let (alice, alice_tenant) = app.sign_up("Alice Ltd", "alice@example.org").await;
    let (bob, bob_tenant) = app.sign_up("Bob Inc", "bob@example.org").await;
    let campaign = app.create_campaign(&alice, "Secret plans").await;
    app.create_post(&alice, &campaign, "secret").await;
    app.create_campaign(&bob, "Bob's").await;

    // Bob's token sees Bob's chain only, in the query and the export.
    let body = audit_log(&app, &bob, json!(null), 100, None).await;
    let edges = body["data"]["auditLog"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(
        edges.len(),
        4,
        "UserRegistered, TenantCreated, EmailVerificationRequested, CampaignCreated: {body}"
    );
    assert!(
        edges
            .iter()
            .all(|e| !e["node"]["target"].as_str().unwrap().contains(&campaign))
    );
    assert_eq!(edges[1]["node"]["target"], format!("Tenant:{bob_tenant}"));
    for format in FORMATS {
        let (status, text) = export(&app, Some(&bob), &[("format", format)]).await;
        assert_eq!(status, 200);
        assert!(text.contains(&bob_tenant), "{format}");
        assert!(
            !text.contains(&alice_tenant) && !text.contains(&campaign),
            "{format}: {text}"
        );
    }
    let path = export_to_file(&app, &bob, &[]).await;
    assert_eq!(verify_file(&path, &bob_tenant).unwrap().rows, 4);
    std::fs::remove_file(path).unwrap();

    // Roles: owners and admins read the trail, editors and viewers do not.
    let admin = member_token(&app, &alice, "admin@example.org", Role::Admin).await;
    let editor = member_token(&app, &alice, "editor@example.org", Role::Editor).await;
    let viewer = member_token(&app, &alice, "viewer@example.org", Role::Viewer).await;
    let body = audit_log(&app, &admin, json!(null), 10, None).await;
    assert!(body["errors"].is_null(), "{body}");
    let (status, _) = export(&app, Some(&admin), &[("format", "csv")]).await;
    assert_eq!(status, 200);
    for token in [&editor, &viewer] {
        let body = audit_log(&app, token, json!(null), 10, None).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{body}");
        assert!(body["data"].is_null(), "{body}");
        let (status, text) = export(&app, Some(token), &[("format", "json")]).await;
        assert_eq!(status, 403);
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"]["code"], "FORBIDDEN", "{text}");
    }

    // No token, a bad token, bad parameters.
    let body = audit_log(&app, "hat_forged", json!(null), 10, None).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    for token in [None, Some("hat_forged"), Some("not-a-bearer")] {
        let (status, text) = export(&app, token, &[]).await;
        assert_eq!(status, 401, "{text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"]["code"], "UNAUTHENTICATED", "{text}");
    }
    for (params, field) in [
        (vec![("format", "xml")], "format"),
        (vec![("from", "yesterday")], "from"),
        (vec![("to", "2026-13-01T00:00:00Z")], "to"),
        (
            vec![
                ("from", "2026-02-01T00:00:00Z"),
                ("to", "2026-01-01T00:00:00Z"),
            ],
            "from",
        ),
    ] {
        let (status, text) = export(&app, Some(&alice), &params).await;
        assert_eq!(status, 400, "{params:?}: {text}");
        let error: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(error["error"]["code"], "VALIDATION", "{text}");
        assert_eq!(error["error"]["field"], field, "{text}");
    }
    let body = audit_log(&app, &alice, json!(null), 10, Some("bm9wZQ")).await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    let body = audit_log(&app, &alice, json!(null), 1000, None).await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");

    // An empty window still ends in a trailer that verifies.
    let path = export_to_file(
        &app,
        &alice,
        &[("format", "ndjson"), ("from", "2099-01-01T00:00:00Z")],
    )
    .await;
    assert_eq!(verify_file(&path, &alice_tenant).unwrap().rows, 0);
    std::fs::remove_file(path).unwrap();
}

async fn replay_reproduces_identical_rows_and_hashes(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (alice, _) = busy_tenant(&app, 8).await;
    let (bob, _) = app.sign_up("Bob Inc", "bob@example.org").await;
    for i in 0..5 {
        let c = app.create_campaign(&bob, &format!("B{i}")).await;
        app.create_post(&alice, &app.create_campaign(&alice, "A").await, "x")
            .await;
        app.create_post(&bob, &c, "y").await;
    }
    app.settled().await;
    let audit = queries(&app);
    let live = audit.snapshot().await.unwrap();
    assert_eq!(live.0.len() as i64, app.event_count().await);
    for only in [Some("audit"), None] {
        app.state
            .projectors
            .replay(only, Duration::from_secs(5), |_, _, _| {})
            .await
            .unwrap();
        assert_eq!(audit.snapshot().await.unwrap(), live, "{only:?}");
    }
}

async fn the_export_streams_page_by_page_without_buffering(backend: Backend) {
    use api::audit::export::{Format, export_stream};
    use domain::audit::Entry;
    use futures_util::StreamExt;
    let db = database(&backend.fresh().await).await;
    let tenant = Uuid::new_v4().to_string();
    const ROWS: i64 = 3000;
    const PAGE: i64 = 100;
    let mut head = Head::genesis();
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(500) {
        let mut sql = String::from(
            "INSERT INTO rm_audit (tenant_id, seq, recorded_at, actor, action, target, summary, prev_hash, hash) VALUES ",
        );
        let rows: Vec<_> = chunk
            .iter()
            .map(|i| {
                head.append(
                    &tenant,
                    Entry {
                        recorded_at: 1_700_000_000_000_000 + i * 1000,
                        actor: "system".into(),
                        action: "Tested".into(),
                        target: format!("Test:{i}"),
                        summary: format!("n={i}, text=\"a, b\""),
                    },
                )
            })
            .collect();
        let values: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "('{}', {}, {}, '{}', '{}', '{}', '{}', '{}', '{}')",
                    r.tenant_id,
                    r.seq,
                    r.recorded_at,
                    r.actor,
                    r.action,
                    r.target,
                    r.summary,
                    r.prev_hash,
                    r.hash
                )
            })
            .collect();
        sql.push_str(&values.join(", "));
        sqlx::query(&sql).execute(&db.any).await.unwrap();
    }
    sqlx::query("INSERT INTO rm_audit_heads (tenant_id, seq, hash) VALUES ($1, $2, $3)")
        .bind(&tenant)
        .bind(head.seq)
        .bind(&head.hash)
        .execute(&db.any)
        .await
        .unwrap();
    let queries = AuditQueries::new(db.any.clone());

    for format in [Format::Ndjson, Format::Json, Format::Csv] {
        let range = queries.seq_range(&tenant, None, None).await.unwrap();
        let mut stream = Box::pin(export_stream(
            queries.clone(),
            tenant.clone(),
            range,
            format,
            PAGE,
        ));
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.next().await {
            chunks.push(chunk.unwrap());
        }
        // One chunk per page (plus header and trailer): nothing is gathered
        // before it is sent.
        let header = usize::from(format != Format::Ndjson);
        assert_eq!(
            chunks.len(),
            header + (ROWS / PAGE) as usize + 1,
            "{format:?}"
        );
        let largest = chunks.iter().map(|c| c.len()).max().unwrap();
        assert!(
            largest < PAGE as usize * 400,
            "{format:?}: a chunk of {largest} bytes"
        );
        let path = temp_file("stream");
        std::fs::write(&path, chunks.concat()).unwrap();
        let verified = verify_file(&path, &tenant).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(
            (verified.rows, verified.head.clone()),
            (ROWS as u64, head.clone())
        );
        std::fs::remove_file(path).unwrap();
    }

    // Rows are read as the client asks for them: what is deleted after the
    // first page was sent never appears, and the file then fails to verify.
    let range = queries.seq_range(&tenant, None, None).await.unwrap();
    let mut stream = Box::pin(export_stream(
        queries.clone(),
        tenant.clone(),
        range,
        Format::Ndjson,
        PAGE,
    ));
    let mut body = stream.next().await.unwrap().unwrap().to_vec();
    sqlx::query("DELETE FROM rm_audit WHERE tenant_id = $1 AND seq > 250")
        .bind(&tenant)
        .execute(&db.any)
        .await
        .unwrap();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    let lines = body.iter().filter(|b| **b == b'\n').count();
    assert_eq!(lines, 250 + 1, "rows read lazily, then the trailer");
    let path = temp_file("ndjson");
    std::fs::write(&path, &body).unwrap();
    match verify_file(&path, &tenant) {
        Err(CheckError::Broken(b)) => assert_eq!(
            (b.seq, b.reason),
            (
                251,
                BrokenReason::MissingAtEnd {
                    claimed: ROWS,
                    found: 250
                }
            )
        ),
        other => panic!("{other:?}"),
    }
    std::fs::remove_file(path).unwrap();
}
