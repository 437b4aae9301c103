//! Black-box tests of the GraphQL API: a user's main flow, every bad-input
//! rule, tenant isolation and authentication, on SQLite and on PostgreSQL.

use serde_json::json;
use test_support::{Backend, TestApp, error_code, on_both_databases, spawn_app};

on_both_databases!(
    newcomer_signs_up_drafts_a_thread_schedules_it_and_sees_the_dashboard,
    bad_input_is_rejected_with_a_typed_error_and_stores_nothing,
    another_tenants_ids_behave_as_not_found,
    posts_page_through_the_queue_in_next_run_order,
);

const FAMILY: &str = "👨\u{200d}👩\u{200d}👧\u{200d}👦";

async fn newcomer_signs_up_drafts_a_thread_schedules_it_and_sees_the_dashboard(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, _) = app.sign_up("Acme", "ada@example.org").await;
    let campaign = app.create_campaign(&token, "Spring launch").await;

    let body = app
        .gql(
            Some(&token),
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id status entries { text graphemes langs facets { byteStart byteEnd kind value } } } }",
            json!({"i": {"campaignId": campaign, "entries": [
                {"text": "Grüße @alice.bsky.social #launch", "langs": ["de"]},
                {"text": FAMILY.repeat(300), "langs": []}
            ]}}),
        )
        .await;
    let post = &body["data"]["createPost"];
    assert_eq!(post["status"], "DRAFT", "{body}");
    assert_eq!(post["entries"][1]["graphemes"], 300);
    let facets = &post["entries"][0]["facets"];
    assert_eq!(
        facets[0],
        json!({"byteStart": 8, "byteEnd": 26, "kind": "MENTION", "value": "alice.bsky.social"})
    );
    assert_eq!(
        facets[1],
        json!({"byteStart": 27, "byteEnd": 34, "kind": "TAG", "value": "launch"})
    );
    let post_id = post["id"].as_str().unwrap();

    let body = app
        .gql(
            Some(&token),
            "mutation($i: SchedulePostInput!) { schedulePost(input: $i) { status nextRunAt recurrence } }",
            json!({"i": {"postId": post_id, "at": "2030-03-25T08:00:00Z", "recurrence": "FREQ=WEEKLY;BYDAY=MO"}}),
        )
        .await;
    assert_eq!(
        body["data"]["schedulePost"],
        json!({"status": "PENDING", "nextRunAt": "2030-03-25T08:00:00+00:00", "recurrence": "FREQ=WEEKLY;BYDAY=MO"}),
        "{body}"
    );
    let draft = app.create_post(&token, &campaign, "still a draft").await;

    let body = app
        .gql(
            Some(&token),
            "query($c: ID!) { campaign(id: $c) { name status timeZone postCounts { draft pending total } }
                              posts(filter: {campaignId: $c}) { edges { node { id status } } } }",
            json!({"c": campaign}),
        )
        .await;
    assert_eq!(
        body["data"]["campaign"],
        json!({"name": "Spring launch", "status": "DRAFT", "timeZone": "Europe/Berlin", "postCounts": {"draft": 1, "pending": 1, "total": 2}}),
        "{body}"
    );
    let queue: Vec<_> = body["data"]["posts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        queue,
        vec![post_id.to_string(), draft],
        "scheduled first, drafts last"
    );

    // Cancel, then the counters follow.
    let body = app
        .gql(
            Some(&token),
            "mutation($id: ID!) { cancelPost(id: $id) { status } }",
            json!({"id": post_id}),
        )
        .await;
    assert_eq!(body["data"]["cancelPost"]["status"], "CANCELLED", "{body}");
    let body = app
        .gql(
            Some(&token),
            "query($c: ID!) { campaign(id: $c) { postCounts { pending cancelled } } }",
            json!({"c": campaign}),
        )
        .await;
    assert_eq!(
        body["data"]["campaign"]["postCounts"],
        json!({"pending": 0, "cancelled": 1})
    );

    // Campaign lifecycle.
    for (mutation, status) in [
        ("activateCampaign", "ACTIVE"),
        ("pauseCampaign", "PAUSED"),
        ("resumeCampaign", "ACTIVE"),
        ("archiveCampaign", "ARCHIVED"),
    ] {
        let body = app
            .gql(
                Some(&token),
                &format!("mutation($id: ID!) {{ {mutation}(id: $id) {{ status }} }}"),
                json!({"id": campaign}),
            )
            .await;
        assert_eq!(body["data"][mutation]["status"], status, "{body}");
    }
    // An archived campaign takes no new posts.
    let body = app
        .gql(
            Some(&token),
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({"i": {"campaignId": campaign, "entries": [{"text": "late"}]}}),
        )
        .await;
    assert_eq!(error_code(&body), Some("CONFLICT"), "{body}");
    assert_eq!(
        body["errors"][0]["message"], "the campaign is archived",
        "{body}"
    );
}

