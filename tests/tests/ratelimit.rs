//! The brute-force guard against real databases: the window limit and its
//! reopening, the exponential lock-out and its cap, resets on success and
//! after a quiet period, cleanup, and concurrent attempts from two pools
//! (two processes) that must not get past the limit together. Time is a
//! manual clock, so nothing sleeps.
//!
//! Then the limits as a client meets them, against the running app: sign-up
//! per IP, at most one `signUp`/`logIn`/`acceptInvitation` per request (so
//! aliases cannot multiply them), and aliases of other limited mutations
//! counted one by one.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use api::identity::ratelimit::{Limited, Policy, RateLimitError, RateLimiter, key};
use chrono::Utc;
use projections::{Database, from_micros, micros};
use serde_json::{Value, json};
use sqlx::Row;
use test_support::{Backend, TestApp, database, error_code, on_both_databases, spawn_with};

on_both_databases!(
    the_window_limit_holds_and_reopens_after_the_window,
    lockout_grows_exponentially_and_caps,
    a_success_resets_failures_and_ends_a_lockout,
    failures_are_forgotten_after_a_quiet_period,
    concurrent_hits_from_two_pools_let_exactly_the_limit_through,
    cleanup_deletes_only_rows_that_hold_nothing,
    keys_of_different_subjects_and_policies_count_apart,
    sign_ups_from_one_address_are_limited_per_hour,
    aliased_sign_ups_in_one_request_are_refused_and_create_nothing,
    one_sign_in_or_invitation_acceptance_per_request,
    aliases_of_other_limited_mutations_count_one_by_one,
);

const SECRET: &[u8] = b"test secret";

/// A clock the test moves by hand.
#[derive(Clone)]
struct Clock(Arc<AtomicI64>);

impl Clock {
    fn new() -> Self {
        Self(Arc::new(AtomicI64::new(micros(Utc::now()))))
    }

    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_micros() as i64, Ordering::SeqCst);
    }

    fn limiter(&self, db: &Database) -> RateLimiter {
        let now = self.0.clone();
        RateLimiter::new(db.any.clone()).with_clock(move || from_micros(now.load(Ordering::SeqCst)))
    }
}

const SMALL: Policy = Policy {
    name: "test_small",
    max_hits: 3,
    window: Duration::from_secs(60),
    lockout_after: 3,
    lockout_base: Duration::from_secs(10),
    lockout_max: Duration::from_secs(100),
    forget_after: Duration::from_secs(600),
};

