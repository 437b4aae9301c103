//! Outgoing mail through an outbox table (`mail_outbox`): callers [`enqueue`]
//! a [`Mail`] (inside their own transaction when the mail follows from an
//! event), and the [`MailSender`] process manager claims due rows, sends them
//! over SMTP or into a file outbox ([`Transport`]), and marks them sent.
//!
//! Delivery is at least once, and exactly once unless a process dies between
//! the SMTP server's acceptance and the row being marked: a claim is a lease
//! (`claimed_until`), so a crashed sender's rows are picked up again when it
//! expires, and the resent message carries the same `Message-ID` (derived from
//! the outbox id) so it is recognisably the same mail. Failures are retried
//! with exponential backoff and jitter up to a maximum number of attempts.
//!
//! Recipient, subject and body are opaque to the outbox (the caller may store
//! them sealed); they are unsealed only to build the message, and never
//! appear in a log line or in `last_error`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lettre::message::header::{ContentType, MIME_VERSION_1_0};
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use projections::{Database, StoreError};
use rand::Rng;
use sqlx::AnyConnection;
use tokio::sync::watch;
use uuid::Uuid;

/// Turns a stored (possibly sealed) recipient, subject or body into plaintext;
/// `None` when it cannot (for example the key was destroyed by an erasure).
/// Asynchronous, since opening a sealed value may need to fetch its key.
pub type Unseal = Arc<
    dyn Fn(String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<String>> + Send>>
        + Send
        + Sync,
>;

/// An [`Unseal`] from a synchronous function.
pub fn unseal_with(f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Unseal {
    let f = Arc::new(f);
    Arc::new(move |value: String| {
        let out = f(&value);
        Box::pin(async move { out })
    })
}

/// An [`Unseal`] for values stored in plaintext.
pub fn plaintext() -> Unseal {
    unseal_with(|value| Some(value.to_string()))
}

/// Namespace of the UUIDv5 `Message-ID`s derived from outbox ids.
const MESSAGE_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_0c2e_5d3a_4f7e_9a41_8e2c_d0b3_a917);

/// A mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Chosen by the caller and derived from the cause (e.g. the kind and the
    /// event id), so that enqueueing the same mail twice stores it once.
    /// Logged, so it must not contain a secret or an address.
    pub id: String,
    /// Tenant the mail belongs to.
    pub tenant_id: String,
    /// What the mail is for (`invitation`, `verification`, `password_reset`, …).
    pub kind: String,
    /// The recipient's address (`alice@example.org` or `Alice <alice@example.org>`), possibly sealed.
    pub recipient: String,
    /// Subject line, possibly sealed.
    pub subject: String,
    /// Plain-text body, possibly sealed.
    pub body: String,
}

/// Failures of the mail sender's setup or of its database work. Never carries
/// a recipient, subject, body or the SMTP URL (which may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error(
        "the SMTP URL is not valid (expected smtp://host:port, smtp://host:port?tls=required or smtps://host:port)"
    )]
    SmtpUrl,
    #[error("the sender address is not a valid mailbox (expected `Name <address>` or `address`)")]
    FromAddress,
}

impl From<MailError> for StoreError {
    fn from(error: MailError) -> Self {
        match error {
            MailError::Database(e) => StoreError::Database(e),
            other => StoreError::EventStore(other.to_string()),
        }
    }
}

fn now_micros() -> i64 {
    projections::micros(chrono::Utc::now())
}

/// Stores `mail` for sending unless a mail with its id exists already; returns
/// whether it was new. Takes a connection so that it can run inside the
/// caller's transaction (a projection's batch), which makes the mail part of
/// the same commit as the state that asked for it.
pub async fn enqueue(conn: &mut AnyConnection, mail: &Mail) -> Result<bool, StoreError> {
    let now = now_micros();
    let done = sqlx::query(
        "INSERT INTO mail_outbox (id, tenant_id, kind, recipient, subject, body, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&mail.id)
    .bind(&mail.tenant_id)
    .bind(&mail.kind)
    .bind(&mail.recipient)
    .bind(&mail.subject)
    .bind(&mail.body)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Where mails go.
#[derive(Clone)]
pub enum Transport {
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// One `.eml` file per mail in this directory, for installations without
    /// SMTP (development, or a relay that picks files up).
    Files(PathBuf),
}

impl std::fmt::Debug for Transport {
    // lettre's Debug shows the transport's settings, credentials included.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp(_) => f.write_str("Transport::Smtp"),
            Transport::Files(dir) => f.debug_tuple("Transport::Files").field(dir).finish(),
        }
    }
}