/// Sends `query` and asserts the error code, and that no event was appended.
async fn rejected(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    variables: serde_json::Value,
    code: &str,
) {
    let before = app.event_count().await;
    let body = app.gql(token, query, variables).await;
    assert_eq!(error_code(&body), Some(code), "{query}: {body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(
        app.event_count().await,
        before,
        "nothing stored for {query}"
    );
}

async fn bad_input_is_rejected_with_a_typed_error_and_stores_nothing(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, _) = app.sign_up("Acme", "ada@example.org").await;
    let t = Some(token.as_str());
    let campaign = app.create_campaign(&token, "Spring").await;
    let post = app.create_post(&token, &campaign, "hello").await;
    let create_campaign = "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }";
    let create_post = "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }";
    let schedule = "mutation($i: SchedulePostInput!) { schedulePost(input: $i) { id } }";
    let entries = |texts: Vec<String>| json!({"i": {"campaignId": campaign, "entries": texts.into_iter().map(|t| json!({"text": t})).collect::<Vec<_>>()}});

    // Unknown time zone; end before start.
    rejected(&app, t, create_campaign, json!({"i": {"name": "x", "timeZone": "Mars/Olympus", "startsOn": "2026-01-01", "endsOn": "2026-02-01"}}), "VALIDATION").await;
    rejected(&app, t, create_campaign, json!({"i": {"name": "x", "timeZone": "UTC", "startsOn": "2026-02-01", "endsOn": "2026-01-01"}}), "VALIDATION").await;
    // Empty text, 301 graphemes, 26 entries.
    rejected(
        &app,
        t,
        create_post,
        entries(vec![String::new()]),
        "VALIDATION",
    )
    .await;
    rejected(
        &app,
        t,
        create_post,
        entries(vec![FAMILY.repeat(301)]),
        "VALIDATION",
    )
    .await;
    rejected(
        &app,
        t,
        create_post,
        entries((0..26).map(|i| format!("entry {i}")).collect()),
        "VALIDATION",
    )
    .await;
    // Schedule in the past; invalid RRULE.
    rejected(
        &app,
        t,
        schedule,
        json!({"i": {"postId": post, "at": "2020-01-01T00:00:00Z"}}),
        "VALIDATION",
    )
    .await;
    rejected(&app, t, schedule, json!({"i": {"postId": post, "at": "2030-01-01T00:00:00Z", "recurrence": "FREQ=SOMETIMES"}}), "VALIDATION").await;
    // Unknown ids.
    let unknown = uuid::Uuid::now_v7().to_string();
    rejected(
        &app,
        t,
        create_post,
        json!({"i": {"campaignId": unknown, "entries": [{"text": "hi"}]}}),
        "NOT_FOUND",
    )
    .await;
    rejected(
        &app,
        t,
        "mutation($id: ID!) { cancelPost(id: $id) { id } }",
        json!({"id": unknown}),
        "NOT_FOUND",
    )
    .await;
    rejected(
        &app,
        t,
        "mutation($id: ID!) { cancelPost(id: $id) { id } }",
        json!({"id": "not-a-uuid"}),
        "VALIDATION",
    )
    .await;
    // Missing and forged tokens.
    rejected(&app, None, create_campaign, json!({"i": {"name": "x", "timeZone": "UTC", "startsOn": "2026-01-01", "endsOn": "2026-02-01"}}), "UNAUTHENTICATED").await;
    rejected(
        &app,
        Some("hat_forged-token-that-was-never-issued"),
        "{ campaigns { edges { cursor } } }",
        json!({}),
        "UNAUTHENTICATED",
    )
    .await;
    rejected(
        &app,
        Some("garbage"),
        "{ campaigns { edges { cursor } } }",
        json!({}),
        "UNAUTHENTICATED",
    )
    .await;
    // A state conflict: cancelling a draft.
    rejected(
        &app,
        t,
        "mutation($id: ID!) { cancelPost(id: $id) { id } }",
        json!({"id": post}),
        "CONFLICT",
    )
    .await;
    // Page size out of range.
    rejected(
        &app,
        t,
        "{ posts(first: 1000) { edges { cursor } } }",
        json!({}),
        "VALIDATION",
    )
    .await;

    // A query deeper than the limit.
    let deep = format!(
        "{{ {}campaign(id: \"{campaign}\") {{ id }}{} }}",
        "posts(first: 1) { edges { node { campaign { ".repeat(3),
        " } } } }".repeat(3)
    );
    let body = app.gql(t, &deep, json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{body}"
    );
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");

    // A query whose pages multiply past the cost limit.
    let costly = "{ campaigns(first: 100) { edges { node { posts(first: 100) { edges { node { id entries { text facets { value } } } } } } } } }";
    let body = app.gql(t, costly, json!({})).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too complex"),
        "{body}"
    );

    // A body over the limit gets 413 with a JSON error.
    let before = app.event_count().await;
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(format!(
            "{{\"query\": \"{}\"}}",
            " ".repeat(1024 * 1024 + 1024)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    // The unread body makes the connection unusable: the server says it
    // closes it, so the client's next request opens a fresh one.
    assert_eq!(response.headers()["connection"], "close");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "PAYLOAD_TOO_LARGE");
    assert_eq!(app.event_count().await, before);

    // A viewer may read but not write.
    let viewer = viewer_token(&app, &token).await;
    let body = app
        .gql(
            Some(&viewer),
            "{ campaigns { edges { node { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["campaigns"]["edges"][0]["node"]["name"], "Spring",
        "{body}"
    );
    rejected(
        &app,
        Some(&viewer),
        create_post,
        json!({"i": {"campaignId": campaign, "entries": [{"text": "hi"}]}}),
        "FORBIDDEN",
    )
    .await;
    rejected(
        &app,
        Some(&viewer),
        "mutation($id: ID!) { archiveCampaign(id: $id) { id } }",
        json!({"id": campaign}),
        "FORBIDDEN",
    )
    .await;
}