fn limited(result: Result<(), RateLimitError>) -> Limited {
    match result {
        Err(RateLimitError::Limited(l)) => l,
        Err(RateLimitError::Database(e)) => panic!("database error: {e}"),
        Ok(()) => panic!("attempt was admitted, expected a refusal"),
    }
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

async fn the_window_limit_holds_and_reopens_after_the_window(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    let clock = Clock::new();
    let limiter = clock.limiter(&db);
    let k = key(&SMALL, "203.0.113.7", SECRET);

    for _ in 0..3 {
        limiter.hit(&SMALL, &k).await.expect("within the limit");
    }
    clock.advance(Duration::from_secs(20));
    let refused = limited(limiter.hit(&SMALL, &k).await);
    assert_eq!(secs(refused.retry_after), 40.0, "until the window ends");
    assert_eq!(refused.retry_after_secs(), 40);

    // Refused attempts count but do not push the window's end out.
    clock.advance(Duration::from_secs(39));
    let refused = limited(limiter.hit(&SMALL, &k).await);
    assert_eq!(secs(refused.retry_after), 1.0);

    clock.advance(Duration::from_secs(1));
    for _ in 0..3 {
        limiter.hit(&SMALL, &k).await.expect("a new window");
    }
    limited(limiter.hit(&SMALL, &k).await);
}

async fn lockout_grows_exponentially_and_caps(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    let clock = Clock::new();
    let limiter = clock.limiter(&db);
    let k = key(&SMALL, "alice@example.org", SECRET);

    assert_eq!(limiter.failure(&SMALL, &k).await.unwrap(), None);
    assert_eq!(limiter.failure(&SMALL, &k).await.unwrap(), None);
    limiter.hit(&SMALL, &k).await.expect("not locked yet");

    // 3rd failure: 10 s, then 20, 40, 80, and 100 (the cap) from then on.
    let mut lockouts = Vec::new();
    for failures in 3..=8 {
        let lock = limiter.failure(&SMALL, &k).await.unwrap().expect("locked");
        assert_eq!(
            Some(lock.retry_after),
            SMALL.lockout(failures),
            "SQL and Rust agree"
        );
        lockouts.push(secs(lock.retry_after));
        // The lock refuses attempts for exactly its length.
        clock.advance(Duration::from_secs(60)); // also opens a fresh window
        if lock.retry_after > Duration::from_secs(60) {
            let refused = limited(limiter.hit(&SMALL, &k).await);
            assert_eq!(
                refused.retry_after,
                lock.retry_after - Duration::from_secs(60)
            );
            clock.advance(lock.retry_after - Duration::from_secs(60));
        }
        limiter.hit(&SMALL, &k).await.expect("the lock has ended");
    }
    assert_eq!(lockouts, [10.0, 20.0, 40.0, 80.0, 100.0, 100.0]);

    // Locked right now: a hit is refused for the lock's remaining time.
    let lock = limiter.failure(&SMALL, &k).await.unwrap().unwrap();
    clock.advance(Duration::from_secs(30));
    let refused = limited(limiter.hit(&SMALL, &k).await);
    assert_eq!(
        refused.retry_after,
        lock.retry_after - Duration::from_secs(30)
    );
}

async fn a_success_resets_failures_and_ends_a_lockout(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    let clock = Clock::new();
    let limiter = clock.limiter(&db);
    let k = key(&SMALL, "bob@example.org", SECRET);

    limiter.failure(&SMALL, &k).await.unwrap();
    limiter.failure(&SMALL, &k).await.unwrap();
    limiter.success(&SMALL, &k).await.unwrap();
    // Two more failures would have locked; after the reset they do not.
    assert_eq!(limiter.failure(&SMALL, &k).await.unwrap(), None);
    assert_eq!(limiter.failure(&SMALL, &k).await.unwrap(), None);
    let lock = limiter
        .failure(&SMALL, &k)
        .await
        .unwrap()
        .expect("3 in a row");
    assert_eq!(secs(lock.retry_after), 10.0, "counting starts over");

    limiter.success(&SMALL, &k).await.unwrap();
    limiter
        .hit(&SMALL, &k)
        .await
        .expect("a success ends the lock-out");

    // A success on a key never seen is harmless.
    let fresh = key(&SMALL, "nobody@example.org", SECRET);
    limiter.success(&SMALL, &fresh).await.unwrap();
    limiter.hit(&SMALL, &fresh).await.unwrap();
}

async fn failures_are_forgotten_after_a_quiet_period(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    let clock = Clock::new();
    let limiter = clock.limiter(&db);
    let k = key(&SMALL, "carol@example.org", SECRET);

    limiter.failure(&SMALL, &k).await.unwrap();
    limiter.failure(&SMALL, &k).await.unwrap();
    clock.advance(SMALL.forget_after - Duration::from_secs(1));
    assert!(
        limiter.failure(&SMALL, &k).await.unwrap().is_some(),
        "still remembered just before forget_after"
    );

    clock.advance(SMALL.forget_after);
    assert_eq!(limiter.failure(&SMALL, &k).await.unwrap(), None);
    assert_eq!(limiter.failure(&SMALL, &k).await.unwrap(), None);
    let lock = limiter.failure(&SMALL, &k).await.unwrap().unwrap();
    assert_eq!(
        secs(lock.retry_after),
        10.0,
        "the ladder starts again at its base"
    );
}

async fn concurrent_hits_from_two_pools_let_exactly_the_limit_through(backend: Backend) {
    let url = backend.fresh().await;
    // Two pools on one database stand in for two `herald api` processes.
    let one = database(&url).await;
    let two = Database::connect(&url, 16).await.unwrap();
    let clock = Clock::new();
    let limiters = [clock.limiter(&one), clock.limiter(&two)];
    let policy = Policy {
        max_hits: 5,
        ..SMALL
    };
    let k = key(&policy, "203.0.113.9", SECRET);

    let attempts = (0..20).map(|i| {
        let limiter = limiters[i % 2].clone();
        let k = k.clone();
        tokio::spawn(async move { limiter.hit(&policy, &k).await })
    });
    let mut admitted = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        match attempt.await.unwrap() {
            Ok(()) => admitted += 1,
            Err(RateLimitError::Limited(l)) => {
                assert_eq!(secs(l.retry_after), 60.0, "until the window ends");
            }
            Err(RateLimitError::Database(e)) => panic!("database error: {e}"),
        }
    }
    assert_eq!(admitted, 5);
    // More connections than the one each pool opened at start: attempts
    // really ran at the same time.
    assert!(
        one.any.size() + two.any.size() > 2,
        "the attempts overlapped"
    );

    let hits: i64 = sqlx::query("SELECT hits FROM rate_limits WHERE key = $1")
        .bind(&k)
        .fetch_one(&one.any)
        .await
        .unwrap()
        .try_get("hits")
        .unwrap();
    assert_eq!(hits, 20, "every attempt was counted once");

    // Concurrent failures are counted exactly too: 3 lock, the 20th is at
    // the cap.
    let failures = (0..20).map(|i| {
        let limiter = limiters[i % 2].clone();
        let k = k.clone();
        tokio::spawn(async move { limiter.failure(&policy, &k).await })
    });
    let mut locks = Vec::new();
    for failure in failures.collect::<Vec<_>>() {
        if let Some(lock) = failure.await.unwrap().unwrap() {
            locks.push(lock.retry_after);
        }
    }
    assert_eq!(locks.len(), 18, "all but the first two lock");
    assert_eq!(locks.iter().max(), Some(&policy.lockout_max));
    let failures: i64 = sqlx::query("SELECT failures FROM rate_limits WHERE key = $1")
        .bind(&k)
        .fetch_one(&two.any)
        .await
        .unwrap()
        .try_get("failures")
        .unwrap();
    assert_eq!(failures, 20);
}