/// How long one SMTP conversation may take; well below the claim lease.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

impl Transport {
    /// SMTP from a URL: `smtp://host:port` (plain), `smtp://host:port?tls=required`
    /// (STARTTLS), `smtp://host:port?tls=opportunistic`, or `smtps://host:port`
    /// (TLS from the start); `user:password@` for authentication, and a path
    /// (`smtp://host/client.example.org`) for the EHLO name.
    pub fn smtp(url: &str) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|_| MailError::SmtpUrl)?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Transport::Smtp(transport))
    }

    /// The file outbox `<data_dir>/outbox/`.
    pub fn files(data_dir: &Path) -> Self {
        Transport::Files(data_dir.join("outbox"))
    }

    /// SMTP when a URL is configured, the file outbox under `data_dir` otherwise.
    pub fn from_config(smtp_url: Option<&str>, data_dir: &Path) -> Result<Self, MailError> {
        match smtp_url {
            Some(url) if !url.trim().is_empty() => Self::smtp(url.trim()),
            _ => Ok(Self::files(data_dir)),
        }
    }

    /// Sends one message; the error is a description safe to store and log.
    async fn send(&self, message: Message, file_stem: &str) -> Result<(), String> {
        match self {
            Transport::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|e| {
                // lettre's Display appends the server's reply, which may quote
                // the recipient; keep only the class and the code.
                if let Some(code) = e.status() {
                    let class = if e.is_permanent() {
                        "permanent"
                    } else {
                        "transient"
                    };
                    format!("SMTP server answered {code} ({class})")
                } else if e.is_timeout() {
                    "SMTP timed out".to_string()
                } else if e.is_tls() {
                    "SMTP TLS failed".to_string()
                } else if e.is_response() {
                    "SMTP reply could not be understood".to_string()
                } else if e.is_client() {
                    "SMTP client error".to_string()
                } else {
                    "SMTP server unreachable".to_string()
                }
            }),
            Transport::Files(dir) => {
                let dir = dir.clone();
                let name = format!("{file_stem}.eml");
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &bytes))
                    .await
                    .map_err(|_| "file outbox task failed".to_string())?
                    .map_err(|e| format!("cannot write to the file outbox ({})", e.kind()))
            }
        }
    }
}

/// Writes `dir/name` through a temporary file and a rename, so a reader never
/// sees half a mail and a resend replaces the file instead of adding one.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(name))
}

/// A mail claimed by a sender, as stored (still sealed).
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The stored mail.
    pub mail: Mail,
    /// When it was enqueued (microseconds); becomes the `Date` header, so a
    /// resend is the same message.
    pub created_at: i64,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

#[derive(sqlx::FromRow)]
struct ClaimRow {
    id: String,
    tenant_id: String,
    kind: String,
    recipient: String,
    subject: String,
    body: String,
    created_at: i64,
    attempts: i64,
}

/// What happened to one claimed mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handed to the transport and marked sent.
    Sent,
    /// Failed; tried again at the given time (microseconds).
    Retry { at: i64, error: String },
    /// Failed for good (attempts exhausted, or it cannot be built).
    Failed { error: String },
}

/// Backoff between attempts: `base · 2^(attempt-1)`, capped at `max_delay`,
/// with jitter (each delay is drawn from its upper half) so that a burst of
/// failures does not retry in lockstep.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// Attempts before a mail stays failed.
    pub max_attempts: i64,
}

impl Default for Retry {
    fn default() -> Self {
        // 30 s, 1 min, 2 min, … up to 1 h: ten attempts span about four hours.
        Self {
            base: Duration::from_secs(30),
            max_delay: Duration::from_secs(3600),
            max_attempts: 10,
        }
    }
}