/// Adds a viewer to the owner's tenant through an invitation.
async fn viewer_token(app: &TestApp, owner_token: &str) -> String {
    app.add_member(owner_token, "viewer@example.org", "VIEWER")
        .await
        .0
}

async fn another_tenants_ids_behave_as_not_found(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (alice, _) = app.sign_up("Alice Ltd", "alice@example.org").await;
    let (mallory, _) = app.sign_up("Mallory Inc", "mallory@example.org").await;
    let campaign = app.create_campaign(&alice, "Secret plans").await;
    let post = app.create_post(&alice, &campaign, "secret").await;
    let m = Some(mallory.as_str());
    let c = json!({"id": campaign});
    let p = json!({"id": post});
    for (query, vars) in [
        ("query($id: ID!) { campaign(id: $id) { name } }", c.clone()),
        ("query($id: ID!) { post(id: $id) { id } }", p.clone()),
        (
            "mutation($id: ID!) { archiveCampaign(id: $id) { id } }",
            c.clone(),
        ),
        (
            "mutation($id: ID!) { activateCampaign(id: $id) { id } }",
            c.clone(),
        ),
        (
            "mutation($id: ID!, $i: CampaignInput!) { updateCampaign(id: $id, input: $i) { id } }",
            json!({"id": campaign, "i": {"name": "x", "timeZone": "UTC", "startsOn": "2026-01-01", "endsOn": "2026-02-01"}}),
        ),
        (
            "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
            json!({"i": {"campaignId": campaign, "entries": [{"text": "hi"}]}}),
        ),
        (
            "mutation($i: UpdatePostInput!) { updatePost(input: $i) { id } }",
            json!({"i": {"postId": post, "entries": [{"text": "hi"}]}}),
        ),
        (
            "mutation($i: SchedulePostInput!) { schedulePost(input: $i) { id } }",
            json!({"i": {"postId": post, "at": "2030-01-01T00:00:00Z"}}),
        ),
        (
            "mutation($i: ReschedulePostInput!) { reschedulePost(input: $i) { id } }",
            json!({"i": {"postId": post, "at": "2030-01-01T00:00:00Z"}}),
        ),
        (
            "mutation($id: ID!) { cancelPost(id: $id) { id } }",
            p.clone(),
        ),
        (
            "mutation($id: ID!) { deletePost(id: $id) { id } }",
            p.clone(),
        ),
    ] {
        rejected(&app, m, query, vars, "NOT_FOUND").await;
    }
    let body = app
        .gql(m, "query($c: ID!) { campaigns { edges { cursor } } posts(filter: {campaignId: $c}) { edges { cursor } } }", json!({"c": campaign}))
        .await;
    // The foreign campaign is not found, exactly like a missing one.
    assert_eq!(body["data"]["campaigns"], json!({"edges": []}), "{body}");
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");
    // Alice still sees her post untouched.
    let body = app
        .gql(
            Some(&alice),
            "query($id: ID!) { post(id: $id) { status } }",
            p,
        )
        .await;
    assert_eq!(body["data"]["post"]["status"], "DRAFT");
}