async fn cleanup_deletes_only_rows_that_hold_nothing(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    let clock = Clock::new();
    let limiter = clock.limiter(&db);
    let counted = key(&SMALL, "counted", SECRET);
    let failed = key(&SMALL, "failed", SECRET);
    let count = || async {
        sqlx::query("SELECT COUNT(*) AS n FROM rate_limits")
            .fetch_one(&db.any)
            .await
            .unwrap()
            .try_get::<i64, _>("n")
            .unwrap()
    };

    limiter.hit(&SMALL, &counted).await.unwrap();
    for _ in 0..3 {
        limiter.failure(&SMALL, &failed).await.unwrap();
    }
    assert_eq!(limiter.cleanup().await.unwrap(), 0);

    // The window is over; the failures are still remembered.
    clock.advance(SMALL.window);
    assert_eq!(limiter.cleanup().await.unwrap(), 1);
    assert_eq!(count().await, 1);
    clock.advance(SMALL.forget_after);
    assert_eq!(limiter.cleanup().await.unwrap(), 1);
    assert_eq!(count().await, 0);

    // A deleted key starts from nothing.
    limiter.hit(&SMALL, &failed).await.expect("no lock left");
}

async fn keys_of_different_subjects_and_policies_count_apart(backend: Backend) {
    let db = database(&backend.fresh().await).await;
    let clock = Clock::new();
    let limiter = clock.limiter(&db);
    let other = Policy {
        name: "test_other",
        ..SMALL
    };
    let a = key(&SMALL, "alice@example.org", SECRET);
    for _ in 0..3 {
        limiter.hit(&SMALL, &a).await.unwrap();
    }
    limited(limiter.hit(&SMALL, &a).await);
    limiter
        .hit(&SMALL, &key(&SMALL, "bob@example.org", SECRET))
        .await
        .expect("another subject has its own count");
    limiter
        .hit(&other, &key(&other, "alice@example.org", SECRET))
        .await
        .expect("another policy has its own count");

    // Nothing in the table reveals the subject.
    let keys: Vec<String> = sqlx::query("SELECT key FROM rate_limits")
        .fetch_all(&db.any)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get("key").unwrap())
        .collect();
    assert_eq!(keys.len(), 3);
    assert!(
        keys.iter()
            .all(|k| !k.contains("alice") && !k.contains("bob"))
    );
}

const SIGN_UP: &str = "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken } }";
const PASSWORD: &str = "correct horse battery";

/// The app on a fresh database of `backend`, allowing `sign_ups` sign-ups
/// per address and hour.
async fn app_allowing(backend: Backend, sign_ups: u32) -> TestApp {
    let mut config = api::Settings::for_database(&backend.fresh().await);
    config.identity.sign_ups_per_hour = sign_ups;
    spawn_with(config).await
}

fn sign_up_input(n: usize) -> Value {
    json!({"organization": format!("Org {n}"), "email": format!("owner{n}@example.org"), "password": PASSWORD})
}

async fn log_in(app: &TestApp, email: &str) -> Value {
    app.gql(
        None,
        "mutation($i: LogInInput!) { logIn(input: $i) { accessToken } }",
        json!({"i": {"email": email, "password": PASSWORD}}),
    )
    .await
}

