//! Sign-up is all or nothing: a failure on the way leaves the address free,
//! and a sign-up left half-finished by an older Herald can be completed.

use api::state::Target;
use domain::metadata::{Actor, EventMetadata};
use domain::user::{Email, UserCommand};
use projections::Scope;
use serde_json::{Value, json};
use test_support::{Backend, TestApp, error_code, on_both_databases, spawn_app};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";

async fn sign_up(app: &TestApp, organization: &str, email: &str, password: &str) -> Value {
    app.gql(
        None,
        "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken tenant { id name } } }",
        json!({"i": {"organization": organization, "email": email, "password": password}}),
    )
    .await
}

async fn log_in(app: &TestApp, email: &str, password: &str) -> Value {
    app.gql(
        None,
        "mutation($i: LogInInput!) { logIn(input: $i) { accessToken tenant { name } } }",
        json!({"i": {"email": email, "password": password}}),
    )
    .await
}

async fn count(app: &TestApp, aggregate_type: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE aggregate_type = $1")
        .bind(aggregate_type)
        .fetch_one(&app.state.db.any)
        .await
        .unwrap();
    n
}

/// Makes every append of a Tenant event fail, as a database failure between
/// sign-up's steps would.
async fn break_tenant_writes(app: &TestApp, backend: Backend) {
    let statements: &[&str] = match backend {
        Backend::Postgres => &[
            "CREATE FUNCTION refuse_tenant() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$",
            "CREATE TRIGGER refuse_tenant BEFORE INSERT ON events FOR EACH ROW
             WHEN (NEW.aggregate_type = 'Tenant') EXECUTE FUNCTION refuse_tenant()",
        ],
        Backend::Sqlite => &["CREATE TRIGGER refuse_tenant BEFORE INSERT ON events
             WHEN NEW.aggregate_type = 'Tenant'
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"],
    };
    for sql in statements {
        sqlx::query(sql).execute(&app.state.db.any).await.unwrap();
    }
}

async fn mend_tenant_writes(app: &TestApp) {
    sqlx::query("DROP TRIGGER refuse_tenant ON events")
        .execute(&app.state.db.any)
        .await
        .or(sqlx::query("DROP TRIGGER refuse_tenant")
            .execute(&app.state.db.any)
            .await)
        .unwrap();
}

async fn a_failed_sign_up_leaves_the_address_free(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    break_tenant_writes(&app, backend).await;

    let failed = sign_up(&app, "Acme", "ada@example.org", PASSWORD).await;
    assert!(
        failed["data"].is_null() || failed["data"]["signUp"].is_null(),
        "{failed}"
    );
    assert!(
        failed["errors"].is_array(),
        "the failure is reported: {failed}"
    );
    assert_eq!(count(&app, "User").await, 0, "no half of the sign-up stays");
    assert_eq!(count(&app, "Tenant").await, 0);

    mend_tenant_writes(&app).await;
    let retried = sign_up(&app, "Acme", "ada@example.org", PASSWORD).await;
    assert!(
        retried["data"]["signUp"]["accessToken"].is_string(),
        "the retry signs up: {retried}"
    );
    let logged_in = log_in(&app, "ada@example.org", PASSWORD).await;
    assert_eq!(
        logged_in["data"]["logIn"]["tenant"]["name"], "Acme",
        "{logged_in}"
    );
}

/// What Herald before atomic sign-up could leave behind: the user
/// registered, the organisation never created.
async fn register_only(app: &TestApp, address: &str) -> Uuid {
    let state = &app.state;
    let email = Email::parse(address).unwrap();
    let user_id = api::identity::accounts::user_id_for(&state.keyring, &email)
        .await
        .unwrap();
    let scope = Scope::User(user_id);
    let sealed_email = state.keyring.seal(&scope, address).await.unwrap();
    let password_hash = state.keyring.seal(&scope, "no one's hash").await.unwrap();
    let meta = EventMetadata::new(
        Uuid::now_v7(),
        Actor::User(user_id),
        Uuid::now_v7(),
        chrono::Utc::now(),
    );
    state
        .execute_as(
            &state.users,
            Target::Existing(user_id),
            UserCommand::Register {
                email: sealed_email,
                password_hash,
                email_verified: false,
                replaces_unfinished: false,
            },
            &meta,
        )
        .await
        .unwrap();
    user_id
}

async fn a_half_finished_sign_up_is_completed_by_the_next(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    register_only(&app, "grace@example.org").await;
    assert_eq!(
        error_code(&log_in(&app, "grace@example.org", PASSWORD).await),
        Some("UNAUTHENTICATED"),
        "the half-finished account cannot log in"
    );

    let repaired = sign_up(&app, "Grace Ltd", "grace@example.org", PASSWORD).await;
    assert!(
        repaired["data"]["signUp"]["accessToken"].is_string(),
        "signing up again completes it: {repaired}"
    );
    let logged_in = log_in(&app, "grace@example.org", PASSWORD).await;
    assert_eq!(
        logged_in["data"]["logIn"]["tenant"]["name"], "Grace Ltd",
        "{logged_in}"
    );

    // A finished sign-up is never taken over.
    let again = sign_up(&app, "Other", "grace@example.org", "another long password").await;
    assert_eq!(error_code(&again), Some("CONFLICT"), "{again}");
    assert_eq!(count(&app, "Tenant").await, 1);
}

async fn concurrent_sign_ups_of_one_address_make_one_organisation(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let attempts = (0..4).map(|n| {
        let app = &app;
        async move { sign_up(app, &format!("Org {n}"), "lin@example.org", PASSWORD).await }
    });
    let answers = futures_util::future::join_all(attempts).await;
    let won = answers
        .iter()
        .filter(|a| a["data"]["signUp"]["accessToken"].is_string())
        .count();
    assert_eq!(won, 1, "exactly one sign-up wins: {answers:?}");
    for answer in answers.iter().filter(|a| a["errors"].is_array()) {
        assert_eq!(error_code(answer), Some("CONFLICT"), "{answer}");
    }
    assert_eq!(count(&app, "Tenant").await, 1);
}

on_both_databases!(
    a_failed_sign_up_leaves_the_address_free,
    a_half_finished_sign_up_is_completed_by_the_next,
    concurrent_sign_ups_of_one_address_make_one_organisation,
);
