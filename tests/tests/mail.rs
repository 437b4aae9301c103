//! The mail outbox against a real SMTP server (aiosmtpd) on both databases:
//! delivery exactly once, idempotent enqueueing, retries while the server is
//! down, recovery of a crashed sender's claim, the file outbox, and logs that
//! never show a mail's content.

use std::time::Duration;

use projections::Database;
use test_support::free_port;
use test_support::logs::CapturedLogs;
use test_support::smtp::SmtpServer;
use test_support::{Backend, database, on_both_databases, spawn_with};
use uuid::Uuid;
use workers::mail::{self, Mail, MailSender, Outcome, Retry, Transport, enqueue};

const FROM: &str = "Herald <herald@example.org>";

fn mail(n: usize) -> Mail {
    Mail {
        id: format!("test:{}", Uuid::new_v4()),
        tenant_id: Uuid::new_v4().to_string(),
        kind: "invitation".into(),
        recipient: format!("user{n}@example.org"),
        subject: format!("Invitation {n}"),
        body: format!("Follow this link: https://herald.example.org/accept?token=secret-{n}"),
    }
}

async fn put(db: &Database, mail: &Mail) -> bool {
    let mut conn = db.any.acquire().await.unwrap();
    enqueue(&mut conn, mail).await.unwrap()
}

fn sender(db: &Database, url: &str) -> MailSender {
    MailSender::new(
        db.clone(),
        Transport::smtp(url).unwrap(),
        mail::plaintext(),
        FROM,
    )
    .unwrap()
    .with_poll_interval(Duration::from_millis(50))
    .with_retry(Retry {
        base: Duration::from_millis(200),
        max_delay: Duration::from_millis(400),
        max_attempts: 5,
    })
}

/// (attempts, sent, due, last_error, body) of an outbox row.
async fn row(db: &Database, id: &str) -> (i64, bool, bool, Option<String>, String) {
    let (attempts, sent_at, next, error, body): (i64, Option<i64>, Option<i64>, Option<String>, String) =
        sqlx::query_as(
            "SELECT attempts, sent_at, next_attempt_at, last_error, body FROM mail_outbox WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&db.any)
        .await
        .unwrap();
    (attempts, sent_at.is_some(), next.is_some(), error, body)
}

async fn enqueued_mail_is_delivered_exactly_once(backend: Backend) {
    let smtp = SmtpServer::start();
    let db = database(&backend.fresh().await).await;
    let m = mail(1);
    assert!(put(&db, &m).await);
    let sender = sender(&db, &smtp.url);
    assert_eq!(sender.drain().await.unwrap(), 1);
    assert_eq!(
        sender.drain().await.unwrap(),
        0,
        "a sent mail is not claimed again"
    );

    let received = smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.to, "user1@example.org");
    assert_eq!(got.subject, "Invitation 1");
    assert_eq!(got.body, m.body);
    assert!(got.from.contains("herald@example.org"), "{}", got.from);
    assert!(
        got.message_id.ends_with("@example.org>"),
        "{}",
        got.message_id
    );

    let (attempts, sent, due, error, body) = row(&db, &m.id).await;
    assert_eq!((attempts, sent, due, error), (1, true, false, None));
    assert_eq!(body, "", "the body (one-time tokens) is cleared once sent");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1);
}

async fn enqueueing_twice_sends_one_mail(backend: Backend) {
    let smtp = SmtpServer::start();
    let db = database(&backend.fresh().await).await;
    let m = mail(2);
    assert!(put(&db, &m).await);
    assert!(!put(&db, &m).await, "the second enqueue is a no-op");
    let sender = sender(&db, &smtp.url);
    assert_eq!(sender.drain().await.unwrap(), 1);
    // Enqueued again after sending (a replayed projection): still nothing new.
    assert!(!put(&db, &m).await);
    assert_eq!(sender.drain().await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1);
}

