//! Identity end to end: invitations and roles, sessions, API keys, TOTP,
//! password reset, e-mail verification, erasure and the master key.

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use test_support::{Backend, TestApp, error_code, on_both_databases, spawn_app};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";

async fn log_in(app: &TestApp, email: &str, password: &str, extra: Value) -> Value {
    let mut input = json!({"email": email, "password": password});
    input
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    app.gql(
        None,
        "mutation($i: LogInInput!) { logIn(input: $i) { accessToken refreshToken sessionId role tenant { id } twoFactorEnrollmentRequired } }",
        json!({"i": input}),
    )
    .await
}

fn token(body: &Value, op: &str) -> String {
    body["data"][op]["accessToken"]
        .as_str()
        .unwrap_or_else(|| panic!("{op} failed: {body}"))
        .to_string()
}

async fn invite(app: &TestApp, by: &str, email: &str, role: &str) -> Value {
    app.gql(
        Some(by),
        "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { id email role status } }",
        json!({"i": {"email": email, "role": role}}),
    )
    .await
}

async fn invitations_roles_and_the_last_owner(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (owner, _) = app.sign_up("Acme", "owner@example.org").await;
    let (admin, admin_id) = app.add_member(&owner, "admin@example.org", "ADMIN").await;
    let (editor, editor_id) = app.add_member(&admin, "editor@example.org", "EDITOR").await;

    let members = app
        .gql(Some(&editor), "{ members { email role } }", json!({}))
        .await;
    assert_eq!(
        members["data"]["members"],
        json!([
            {"email": "owner@example.org", "role": "OWNER"},
            {"email": "admin@example.org", "role": "ADMIN"},
            {"email": "editor@example.org", "role": "EDITOR"},
        ])
    );

    // Role escalation and the last owner: refused, nothing stored.
    let before = app.event_count().await;
    let owner_id = app
        .gql(Some(&owner), "{ me { user { id } } }", json!({}))
        .await["data"]["me"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let change = "mutation($u: ID!, $r: MemberRole!) { changeMemberRole(input: {userId: $u, role: $r}) { role } }";
    for (who, query, vars, code) in [
        (
            &editor,
            "invite",
            json!({"e": "x@example.org", "r": "VIEWER"}),
            "FORBIDDEN",
        ),
        (
            &admin,
            "invite",
            json!({"e": "x@example.org", "r": "OWNER"}),
            "FORBIDDEN",
        ),
        (
            &admin,
            "change",
            json!({"u": owner_id, "r": "VIEWER"}),
            "FORBIDDEN",
        ),
        (
            &admin,
            "change",
            json!({"u": editor_id, "r": "OWNER"}),
            "FORBIDDEN",
        ),
        (
            &owner,
            "change",
            json!({"u": owner_id, "r": "ADMIN"}),
            "CONFLICT",
        ),
        (&owner, "remove", json!({"u": owner_id}), "CONFLICT"),
        (
            &owner,
            "invite",
            json!({"e": "not-an-address", "r": "VIEWER"}),
            "VALIDATION",
        ),
        (
            &owner,
            "change",
            json!({"u": Uuid::new_v4(), "r": "VIEWER"}),
            "NOT_FOUND",
        ),
    ] {
        let body = match query {
            "invite" => {
                invite(
                    &app,
                    who,
                    vars["e"].as_str().unwrap(),
                    vars["r"].as_str().unwrap(),
                )
                .await
            }
            "change" => app.gql(Some(who), change, vars.clone()).await,
            _ => {
                app.gql(
                    Some(who),
                    "mutation($u: ID!) { removeMember(userId: $u) }",
                    vars.clone(),
                )
                .await
            }
        };
        assert_eq!(error_code(&body), Some(code), "{query} {vars}: {body}");
    }
    assert_eq!(app.event_count().await, before, "refusals store nothing");

    // A token works once; a revoked or forged one not at all.
    let inv = invite(&app, &owner, "late@example.org", "VIEWER").await;
    let inv_id = inv["data"]["inviteMember"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let token_for_late = app.invitation_token(&owner, &inv_id).await;
    let accept = "mutation($t: String!, $p: String!) { acceptInvitation(input: {token: $t, password: $p}) { role } }";
    let ok = app
        .gql(None, accept, json!({"t": token_for_late, "p": PASSWORD}))
        .await;
    assert_eq!(ok["data"]["acceptInvitation"]["role"], "VIEWER", "{ok}");
    let again = app
        .gql(None, accept, json!({"t": token_for_late, "p": PASSWORD}))
        .await;
    assert_eq!(error_code(&again), Some("VALIDATION"), "{again}");
    let revoked = invite(&app, &owner, "never@example.org", "VIEWER").await;
    let revoked_id = revoked["data"]["inviteMember"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let revoked_token = app.invitation_token(&owner, &revoked_id).await;
    app.gql(
        Some(&owner),
        "mutation($id: ID!) { revokeInvitation(id: $id) { status } }",
        json!({"id": revoked_id}),
    )
    .await;
    let forged = format!("{}x", &revoked_token[..revoked_token.len() - 1]);
    for t in [revoked_token.as_str(), forged.as_str(), "hin_garbage", ""] {
        let body = app.gql(None, accept, json!({"t": t, "p": PASSWORD})).await;
        assert_eq!(error_code(&body), Some("VALIDATION"), "{t}: {body}");
    }

    // Role changes and removal take effect on the member's next request.
    let demoted = app
        .gql(Some(&owner), change, json!({"u": editor_id, "r": "VIEWER"}))
        .await;
    assert_eq!(demoted["data"]["changeMemberRole"]["role"], "VIEWER");
    let body = app
        .gql(
            Some(&editor),
            "mutation { createCampaign(input: {name: \"x\", timeZone: \"UTC\", startsOn: \"2030-01-01\", endsOn: \"2030-02-01\"}) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), Some("FORBIDDEN"));
    app.gql(
        Some(&owner),
        "mutation($u: ID!) { removeMember(userId: $u) }",
        json!({"u": admin_id}),
    )
    .await;
    let body = app.gql(Some(&admin), "{ me { role } }", json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
}

async fn a_user_in_two_tenants_chooses_and_switches(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (acme, acme_id) = app.sign_up("Acme", "ada@example.org").await;
    let (globex, globex_id) = app.sign_up("Globex", "grace@example.org").await;
    // Ada, already a user, accepts with her existing password.
    app.add_member(&globex, "ada@example.org", "EDITOR").await;
    let body = log_in(
        &app,
        "ada@example.org",
        PASSWORD,
        json!({"tenantId": globex_id}),
    )
    .await;
    assert_eq!(body["data"]["logIn"]["tenant"]["id"], globex_id.as_str());
    assert_eq!(body["data"]["logIn"]["role"], "EDITOR");
    let in_globex = token(&body, "logIn");
    let switched = app
        .gql(
            Some(&in_globex),
            "mutation($t: ID!) { switchTenant(tenantId: $t) { accessToken role tenant { id } } }",
            json!({"t": acme_id}),
        )
        .await;
    assert_eq!(
        switched["data"]["switchTenant"]["role"], "OWNER",
        "{switched}"
    );
    let old = app
        .gql(Some(&in_globex), "{ me { role } }", json!({}))
        .await;
    assert_eq!(
        error_code(&old),
        Some("UNAUTHENTICATED"),
        "switching ends the old session"
    );
    // A tenant one does not belong to is not found.
    let (_, other) = app.sign_up("Initech", "bob@example.org").await;
    let body = app
        .gql(
            Some(&acme),
            "mutation($t: ID!) { switchTenant(tenantId: $t) { role } }",
            json!({"t": other}),
        )
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"));
    // A wrong password for the existing account does not join it.
    let inv = invite(&app, &globex, "bob@example.org", "VIEWER").await;
    let t = app
        .invitation_token(&globex, inv["data"]["inviteMember"]["id"].as_str().unwrap())
        .await;
    let body = app
        .gql(
            None,
            "mutation($t: String!) { acceptInvitation(input: {token: $t, password: \"not bob's password\"}) { role } }",
            json!({"t": t}),
        )
        .await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
}

async fn sessions_are_listed_and_revoked(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    app.sign_up("Acme", "ada@example.org").await;
    let login = |ua: &'static str| {
        let client = app.client.clone();
        let url = format!("{}/graphql", app.address);
        async move {
            let body: Value = client
                .post(url)
                .header("user-agent", ua)
                .json(&json!({"query": format!("mutation {{ logIn(input: {{email: \"ada@example.org\", password: \"{PASSWORD}\"}}) {{ accessToken sessionId }} }}")}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (
                body["data"]["logIn"]["accessToken"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                body["data"]["logIn"]["sessionId"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        }
    };
    let (laptop, _) = login("Laptop/1.0").await;
    let (phone, phone_session) = login("Phone/2.0").await;
    let list = app
        .gql(
            Some(&laptop),
            "{ sessions { id userAgent ip current lastUsedAt } }",
            json!({}),
        )
        .await;
    let sessions = list["data"]["sessions"].as_array().expect("sessions");
    let phone_row = sessions
        .iter()
        .find(|s| s["userAgent"] == "Phone/2.0")
        .expect("phone session listed");
    assert_eq!(phone_row["ip"], "127.0.0.1");
    assert_eq!(phone_row["current"], false);
    assert!(
        sessions
            .iter()
            .any(|s| s["userAgent"] == "Laptop/1.0" && s["current"] == true)
    );
    let revoke = "mutation($id: ID!) { revokeSession(id: $id) }";
    let body = app
        .gql(Some(&laptop), revoke, json!({"id": phone_session}))
        .await;
    assert_eq!(body["data"]["revokeSession"], true);
    let dead = app.gql(Some(&phone), "{ me { role } }", json!({})).await;
    assert_eq!(error_code(&dead), Some("UNAUTHENTICATED"));
    // Someone else's session (or none) is not found.
    let (grace, _) = app.sign_up("Globex", "grace@example.org").await;
    let body = app
        .gql(Some(&grace), revoke, json!({"id": phone_session}))
        .await;
    assert_eq!(error_code(&body), Some("NOT_FOUND"));
    // Session metadata is sealed at rest.
    let raw: Vec<(Option<String>,)> = sqlx::query_as("SELECT user_agent FROM sessions")
        .fetch_all(&app.state.db.any)
        .await
        .unwrap();
    assert!(
        raw.iter()
            .all(|(ua,)| !ua.clone().unwrap_or_default().contains("Phone"))
    );
}

async fn api_keys_act_with_their_role_and_are_attributed(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (owner, _) = app.sign_up("Acme", "ada@example.org").await;
    let (admin, _) = app.add_member(&owner, "admin@example.org", "ADMIN").await;
    let create =
        "mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { key apiKey { id role } } }";
    let body = app
        .gql(
            Some(&admin),
            create,
            json!({"i": {"name": "owner bot", "role": "OWNER"}}),
        )
        .await;
    assert_eq!(
        error_code(&body),
        Some("FORBIDDEN"),
        "no key above one's role"
    );
    let body = app
        .gql(
            Some(&admin),
            create,
            json!({"i": {"name": "old", "role": "EDITOR", "expiresAt": "2020-01-01T00:00:00Z"}}),
        )
        .await;
    assert_eq!(error_code(&body), Some("VALIDATION"));
    let body = app
        .gql(
            Some(&admin),
            create,
            json!({"i": {"name": "CI bot", "role": "EDITOR"}}),
        )
        .await;
    let key = body["data"]["createApiKey"]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let key_id = body["data"]["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(key.starts_with("hak_"));

    let campaign = app.create_campaign(&key, "From CI").await;
    let (actor,): (String,) = sqlx::query_as(&format!(
        "SELECT CAST(metadata AS TEXT) FROM events WHERE aggregate_id = '{campaign}'"
    ))
    .fetch_one(&app.state.db.any)
    .await
    .unwrap();
    assert!(actor.contains(&format!("api_key:{key_id}")), "{actor}");
    let me = app
        .gql(Some(&key), "{ me { actor role user { id } } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["actor"], format!("api_key:{key_id}"));
    for forbidden in [
        "mutation { createApiKey(input: {name: \"x\", role: VIEWER}) { key } }",
        "mutation { inviteMember(input: {email: \"x@example.org\", role: VIEWER}) { id } }",
        "{ sessions { id } }",
    ] {
        let body = app.gql(Some(&key), forbidden, json!({})).await;
        assert_eq!(error_code(&body), Some("FORBIDDEN"), "{forbidden}: {body}");
    }
    // The raw key is nowhere in the database.
    let (events,): (i64,) = sqlx::query_as(&format!(
        "SELECT COUNT(*) FROM events WHERE CAST(payload AS TEXT) LIKE '%{}%'",
        &key[4..]
    ))
    .fetch_one(&app.state.db.any)
    .await
    .unwrap();
    assert_eq!(events, 0);

    let body = app
        .gql(
            Some(&owner),
            "mutation($id: ID!) { revokeApiKey(id: $id) { revokedAt } }",
            json!({"id": key_id}),
        )
        .await;
    assert!(
        body["data"]["revokeApiKey"]["revokedAt"].is_string(),
        "{body}"
    );
    let body = app.gql(Some(&key), "{ me { actor } }", json!({})).await;
    assert_eq!(
        error_code(&body),
        Some("UNAUTHENTICATED"),
        "a revoked key stops at once"
    );
}

on_both_databases!(
    invitations_roles_and_the_last_owner,
    a_user_in_two_tenants_chooses_and_switches,
    sessions_are_listed_and_revoked,
    api_keys_act_with_their_role_and_are_attributed,
    mails_carry_working_links_over_real_smtp,
);

fn now() -> u64 {
    chrono::Utc::now().timestamp() as u64
}

#[tokio::test]
async fn totp_enrollment_sign_in_backup_codes_and_tenant_requirement() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    let (owner, _) = app.sign_up("Acme", "ada@example.org").await;
    let body = app
        .gql(
            Some(&owner),
            "mutation { beginTotpEnrollment { secret otpauthUri qrCode } }",
            json!({}),
        )
        .await;
    let enrollment = &body["data"]["beginTotpEnrollment"];
    assert!(
        enrollment["otpauthUri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Herald:"),
        "{body}"
    );
    assert!(
        enrollment["qrCode"]
            .as_str()
            .unwrap()
            .starts_with("data:image/svg+xml;base64,")
    );
    let secret =
        api::identity::totp::decode_secret(enrollment["secret"].as_str().unwrap()).unwrap();
    let confirm = "mutation($c: String!) { confirmTotpEnrollment(code: $c) { backupCodes } }";
    let wrong = app.gql(Some(&owner), confirm, json!({"c": "000000"})).await;
    assert_eq!(error_code(&wrong), Some("VALIDATION"));
    // The code of the previous step: the next sign-in uses the current one.
    let body = app
        .gql(
            Some(&owner),
            confirm,
            json!({"c": api::identity::totp::code_at(&secret, now() - 30)}),
        )
        .await;
    let codes: Vec<String> =
        serde_json::from_value(body["data"]["confirmTotpEnrollment"]["backupCodes"].clone())
            .unwrap_or_else(|_| panic!("{body}"));
    assert_eq!(codes.len(), 10);

    let missing = log_in(&app, "ada@example.org", PASSWORD, json!({})).await;
    assert_eq!(error_code(&missing), Some("UNAUTHENTICATED"));
    assert_eq!(
        missing["errors"][0]["extensions"]["reason"],
        "TOTP_REQUIRED"
    );
    let bad = log_in(&app, "ada@example.org", PASSWORD, json!({"totp": "123456"})).await;
    assert_eq!(error_code(&bad), Some("VALIDATION"), "{bad}");
    assert_eq!(bad["errors"][0]["extensions"]["field"], "totp");
    let code = api::identity::totp::code_at(&secret, now());
    let ok = log_in(&app, "ada@example.org", PASSWORD, json!({"totp": code})).await;
    token(&ok, "logIn");
    let reused = log_in(&app, "ada@example.org", PASSWORD, json!({"totp": code})).await;
    assert_eq!(
        error_code(&reused),
        Some("VALIDATION"),
        "a code works once: {reused}"
    );
    let backup = log_in(&app, "ada@example.org", PASSWORD, json!({"totp": codes[0]})).await;
    let signed_in = token(&backup, "logIn");
    let again = log_in(&app, "ada@example.org", PASSWORD, json!({"totp": codes[0]})).await;
    assert_eq!(
        error_code(&again),
        Some("VALIDATION"),
        "a backup code works once"
    );

    // Owners can require 2FA: a member without it may only enroll, from the
    // next request of a session that already exists, too.
    let (vic_before, _) = app
        .add_member(&signed_in, "vic@example.org", "EDITOR")
        .await;
    let body = app
        .gql(
            Some(&signed_in),
            "mutation { requireTwoFactor(required: true) }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["requireTwoFactor"], true, "{body}");
    let blocked = app
        .gql(
            Some(&vic_before),
            "{ campaigns { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&blocked), Some("FORBIDDEN"), "live sessions too");
    let body = log_in(&app, "vic@example.org", PASSWORD, json!({})).await;
    assert_eq!(body["data"]["logIn"]["twoFactorEnrollmentRequired"], true);
    let vic = token(&body, "logIn");
    let blocked = app
        .gql(
            Some(&vic),
            "{ campaigns { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&blocked), Some("FORBIDDEN"));
    // The REST routes decide the same way (an upload stores nothing).
    let events = app.event_count().await;
    let (status, body) = app
        .upload(Some(&vic), "a.png", &test_support::png(4, 4))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("FORBIDDEN")),
        "{body}"
    );
    assert_eq!(app.event_count().await, events);
    let body = app
        .gql(
            Some(&vic),
            "mutation { beginTotpEnrollment { secret } }",
            json!({}),
        )
        .await;
    let vic_secret = api::identity::totp::decode_secret(
        body["data"]["beginTotpEnrollment"]["secret"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    app.gql(
        Some(&vic),
        confirm,
        json!({"c": api::identity::totp::code_at(&vic_secret, now())}),
    )
    .await;
    let open = app
        .gql(
            Some(&vic),
            "{ campaigns { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(open["errors"].is_null(), "{open}");

    // Disabling needs a fresh code.
    let disable = "mutation($c: String!) { disableTotp(code: $c) }";
    let stale = app.gql(Some(&signed_in), disable, json!({"c": code})).await;
    assert_eq!(error_code(&stale), Some("VALIDATION"));
    let body = app
        .gql(Some(&signed_in), disable, json!({"c": codes[1]}))
        .await;
    assert_eq!(body["data"]["disableTotp"], true, "{body}");
    let plain = log_in(&app, "ada@example.org", PASSWORD, json!({})).await;
    token(&plain, "logIn");
}

/// The reset a request started (it completes after the answer).
async fn pending_reset(app: &TestApp, email: &str) -> (Uuid, Uuid) {
    let email = domain::user::Email::parse(email).unwrap();
    let user_id = api::identity::accounts::user_id_for(&app.state.keyring, &email)
        .await
        .unwrap();
    for _ in 0..100 {
        let user = app.state.load(&app.state.users, user_id).await.unwrap();
        if let Some((reset, _)) = user.pending_reset {
            return (user_id, reset);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no reset was requested");
}

#[tokio::test]
async fn password_reset_is_single_use_and_ends_every_session() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    let (session, _) = app.sign_up("Acme", "ada@example.org").await;
    let request = "mutation($e: String!) { requestPasswordReset(email: $e) }";
    for email in ["ada@example.org", "nobody@example.org"] {
        let body = app.gql(None, request, json!({"e": email})).await;
        assert_eq!(
            body["data"]["requestPasswordReset"], true,
            "same answer for {email}"
        );
    }
    let (user, reset) = pending_reset(&app, "ada@example.org").await;
    let (purpose, prefix) = api::identity::accounts::RESET;
    let reset_token = app
        .state
        .keyring
        .issue_token(purpose, prefix, user, reset)
        .await
        .unwrap();
    let reset_token = reset_token.expose_secret();
    let mutation =
        "mutation($t: String!, $p: String!) { resetPassword(input: {token: $t, password: $p}) }";
    let before = app.event_count().await;
    let weak = app
        .gql(
            None,
            mutation,
            json!({"t": reset_token, "p": "password123"}),
        )
        .await;
    assert_eq!(error_code(&weak), Some("VALIDATION"));
    assert_eq!(app.event_count().await, before, "nothing stored");
    let body = app
        .gql(
            None,
            mutation,
            json!({"t": reset_token, "p": "a brand new passphrase"}),
        )
        .await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
    let old = app.gql(Some(&session), "{ me { role } }", json!({})).await;
    assert_eq!(
        error_code(&old),
        Some("UNAUTHENTICATED"),
        "sessions end on reset"
    );
    let reused = app
        .gql(
            None,
            mutation,
            json!({"t": reset_token, "p": "yet another passphrase"}),
        )
        .await;
    assert_eq!(error_code(&reused), Some("VALIDATION"));
    let forged = app
        .gql(
            None,
            mutation,
            json!({"t": "hpr_AAAA", "p": "yet another passphrase"}),
        )
        .await;
    assert_eq!(error_code(&forged), Some("VALIDATION"));
    token(
        &log_in(&app, "ada@example.org", "a brand new passphrase", json!({})).await,
        "logIn",
    );
    let old_password = log_in(&app, "ada@example.org", PASSWORD, json!({})).await;
    assert_eq!(error_code(&old_password), Some("UNAUTHENTICATED"));
}

#[tokio::test]
async fn e_mail_verification_marks_the_address() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    let (session, _) = app.sign_up("Acme", "ada@example.org").await;
    let email = domain::user::Email::parse("ada@example.org").unwrap();
    let user_id = api::identity::accounts::user_id_for(&app.state.keyring, &email)
        .await
        .unwrap();
    let user = app.state.load(&app.state.users, user_id).await.unwrap();
    let (verification, _) = user
        .pending_verification
        .expect("verification requested at sign-up");
    let (purpose, prefix) = api::identity::accounts::VERIFY;
    let t = app
        .state
        .keyring
        .issue_token(purpose, prefix, user_id, verification)
        .await
        .unwrap();
    let verify = "mutation($t: String!) { verifyEmail(token: $t) }";
    let body = app.gql(None, verify, json!({"t": t.expose_secret()})).await;
    assert_eq!(body["data"]["verifyEmail"], true, "{body}");
    let me = app
        .gql(
            Some(&session),
            "{ me { user { emailVerified } } }",
            json!({}),
        )
        .await;
    assert_eq!(me["data"]["me"]["user"]["emailVerified"], true);
    let again = app.gql(None, verify, json!({"t": t.expose_secret()})).await;
    assert_eq!(error_code(&again), Some("VALIDATION"));
}

#[tokio::test]
async fn an_expired_or_forged_access_token_is_refused() {
    let mut config = api::Settings::for_database(&test_support::fresh_sqlite());
    config.identity.access_ttl_seconds = 1;
    let app = test_support::spawn_with(config).await;
    let (session, _) = app.sign_up("Acme", "ada@example.org").await;
    for forged in ["hat_forged", "hak_forged", "Basic abc", "hat_"] {
        let body = app.gql(Some(forged), "{ me { role } }", json!({})).await;
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{forged}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let body = app.gql(Some(&session), "{ me { role } }", json!({})).await;
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "expired");
}

#[tokio::test]
async fn the_master_key_rotates_and_a_missing_one_is_generated_for_the_embedded_database() {
    let url = test_support::fresh_sqlite();
    let mut config = api::Settings::for_database(&url);
    config.identity.master_key = None;
    let _ = std::fs::remove_dir_all(&config.data_dir);
    let db = config.connect().await.unwrap();
    let keyring = api::identity::keys::keyring(&config, &db).unwrap();
    assert!(config.data_dir.join("master.key").exists(), "generated");
    let sealed = keyring
        .seal(&projections::Scope::User(Uuid::new_v4()), "ada@example.org")
        .await
        .unwrap();
    api::identity::keys::rotate(&config, &db).await.unwrap();
    // A fresh keyring from the (replaced) key file opens what the old key wrapped.
    let rotated = api::identity::keys::keyring(&config, &db).unwrap();
    assert_eq!(rotated.reveal(&sealed).await.unwrap(), "ada@example.org");
    assert!(config.data_dir.join("master.key.previous").exists());
    // PostgreSQL needs a configured key.
    let mut pg = api::Settings::for_database(&test_support::fresh_postgres().await);
    pg.identity.master_key = None;
    let _ = std::fs::remove_dir_all(&pg.data_dir);
    let pg_db = pg.connect().await.unwrap();
    assert!(api::identity::keys::keyring(&pg, &pg_db).is_err());
}

#[tokio::test]
async fn repeated_failures_lock_the_account_and_the_answer_reveals_nothing() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    app.sign_up("Acme", "ada@example.org").await;
    for email in ["ada@example.org", "nobody@example.org"] {
        let mut codes = Vec::new();
        for _ in 0..7 {
            let body = log_in(&app, email, "not the password at all", json!({})).await;
            codes.push(error_code(&body).unwrap().to_string());
        }
        // Five failures are answered as such; then the account is locked,
        // existing or not, with a retry time.
        assert_eq!(&codes[..5], ["UNAUTHENTICATED"; 5], "{email}");
        assert_eq!(codes[6], "RATE_LIMITED", "{email}: {codes:?}");
    }
    let locked = log_in(&app, "ada@example.org", PASSWORD, json!({})).await;
    assert_eq!(
        error_code(&locked),
        Some("RATE_LIMITED"),
        "even the right password waits"
    );
    let retry = locked["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    assert!(
        !locked.to_string().contains("ada@"),
        "no address in the error"
    );
}

/// The token in a mail body (the text after "token=" on its link line).
fn token_in(body: &str, prefix: &str) -> String {
    let start = body
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} token in {body}"));
    body[start..]
        .split(|c: char| c.is_whitespace() || c == '&')
        .next()
        .unwrap()
        .to_string()
}

async fn mails_carry_working_links_over_real_smtp(backend: Backend) {
    let smtp = test_support::smtp::SmtpServer::start();
    let mut config = api::Settings::for_database(&backend.fresh().await);
    config.mail.smtp_url = Some(smtp.url.clone().into());
    config.http.public_url = Some("https://herald.example.org".into());
    let app = test_support::spawn_with(config).await;
    let wait = std::time::Duration::from_secs(20);

    let (owner, _) = app.sign_up("Acme", "ada@example.org").await;
    let mails = smtp.wait_for(1, wait).await;
    assert_eq!(mails[0].to, "ada@example.org");
    assert!(
        mails[0]
            .body
            .contains("https://herald.example.org/verify-email?token=hev_"),
        "{}",
        mails[0].body
    );
    // The link opens a form (GET changes nothing); submitting it confirms.
    let token = token_in(&mails[0].body, "hev_");
    let form = app
        .client
        .get(format!("{}/verify-email?token={token}", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    assert!(
        form.text()
            .await
            .unwrap()
            .contains(&format!("value=\"{token}\""))
    );
    let submit = || {
        app.client
            .post(format!("{}/verify-email", app.address))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
    };
    let done = submit().await.unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Address confirmed"));
    let me = app
        .gql(Some(&owner), "{ me { user { emailVerified } } }", json!({}))
        .await;
    assert_eq!(me["data"]["me"]["user"]["emailVerified"], true);
    assert_eq!(submit().await.unwrap().status(), 400, "a link works once");

    invite(&app, &owner, "grace@example.org", "EDITOR").await;
    let mails = smtp.wait_for(2, wait).await;
    let invitation = mails
        .iter()
        .find(|m| m.to == "grace@example.org")
        .expect("invitation mail");
    let accepted = app
        .gql(
            None,
            "mutation($t: String!, $p: String!) { acceptInvitation(input: {token: $t, password: $p}) { role } }",
            json!({"t": token_in(&invitation.body, "hin_"), "p": PASSWORD}),
        )
        .await;
    assert_eq!(
        accepted["data"]["acceptInvitation"]["role"], "EDITOR",
        "{accepted}"
    );

    app.gql(
        None,
        "mutation { requestPasswordReset(email: \"grace@example.org\") }",
        json!({}),
    )
    .await;
    app.gql(
        None,
        "mutation { requestPasswordReset(email: \"nobody@example.org\") }",
        json!({}),
    )
    .await;
    let mails = smtp.wait_for(3, wait).await;
    let reset = mails
        .iter()
        .find(|m| m.body.contains("hpr_"))
        .expect("reset mail");
    assert_eq!(reset.to, "grace@example.org");
    let body = app
        .gql(
            None,
            "mutation($t: String!) { resetPassword(input: {token: $t, password: \"a brand new passphrase\"}) }",
            json!({"t": token_in(&reset.body, "hpr_")}),
        )
        .await;
    assert_eq!(body["data"]["resetPassword"], true, "{body}");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        smtp.messages().len(),
        3,
        "no mail for an unknown address, none twice"
    );
    // The outbox holds neither the address nor the token in plaintext.
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT recipient, body FROM mail_outbox")
        .fetch_all(&app.state.db.any)
        .await
        .unwrap();
    assert!(
        rows.iter()
            .all(|(to, body)| to.starts_with("hk1:") && !body.contains("hpr_"))
    );
}

#[tokio::test]
async fn dead_sessions_are_forgotten_and_live_ones_kept() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    let (live, _) = app.sign_up("Acme", "ada@example.org").await;
    let old = log_in(&app, "ada@example.org", PASSWORD, json!({})).await;
    let old_refresh = old["data"]["logIn"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    let old_session = old["data"]["logIn"]["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    // Rotate once (a rotated-token record), then let the session expire.
    app.gql(
        None,
        "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
        json!({"t": old_refresh}),
    )
    .await;
    sqlx::query("UPDATE sessions SET refresh_expires_at = 1 WHERE id = $1")
        .bind(&old_session)
        .execute(&app.state.db.any)
        .await
        .unwrap();
    assert_eq!(app.state.sessions.forget_dead().await.unwrap(), 1);
    let (sessions, rotated): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM sessions), (SELECT COUNT(*) FROM rotated_refresh_tokens)",
    )
    .fetch_one(&app.state.db.any)
    .await
    .unwrap();
    assert_eq!((sessions, rotated), (1, 0));
    let me = app.gql(Some(&live), "{ me { role } }", json!({})).await;
    assert_eq!(me["data"]["me"]["role"], "OWNER", "the live session stays");
}