impl Retry {
    /// Delay after the `attempt`-th failed attempt (1-based).
    pub fn delay(&self, attempt: i64) -> Duration {
        let exponent = attempt.clamp(1, 32) as u32 - 1;
        let full = self
            .base
            .saturating_mul(2u32.saturating_pow(exponent))
            .min(self.max_delay);
        full.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// The process manager that drains the outbox.
pub struct MailSender {
    db: Database,
    transport: Transport,
    unseal: Unseal,
    from: Mailbox,
    owner: String,
    lease: Duration,
    poll: Duration,
    batch: i64,
    retry: Retry,
}

impl MailSender {
    /// A sender over `db` that sends through `transport` from `from_address`
    /// (`Herald <herald@example.org>`), unsealing stored fields with `unseal`.
    pub fn new(
        db: Database,
        transport: Transport,
        unseal: Unseal,
        from_address: &str,
    ) -> Result<Self, MailError> {
        let from = from_address
            .parse::<Mailbox>()
            .map_err(|_| MailError::FromAddress)?;
        Ok(Self {
            db,
            transport,
            unseal,
            from,
            owner: format!("{}:{}", std::process::id(), Uuid::new_v4()),
            lease: Duration::from_secs(120),
            poll: Duration::from_secs(1),
            batch: 20,
            retry: Retry::default(),
        })
    }

    /// How long a claim lasts: a crashed sender's mails wait this long before
    /// another sender takes them. Must exceed one send (30 s SMTP timeout).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How often an idle sender looks for due mail.
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Backoff and attempt limit.
    pub fn with_retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// The transport.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Claims up to `limit` due mails for this sender (a lease until now +
    /// lease) and counts the attempt. On PostgreSQL concurrent senders skip
    /// each other's locked rows; SQLite has a single writer.
    pub async fn claim(&self, limit: i64) -> Result<Vec<Claimed>, MailError> {
        let now = now_micros();
        let skip_locked = if self.db.is_postgres() {
            "FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE mail_outbox SET claimed_by = $1, claimed_until = $2, attempts = attempts + 1
              WHERE id IN (SELECT id FROM mail_outbox
                            WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $3 AND claimed_until < $3
                            ORDER BY next_attempt_at LIMIT $4 {skip_locked})
                AND next_attempt_at IS NOT NULL AND claimed_until < $3
          RETURNING id, tenant_id, kind, recipient, subject, body, created_at, attempts"
        );
        let rows: Vec<ClaimRow> = sqlx::query_as(&sql)
            .bind(&self.owner)
            .bind(now + self.lease.as_micros() as i64)
            .bind(now)
            .bind(limit)
            .fetch_all(&self.db.any)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Claimed {
                mail: Mail {
                    id: r.id,
                    tenant_id: r.tenant_id,
                    kind: r.kind,
                    recipient: r.recipient,
                    subject: r.subject,
                    body: r.body,
                },
                created_at: r.created_at,
                attempts: r.attempts,
            })
            .collect())
    }