async fn concurrent_senders_never_send_a_mail_twice(backend: Backend) {
    let smtp = SmtpServer::start();
    let db = database(&backend.fresh().await).await;
    let mails: Vec<Mail> = (0..12).map(mail).collect();
    for m in &mails {
        put(&db, m).await;
    }
    let a = sender(&db, &smtp.url);
    let b = sender(&db, &smtp.url);
    let (na, nb) = tokio::join!(a.drain(), b.drain());
    assert_eq!(na.unwrap() + nb.unwrap(), 12);
    let received = smtp.wait_for(12, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ids: Vec<String> = smtp.messages().into_iter().map(|m| m.message_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((received.len(), ids.len()), (12, 12));
}

async fn mail_is_retried_until_the_server_comes_up(backend: Backend) {
    let port = free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let db = database(&backend.fresh().await).await;
    let m = mail(3);
    put(&db, &m).await;
    let first = sender(&db, &url);
    let claimed = first.claim(10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    match first.deliver(&claimed[0]).await.unwrap() {
        Outcome::Retry { error, .. } => {
            assert_eq!(error, "SMTP server unreachable");
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    let (attempts, sent, due, error, _) = row(&db, &m.id).await;
    assert_eq!((attempts, sent, due), (1, false, true));
    assert!(
        !error.unwrap().contains("user3"),
        "no recipient in last_error"
    );

    let smtp = SmtpServer::start_on(port);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(sender(&db, &url).run(shutdown));
    let received = smtp.wait_for(1, Duration::from_secs(10)).await;
    stop.send_replace(true);
    task.await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].subject, "Invitation 3");
    let (attempts, sent, due, error, _) = row(&db, &m.id).await;
    assert_eq!((attempts, sent, due, error), (2, true, false, None));
}

async fn mail_fails_for_good_after_the_last_attempt(backend: Backend) {
    let url = format!("smtp://127.0.0.1:{}", free_port());
    let db = database(&backend.fresh().await).await;
    let m = mail(4);
    put(&db, &m).await;
    let sender = sender(&db, &url).with_retry(Retry {
        base: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
        max_attempts: 3,
    });
    let mut outcomes = Vec::new();
    for _ in 0..50 {
        for claimed in sender.claim(10).await.unwrap() {
            outcomes.push(sender.deliver(&claimed).await.unwrap());
        }
        if matches!(outcomes.last(), Some(Outcome::Failed { .. })) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(outcomes.len(), 3, "{outcomes:?}");
    assert!(matches!(outcomes[2], Outcome::Failed { .. }));
    let (attempts, sent, due, error, _) = row(&db, &m.id).await;
    assert_eq!((attempts, sent, due), (3, false, false));
    assert_eq!(error.as_deref(), Some("SMTP server unreachable"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        sender.claim(10).await.unwrap().is_empty(),
        "failed mail stays failed"
    );
}

async fn unsealable_mail_fails_without_retrying(backend: Backend) {
    let smtp = SmtpServer::start();
    let db = database(&backend.fresh().await).await;
    let mut m = mail(5);
    m.recipient = "sealed:erased".into();
    put(&db, &m).await;
    let unseal: mail::Unseal =
        mail::unseal_with(|v: &str| (!v.starts_with("sealed:")).then(|| v.to_string()));
    let sender = MailSender::new(
        db.clone(),
        Transport::smtp(&smtp.url).unwrap(),
        unseal,
        FROM,
    )
    .unwrap();
    let claimed = sender.claim(10).await.unwrap();
    let outcome = sender.deliver(&claimed[0]).await.unwrap();
    assert!(matches!(outcome, Outcome::Failed { .. }), "{outcome:?}");
    let (_, sent, due, error, _) = row(&db, &m.id).await;
    assert_eq!((sent, due), (false, false));
    assert!(error.unwrap().contains("cannot unseal"));
    assert!(smtp.messages().is_empty());
}

async fn expired_claim_of_a_crashed_sender_is_delivered(backend: Backend) {
    let smtp = SmtpServer::start();
    let db = database(&backend.fresh().await).await;
    let m = mail(6);
    put(&db, &m).await;
    {
        // Claims, then "crashes" before sending or marking anything.
        let crashed = sender(&db, &smtp.url).with_lease(Duration::from_millis(1500));
        assert_eq!(crashed.claim(10).await.unwrap().len(), 1);
    }
    let next = sender(&db, &smtp.url);
    assert_eq!(next.drain().await.unwrap(), 0, "the claim still holds");
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(
        next.drain().await.unwrap(),
        1,
        "the expired claim is taken over"
    );
    let received = smtp.wait_for(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((received.len(), smtp.messages().len()), (1, 1));
    let (attempts, sent, ..) = row(&db, &m.id).await;
    assert_eq!((attempts, sent), (2, true));
}

async fn resent_mail_keeps_its_message_id(backend: Backend) {
    // A crash after the server accepted and before the row was marked sends
    // the mail again; both copies are recognisably the same message.
    let smtp = SmtpServer::start();
    let db = database(&backend.fresh().await).await;
    let m = mail(7);
    put(&db, &m).await;
    let first = sender(&db, &smtp.url);
    let claimed = first.claim(10).await.unwrap();
    assert_eq!(first.deliver(&claimed[0]).await.unwrap(), Outcome::Sent);
    // Same content, another delivery (as the next sender would do).
    sqlx::query(
        "UPDATE mail_outbox SET sent_at = NULL, next_attempt_at = 0, body = $1 WHERE id = $2",
    )
    .bind(&m.body)
    .bind(&m.id)
    .execute(&db.any)
    .await
    .unwrap();
    assert_eq!(first.drain().await.unwrap(), 1);
    let received = smtp.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].message_id, received[1].message_id);
    assert_eq!(received[0].body, received[1].body);
}

async fn app_sends_over_the_configured_smtp_server(backend: Backend) {
    let smtp = SmtpServer::start();
    let mut config = api::Settings::for_database(&backend.fresh().await);
    config.mail.smtp_url = Some(smtp.url.clone().into());
    config.mail.from = FROM.into();
    let app = spawn_with(config).await;
    let m = mail(8);
    put(&app.state.db, &m).await;
    let received = smtp.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(received.len(), 1, "the serve process's sender delivered it");
    assert_eq!(received[0].to, "user8@example.org");
}

async fn without_smtp_mail_is_written_to_the_file_outbox(backend: Backend) {
    let data_dir = std::env::temp_dir().join(format!("herald-data-{}", Uuid::new_v4().simple()));
    let mut config = api::Settings::for_database(&backend.fresh().await);
    config.data_dir = data_dir.clone();
    let app = spawn_with(config).await;
    let m = mail(9);
    put(&app.state.db, &m).await;
    let outbox = data_dir.join("outbox");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let files = loop {
        let files: Vec<_> = std::fs::read_dir(&outbox)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        if !files.is_empty() || std::time::Instant::now() > deadline {
            break files;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].extension().and_then(|e| e.to_str()), Some("eml"));
    let written =
        test_support::smtp::ReceivedMail::parse(&std::fs::read_to_string(&files[0]).unwrap());
    assert_eq!(written.to, "user9@example.org");
    assert_eq!(written.subject, "Invitation 9");
    assert_eq!(written.body, m.body);
    // The file is written before the row is marked sent: wait for the mark.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, sent, ..) = row(&app.state.db, &m.id).await;
        if sent {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the mail was written but never marked sent"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(app);
    let _ = std::fs::remove_dir_all(&data_dir);
}

on_both_databases!(
    enqueued_mail_is_delivered_exactly_once,
    enqueueing_twice_sends_one_mail,
    concurrent_senders_never_send_a_mail_twice,
    mail_is_retried_until_the_server_comes_up,
    mail_fails_for_good_after_the_last_attempt,
    unsealable_mail_fails_without_retrying,
    expired_claim_of_a_crashed_sender_is_delivered,
    resent_mail_keeps_its_message_id,
    app_sends_over_the_configured_smtp_server,
    without_smtp_mail_is_written_to_the_file_outbox,
);

/// Runs the sender through every path that logs (file outbox, SMTP down,
/// SMTP delivery, an unsealable mail) with all levels captured, and checks
/// that no recipient, subject or body reached the log. Single-threaded, so
/// every task logs to this test's subscriber.
async fn logs_never_show_a_mails_content(backend: Backend) {
    let logs = CapturedLogs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = database(&backend.fresh().await).await;
    let mails: Vec<Mail> = (100..104).map(mail).collect();
    let data_dir = std::env::temp_dir().join(format!("herald-data-{}", Uuid::new_v4().simple()));

    // File outbox, through `run` (which announces it).
    put(&db, &mails[0]).await;
    let files = MailSender::new(
        db.clone(),
        Transport::files(&data_dir),
        mail::plaintext(),
        FROM,
    )
    .unwrap()
    .with_poll_interval(Duration::from_millis(20));
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(files.run(shutdown));
    for _ in 0..100 {
        if row(&db, &mails[0].id).await.1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send_replace(true);
    task.await.unwrap();
    assert!(row(&db, &mails[0].id).await.1);

    // SMTP down, then up.
    let port = free_port();
    put(&db, &mails[1]).await;
    let smtp_sender = sender(&db, &format!("smtp://127.0.0.1:{port}"));
    assert_eq!(smtp_sender.drain().await.unwrap(), 1);
    let smtp = SmtpServer::start_on(port);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(smtp_sender.drain().await.unwrap(), 1);
    put(&db, &mails[2]).await;
    assert_eq!(smtp_sender.drain().await.unwrap(), 1);
    assert_eq!(smtp.wait_for(2, Duration::from_secs(5)).await.len(), 2);

    // Cannot be unsealed.
    let mut sealed = mails[3].clone();
    sealed.subject = format!("sealed:{}", sealed.subject);
    put(&db, &sealed).await;
    let unseal: mail::Unseal =
        mail::unseal_with(|v: &str| (!v.starts_with("sealed:")).then(|| v.to_string()));
    let strict = MailSender::new(
        db.clone(),
        Transport::smtp(&smtp.url).unwrap(),
        unseal,
        FROM,
    )
    .unwrap();
    assert_eq!(strict.drain().await.unwrap(), 1);

    drop(_guard);
    let text = logs.text();
    assert!(
        text.contains("SMTP not configured; mails are written to"),
        "{text}"
    );
    assert!(text.contains("will retry"), "{text}");
    assert!(text.contains("mail sent"), "{text}");
    assert!(text.contains(&mails[1].id), "mail ids are logged: {text}");
    for m in &mails {
        for secret in [&m.recipient, &m.subject, &m.body] {
            assert!(
                !text.contains(secret.as_str()),
                "{secret:?} was logged:\n{text}"
            );
        }
    }
    assert!(!text.contains("secret-"), "a token was logged");
    let _ = std::fs::remove_dir_all(&data_dir);
}

mod logs {
    #[tokio::test(flavor = "current_thread")]
    async fn sqlite() {
        super::logs_never_show_a_mails_content(test_support::Backend::Sqlite).await
    }

    #[tokio::test(flavor = "current_thread")]
    async fn postgres() {
        super::logs_never_show_a_mails_content(test_support::Backend::Postgres).await
    }
}