async fn posts_page_through_the_queue_in_next_run_order(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, _) = app.sign_up("Acme", "ada@example.org").await;
    let campaign = app.create_campaign(&token, "Queue").await;
    let mut expected = Vec::new();
    for day in [5, 3, 4, 1, 2] {
        let id = app
            .create_post(&token, &campaign, &format!("day {day}"))
            .await;
        let body = app
            .gql(
                Some(&token),
                "mutation($i: SchedulePostInput!) { schedulePost(input: $i) { id } }",
                json!({"i": {"postId": id, "at": format!("2030-01-0{day}T09:00:00Z")}}),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
        expected.push((day, id));
    }
    expected.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let body = app
            .gql(
                Some(&token),
                "query($after: String) { posts(first: 2, after: $after, filter: {status: PENDING}) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }",
                json!({"after": after}),
            )
            .await;
        let page = &body["data"]["posts"];
        for edge in page["edges"].as_array().unwrap() {
            seen.push(edge["node"]["id"].as_str().unwrap().to_string());
        }
        if page["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["pageInfo"]["endCursor"].as_str().map(String::from);
    }
    assert_eq!(
        seen,
        expected.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
    );
    let body = app
        .gql(Some(&token), "{ posts(filter: {from: \"2030-01-02T00:00:00Z\", to: \"2030-01-04T00:00:00Z\"}) { edges { node { nextRunAt } } } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["posts"]["edges"].as_array().unwrap().len(),
        2,
        "{body}"
    );
}

#[tokio::test]
async fn log_in_gives_the_same_answer_for_unknown_user_and_wrong_password_and_refresh_rotates() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    app.sign_up("Acme", "ada@example.org").await;
    let log_in = "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { accessToken refreshToken user { email } tenant { name } } }";
    let wrong = app
        .gql(
            None,
            log_in,
            json!({"e": "ada@example.org", "p": "not the password"}),
        )
        .await;
    let unknown = app
        .gql(
            None,
            log_in,
            json!({"e": "nobody@example.org", "p": "not the password"}),
        )
        .await;
    assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"));
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert!(
        !wrong.to_string().contains("not the password"),
        "no secret in errors"
    );

    let ok = app
        .gql(
            None,
            log_in,
            json!({"e": "ADA@example.org ", "p": "correct horse battery"}),
        )
        .await;
    let payload = &ok["data"]["logIn"];
    assert_eq!(payload["tenant"]["name"], "Acme", "{ok}");
    let refresh = payload["refreshToken"].as_str().unwrap();
    let rotate =
        "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }";
    let body = app.gql(None, rotate, json!({"t": refresh})).await;
    let new_access = body["data"]["refreshSession"]["accessToken"]
        .as_str()
        .expect("rotated")
        .to_string();
    let new_refresh = body["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let me = app
        .gql(
            Some(&new_access),
            "{ me { user { email } role } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["data"]["me"],
        json!({"user": {"email": "ada@example.org"}, "role": "OWNER"})
    );
    // Reusing the rotated refresh token revokes the whole session family.
    let again = app.gql(None, rotate, json!({"t": refresh})).await;
    assert_eq!(
        error_code(&again),
        Some("UNAUTHENTICATED"),
        "an old refresh token no longer works"
    );
    let me = app
        .gql(Some(&new_access), "{ me { role } }", json!({}))
        .await;
    assert_eq!(error_code(&me), Some("UNAUTHENTICATED"), "family revoked");
    let later = app.gql(None, rotate, json!({"t": new_refresh})).await;
    assert_eq!(
        error_code(&later),
        Some("UNAUTHENTICATED"),
        "family revoked"
    );

    let ok = app
        .gql(
            None,
            log_in,
            json!({"e": "ada@example.org", "p": "correct horse battery"}),
        )
        .await;
    let new_access = ok["data"]["logIn"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let out = app
        .gql(Some(&new_access), "mutation { logOut }", json!({}))
        .await;
    assert_eq!(out["data"]["logOut"], true);
    let me = app
        .gql(Some(&new_access), "{ me { role } }", json!({}))
        .await;
    assert_eq!(error_code(&me), Some("UNAUTHENTICATED"));
    let dup = app
        .gql(None, "mutation { signUp(input: {organization: \"B\", email: \"ada@example.org\", password: \"another password\"}) { accessToken } }", json!({}))
        .await;
    assert_eq!(error_code(&dup), Some("CONFLICT"));
}

#[tokio::test]
async fn operations_endpoints_answer() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    let get = |path: &'static str| {
        let client = app.client.clone();
        let url = format!("{}{path}", app.address);
        async move { client.get(url).send().await.unwrap() }
    };
    let health = get("/health").await;
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    let ready: serde_json::Value = get("/ready").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    app.sign_up("Acme", "ada@example.org").await;
    let metrics = get("/metrics").await.text().await.unwrap();
    for name in [
        "herald_commands_total",
        "herald_events_appended_total",
        "herald_projector_lag_events",
        "herald_http_request_duration_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    let graphiql = get("/graphql").await.text().await.unwrap();
    assert!(graphiql.to_lowercase().contains("graphiql"));
}
