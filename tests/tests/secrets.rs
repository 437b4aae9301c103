//! No secret or personal data in plaintext: a full identity flow runs with
//! every log line captured at TRACE level, then the raw event table, every
//! other table and the logs are searched for the password, the addresses and
//! every token the flow handled. Erasure then shreds the invitee's data while
//! the log still loads and replays.

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use test_support::logs::CapturedLogs;
use test_support::{TestApp, error_code, spawn_app};

const OWNER_EMAIL: &str = "secret.owner@example.org";
const INVITEE_EMAIL: &str = "secret.invitee@example.org";
const PASSWORD: &str = "Tr0ub4dor&3-unique-passphrase";

fn data<'a>(body: &'a Value, op: &str) -> &'a Value {
    let value = &body["data"][op];
    assert!(!value.is_null(), "{op} failed: {body}");
    value
}

async fn gql(app: &TestApp, token: Option<&str>, query: &str, vars: Value) -> Value {
    app.gql(token, query, vars).await
}

/// Every table's rows as text (PostgreSQL).
async fn dump(app: &TestApp) -> String {
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&app.state.db.any)
    .await
    .unwrap();
    let mut out = String::new();
    for (table,) in tables {
        let rows: Vec<(String,)> = sqlx::query_as(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(&app.state.db.any)
            .await
            .unwrap();
        for (row,) in rows {
            out.push_str(&row);
            out.push('\n');
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_address_is_stored_or_logged_and_erasure_shreds() {
    let captured = CapturedLogs::default();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_writer(captured.clone())
        .with_ansi(false)
        .init();

    let app = spawn_app(&test_support::fresh_postgres().await).await;
    let mut secrets: Vec<String> = vec![PASSWORD.into(), OWNER_EMAIL.into(), INVITEE_EMAIL.into()];

    let body = gql(
        &app,
        None,
        "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken refreshToken } }",
        json!({"i": {"organization": "Secretive", "email": OWNER_EMAIL, "password": PASSWORD}}),
    )
    .await;
    let signed_up = data(&body, "signUp");
    secrets.push(signed_up["accessToken"].as_str().unwrap().into());
    let refresh = signed_up["refreshToken"].as_str().unwrap().to_string();
    secrets.push(refresh.clone());
    let body = gql(
        &app,
        None,
        "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }",
        json!({"t": refresh}),
    )
    .await;
    let owner = data(&body, "refreshSession")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(owner.clone());
    secrets.push(
        data(&body, "refreshSession")["refreshToken"]
            .as_str()
            .unwrap()
            .into(),
    );
    // A failed sign-in with the password in the request.
    let wrong = gql(
        &app,
        None,
        "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { accessToken } }",
        json!({"e": OWNER_EMAIL, "p": format!("{PASSWORD}-wrong")}),
    )
    .await;
    assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"));

    // Invitation and acceptance.
    let body = gql(
        &app,
        Some(&owner),
        "mutation($e: String!) { inviteMember(input: {email: $e, role: EDITOR}) { id } }",
        json!({"e": INVITEE_EMAIL}),
    )
    .await;
    let invitation = data(&body, "inviteMember")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let invitation_token = app.invitation_token(&owner, &invitation).await;
    secrets.push(invitation_token.clone());
    let body = gql(
        &app,
        None,
        "mutation($t: String!, $p: String!) { acceptInvitation(input: {token: $t, password: $p}) { accessToken user { id } } }",
        json!({"t": invitation_token, "p": PASSWORD}),
    )
    .await;
    let invitee = data(&body, "acceptInvitation")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(invitee.clone());

    // API key, TOTP with backup codes, password reset.
    let body = gql(
        &app,
        Some(&owner),
        "mutation { createApiKey(input: {name: \"bot\", role: EDITOR}) { key } }",
        json!({}),
    )
    .await;
    secrets.push(data(&body, "createApiKey")["key"].as_str().unwrap().into());
    let body = gql(
        &app,
        Some(&owner),
        "mutation { beginTotpEnrollment { secret } }",
        json!({}),
    )
    .await;
    let totp_secret = data(&body, "beginTotpEnrollment")["secret"]
        .as_str()
        .unwrap()
        .to_string();
    secrets.push(totp_secret.clone());
    let raw = api::identity::totp::decode_secret(&totp_secret).unwrap();
    let code = api::identity::totp::code_at(&raw, chrono::Utc::now().timestamp() as u64);
    let body = gql(
        &app,
        Some(&owner),
        "mutation($c: String!) { confirmTotpEnrollment(code: $c) { backupCodes } }",
        json!({"c": code}),
    )
    .await;
    for c in data(&body, "confirmTotpEnrollment")["backupCodes"]
        .as_array()
        .unwrap()
    {
        secrets.push(c.as_str().unwrap().into());
    }
    gql(
        &app,
        None,
        "mutation($e: String!) { requestPasswordReset(email: $e) }",
        json!({"e": INVITEE_EMAIL}),
    )
    .await;
    let email = domain::user::Email::parse(INVITEE_EMAIL).unwrap();
    let invitee_id = api::identity::accounts::user_id_for(&app.state.keyring, &email)
        .await
        .unwrap();
    // The request completes after its answer.
    let mut pending = None;
    for _ in 0..100 {
        let user = app.state.load(&app.state.users, invitee_id).await.unwrap();
        pending = user.pending_reset.map(|(id, _)| id);
        if pending.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (purpose, prefix) = api::identity::accounts::RESET;
    let reset = app
        .state
        .keyring
        .issue_token(
            purpose,
            prefix,
            invitee_id,
            pending.expect("reset requested"),
        )
        .await
        .unwrap();
    secrets.push(reset.expose_secret().to_string());

    // The search. Hex and base64 forms of the TOTP secret are covered by
    // the secret itself being sealed; the base32 form is what users see.
    let stored = dump(&app).await;
    let logs = captured.text();
    assert!(
        logs.contains("herald listening") && logs.len() > 20_000,
        "TRACE logs were captured ({} bytes)",
        logs.len()
    );
    for secret in &secrets {
        assert!(
            !stored.contains(secret.as_str()),
            "stored in plaintext: {secret}"
        );
        assert!(!logs.contains(secret.as_str()), "logged: {secret}");
        let lower = secret.to_lowercase();
        assert!(
            !stored.to_lowercase().contains(&lower),
            "stored (any case): {secret}"
        );
    }

    // Erasure: the invitee's personal data reads as erased, the log still
    // loads and replays.
    let body = gql(
        &app,
        Some(&invitee),
        "mutation($p: String!) { eraseUser(input: {password: $p}) }",
        json!({"p": PASSWORD}),
    )
    .await;
    assert_eq!(data(&body, "eraseUser"), true);
    let body = gql(
        &app,
        Some(&owner),
        "{ invitations { email status } members { email } }",
        json!({}),
    )
    .await;
    assert_eq!(data(&body, "invitations")[0]["email"], "[erased]", "{body}");
    assert_eq!(
        data(&body, "members").as_array().unwrap().len(),
        1,
        "the erased user left"
    );
    let body = gql(&app, Some(&invitee), "{ me { role } }", json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
    let erased = app.state.load(&app.state.users, invitee_id).await.unwrap();
    assert!(erased.erased, "the user's events still load");
    let applied = app
        .state
        .projectors
        .replay(None, std::time::Duration::from_secs(10), |_, _, _| {})
        .await
        .unwrap();
    assert!(applied.events > 0);
    let body = gql(&app, Some(&owner), "{ invitations { email } }", json!({})).await;
    assert_eq!(
        data(&body, "invitations")[0]["email"],
        "[erased]",
        "after replay too"
    );
    let again = gql(
        &app,
        None,
        "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { accessToken } }",
        json!({"e": INVITEE_EMAIL, "p": PASSWORD}),
    )
    .await;
    assert_eq!(error_code(&again), Some("UNAUTHENTICATED"));
}