    /// Builds the message of a claimed mail, unsealing its fields.
    async fn message(&self, claimed: &Claimed) -> Result<Message, String> {
        let unseal = |value: &str| (self.unseal)(value.to_string());
        let (Some(recipient), Some(subject), Some(body)) = (
            unseal(&claimed.mail.recipient).await,
            unseal(&claimed.mail.subject).await,
            unseal(&claimed.mail.body).await,
        ) else {
            return Err("cannot unseal the mail (its key may have been erased)".to_string());
        };
        let to = recipient
            .parse::<Mailbox>()
            .map_err(|_| "the recipient is not a valid address".to_string())?;
        let date = SystemTime::UNIX_EPOCH + Duration::from_micros(claimed.created_at.max(0) as u64);
        Message::builder()
            .message_id(Some(message_id(&claimed.mail.id, &self.from)))
            .date(date)
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(MIME_VERSION_1_0)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|_| "the message cannot be built".to_string())
    }

    /// Sends one claimed mail and records the outcome.
    #[tracing::instrument(skip_all, fields(mail_id = %claimed.mail.id, kind = %claimed.mail.kind, attempt = claimed.attempts))]
    pub async fn deliver(&self, claimed: &Claimed) -> Result<Outcome, MailError> {
        let sent = match self.message(claimed).await {
            Ok(message) => {
                let stem = message_uuid(&claimed.mail.id).to_string();
                match tokio::time::timeout(self.lease / 2, self.transport.send(message, &stem))
                    .await
                {
                    Ok(result) => result.map_err(|e| (e, true)),
                    Err(_) => Err(("sending timed out".to_string(), true)),
                }
            }
            // Nothing about the stored row will change: no point retrying.
            Err(error) => Err((error, false)),
        };
        let now = now_micros();
        match sent {
            Ok(()) => {
                // Not fenced on the claim: the mail went out, whoever else
                // may hold it now must not send it again.
                sqlx::query(
                    "UPDATE mail_outbox SET sent_at = $1, next_attempt_at = NULL, body = '',
                            claimed_by = NULL, claimed_until = 0, last_error = NULL
                      WHERE id = $2 AND sent_at IS NULL",
                )
                .bind(now)
                .bind(&claimed.mail.id)
                .execute(&self.db.any)
                .await?;
                metrics::counter!("herald_mail_sent_total", "kind" => claimed.mail.kind.clone())
                    .increment(1);
                tracing::info!("mail sent");
                Ok(Outcome::Sent)
            }
            Err((error, retryable)) => {
                let next = (retryable && claimed.attempts < self.retry.max_attempts)
                    .then(|| now + self.retry.delay(claimed.attempts).as_micros() as i64);
                // Fenced on the claim: if the lease passed to another sender,
                // its outcome wins.
                sqlx::query(
                    "UPDATE mail_outbox SET next_attempt_at = $1, last_error = $2,
                            claimed_by = NULL, claimed_until = 0
                      WHERE id = $3 AND claimed_by = $4 AND sent_at IS NULL",
                )
                .bind(next)
                .bind(&error)
                .bind(&claimed.mail.id)
                .bind(&self.owner)
                .execute(&self.db.any)
                .await?;
                metrics::counter!("herald_mail_failures_total", "kind" => claimed.mail.kind.clone())
                    .increment(1);
                match next {
                    Some(at) => {
                        tracing::warn!(%error, retry_in_s = (at - now) / 1_000_000, "mail not sent; will retry");
                        Ok(Outcome::Retry { at, error })
                    }
                    None => {
                        tracing::error!(%error, "mail not sent; giving up");
                        Ok(Outcome::Failed { error })
                    }
                }
            }
        }
    }

    /// Claims and delivers due mails until none is left; returns how many
    /// were handled (sent or not).
    pub async fn drain(&self) -> Result<usize, MailError> {
        self.drain_until(&watch::channel(false).1).await
    }

    /// [`Self::drain`], stopping between batches once `shutdown` is true.
    async fn drain_until(&self, shutdown: &watch::Receiver<bool>) -> Result<usize, MailError> {
        let mut handled = 0;
        while !*shutdown.borrow() {
            let claimed = self.claim(self.batch).await?;
            if claimed.is_empty() {
                return Ok(handled);
            }
            for mail in &claimed {
                self.deliver(mail).await?;
                handled += 1;
            }
        }
        Ok(handled)
    }

    /// Drains the outbox every poll interval until `shutdown` flips to true.
    /// A mail being sent when shutdown comes is finished first.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        match &self.transport {
            Transport::Files(dir) => tracing::warn!(
                "SMTP not configured; mails are written to {}",
                dir.display()
            ),
            Transport::Smtp(_) => tracing::info!("sending mail over SMTP"),
        }
        while !*shutdown.borrow() {
            if let Err(error) = self.drain_until(&shutdown).await {
                tracing::error!(error = %error, cause = ?std::error::Error::source(&error), "mail sender failed");
            }
            tokio::select! {
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}

fn message_uuid(id: &str) -> Uuid {
    Uuid::new_v5(&MESSAGE_ID_NAMESPACE, id.as_bytes())
}

/// `<uuid@domain of the sender>`, the same for every attempt of one outbox id.
fn message_id(id: &str, from: &Mailbox) -> String {
    format!("<{}@{}>", message_uuid(id), from.email.domain())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_is_stable_and_per_mail() {
        let from: Mailbox = "Herald <herald@example.org>".parse().unwrap();
        assert_eq!(message_id("a", &from), message_id("a", &from));
        assert_ne!(message_id("a", &from), message_id("b", &from));
        assert!(message_id("a", &from).ends_with("@example.org>"));
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let retry = Retry {
            base: Duration::from_secs(10),
            max_delay: Duration::from_secs(60),
            max_attempts: 5,
        };
        for _ in 0..100 {
            let first = retry.delay(1);
            assert!(first >= Duration::from_secs(5) && first <= Duration::from_secs(10));
            let third = retry.delay(3);
            assert!(third >= Duration::from_secs(20) && third <= Duration::from_secs(40));
            assert!(retry.delay(30) <= Duration::from_secs(60));
        }
    }

    #[test]
    fn smtp_url_errors_do_not_echo_the_url() {
        let error = Transport::smtp("bogus://user:hunter2@host").unwrap_err();
        assert!(!error.to_string().contains("hunter2"));
        assert!(Transport::smtp("smtp://127.0.0.1:2525").is_ok());
        assert!(Transport::smtp("smtps://mail.example.org").is_ok());
        assert!(Transport::smtp("smtp://mail.example.org:587?tls=required").is_ok());
    }
}