async fn sign_ups_from_one_address_are_limited_per_hour(backend: Backend) {
    let app = app_allowing(backend, 3).await;
    // A malformed sign-up is refused before it counts.
    let bad = app
        .gql(
            None,
            SIGN_UP,
            json!({"i": {"organization": "Typo", "email": "not an address", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(error_code(&bad), Some("VALIDATION"), "{bad}");
    for n in 0..3 {
        let body = app.gql(None, SIGN_UP, json!({"i": sign_up_input(n)})).await;
        assert!(
            body["data"]["signUp"]["accessToken"].is_string(),
            "sign-up {n}: {body}"
        );
    }
    let before = app.event_count().await;
    let refused = app.gql(None, SIGN_UP, json!({"i": sign_up_input(3)})).await;
    assert_eq!(error_code(&refused), Some("RATE_LIMITED"), "{refused}");
    let retry = refused["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap();
    assert!(
        (3500..=3600).contains(&retry),
        "until the hour is over: {retry}"
    );
    assert_eq!(app.event_count().await, before, "nothing stored");
    assert_eq!(
        error_code(&log_in(&app, "owner3@example.org").await),
        Some("UNAUTHENTICATED")
    );
    // Signing in is not signing up: its own limits apply.
    let body = log_in(&app, "owner0@example.org").await;
    assert!(body["data"]["logIn"]["accessToken"].is_string(), "{body}");
}

async fn aliased_sign_ups_in_one_request_are_refused_and_create_nothing(backend: Backend) {
    let app = app_allowing(backend, 100).await;
    let before = app.event_count().await;
    let fields: String = (0..50)
        .map(|n| format!("s{n}: signUp(input: $i{n}) {{ accessToken }} "))
        .collect();
    let params: Vec<String> = (0..50).map(|n| format!("$i{n}: SignUpInput!")).collect();
    let query = format!("mutation({}) {{ {fields} }}", params.join(", "));
    let variables: serde_json::Map<String, Value> = (0..50)
        .map(|n| (format!("i{n}"), sign_up_input(n)))
        .collect();
    let body = app.gql(None, &query, Value::Object(variables)).await;
    assert_eq!(error_code(&body), Some("VALIDATION"), "{body}");
    assert_eq!(body["errors"].as_array().unwrap().len(), 1, "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most one of signUp"),
        "{body}"
    );
    assert!(body["data"].is_null(), "nothing ran: {body}");
    assert_eq!(
        app.event_count().await,
        before,
        "no organisation was created"
    );
    assert_eq!(
        error_code(&log_in(&app, "owner0@example.org").await),
        Some("UNAUTHENTICATED")
    );
    // The refused request did not use up the address's sign-ups either.
    let body = app.gql(None, SIGN_UP, json!({"i": sign_up_input(0)})).await;
    assert!(body["data"]["signUp"]["accessToken"].is_string(), "{body}");
}

async fn one_sign_in_or_invitation_acceptance_per_request(backend: Backend) {
    let app = app_allowing(backend, 100).await;
    app.sign_up("Acme", "ada@example.org").await;
    let login = r#"logIn(input: {email: "ada@example.org", password: "correct horse battery"}) { accessToken }"#;
    let accept = r#"acceptInvitation(input: {token: "hinv_forged", password: "correct horse battery"}) { accessToken }"#;
    let sign_up = r#"signUp(input: {organization: "Other", email: "grace@example.org", password: "correct horse battery"}) { accessToken }"#;
    let before = app.event_count().await;
    for query in [
        format!("mutation {{ a: {login} b: {login} }}"),
        format!("mutation {{ {login} {sign_up} }}"),
        format!("mutation {{ a: {accept} b: {accept} }}"),
        format!("mutation {{ {sign_up} ...F }} fragment F on Mutation {{ {login} }}"),
        format!("mutation {{ ... on Mutation {{ a: {login} }} ... on Mutation {{ b: {login} }} }}"),
    ] {
        let body = app.gql(None, &query, json!({})).await;
        assert_eq!(error_code(&body), Some("VALIDATION"), "{query}: {body}");
        assert!(body["data"].is_null(), "{query}: {body}");
    }
    assert_eq!(app.event_count().await, before);
    // One of them, beside other fields, is fine.
    let body = app
        .gql(
            None,
            &format!("mutation {{ {login} requestPasswordReset(email: \"ada@example.org\") }}"),
            json!({}),
        )
        .await;
    assert!(body["data"]["logIn"]["accessToken"].is_string(), "{body}");
}

async fn aliases_of_other_limited_mutations_count_one_by_one(backend: Backend) {
    let app = app_allowing(backend, 100).await;
    app.sign_up("Acme", "ada@example.org").await;
    // Three reset mails per address and hour: the fourth alias is refused.
    let fields: String = (0..4)
        .map(|n| format!(r#"r{n}: requestPasswordReset(email: "ada@example.org") "#))
        .collect();
    let body = app
        .gql(None, &format!("mutation {{ {fields} }}"), json!({}))
        .await;
    for n in 0..3 {
        assert_eq!(body["data"][format!("r{n}")], true, "{body}");
    }
    assert!(body["data"]["r3"].is_null(), "{body}");
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["r3"]), "{body}");
    assert!(
        body["errors"][0]["extensions"]["retryAfter"]
            .as_u64()
            .unwrap()
            > 0
    );
    // And the limit holds for the next request too.
    let body = app
        .gql(
            None,
            r#"mutation { requestPasswordReset(email: "ada@example.org") }"#,
            json!({}),
        )
        .await;
    assert_eq!(error_code(&body), Some("RATE_LIMITED"), "{body}");
}
