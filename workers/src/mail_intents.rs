//! Mail intents: the process manager that turns identity events into mails
//! in the outbox, inside the projector's batch transaction, so each mail is
//! enqueued exactly once per event (and a replay enqueues nothing new: ids
//! derive from the event). Links carry tokens derived from ids
//! ([`Keyring::issue_token`]); the body is sealed with the recipient's key,
//! so an erasure shreds unsent mails too.

use async_trait::async_trait;
use domain::sealed::Sealed;
use domain::tenant::TenantEvent;
use domain::user::UserEvent;
use projections::crypto::{INVITATION_TOKEN, RESET_TOKEN, VERIFY_TOKEN};
use projections::{Keyring, Projection, StoreError, StoredEvent};
use secrecy::ExposeSecret;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::mail::{Mail, enqueue};

/// The mail-intents projection.
pub struct MailIntents {
    keyring: Keyring,
    public_url: String,
}

impl MailIntents {
    /// Links in mails point at `public_url`.
    pub fn new(keyring: Keyring, public_url: &str) -> Self {
        Self {
            keyring,
            public_url: public_url.trim_end_matches('/').to_string(),
        }
    }

    async fn compose(
        &self,
        event: &StoredEvent,
        kind: &str,
        recipient: &Sealed,
        subject: &str,
        text: String,
    ) -> Result<Mail, StoreError> {
        let body = self.keyring.seal_alongside(recipient, &text).await?;
        Ok(Mail {
            // The event's identity: no secret, no address.
            id: format!("{kind}:{}:{}", event.aggregate_id, event.sequence),
            tenant_id: event.metadata.tenant_id.to_string(),
            kind: kind.to_string(),
            recipient: recipient.as_str().to_string(),
            subject: subject.to_string(),
            body: body.as_str().to_string(),
        })
    }

    async fn token(
        &self,
        (purpose, prefix): (&str, &str),
        a: &str,
        b: Uuid,
    ) -> Result<String, StoreError> {
        let a = Uuid::parse_str(a).map_err(|e| StoreError::EventStore(e.to_string()))?;
        Ok(self
            .keyring
            .issue_token(purpose, prefix, a, b)
            .await?
            .expose_secret()
            .to_string())
    }

    async fn mail_for(&self, event: &StoredEvent) -> Result<Option<Mail>, StoreError> {
        let url = &self.public_url;
        let mail = match event.aggregate_type.as_str() {
            "Tenant" => match event.decode::<TenantEvent>()? {
                TenantEvent::MemberInvited {
                    invitation_id,
                    email,
                    role,
                    expires_at,
                } => {
                    let token = self
                        .token(INVITATION_TOKEN, &event.aggregate_id, invitation_id)
                        .await?;
                    let text = format!(
                        "You have been invited to join an organisation on Herald as {}.\n\n\
                         Accept the invitation (valid until {}):\n{url}/invitations/accept?token={token}\n\n\
                         Or use the token with the acceptInvitation mutation:\n{token}\n",
                        role.as_str(),
                        expires_at.format("%Y-%m-%d %H:%M UTC"),
                    );
                    Some(
                        self.compose(
                            event,
                            "invitation",
                            &email,
                            "Your invitation to Herald",
                            text,
                        )
                        .await?,
                    )
                }
                _ => None,
            },
            "User" => match event.decode::<UserEvent>()? {
                UserEvent::EmailVerificationRequested {
                    verification_id,
                    email,
                    ..
                } => {
                    let token = self
                        .token(VERIFY_TOKEN, &event.aggregate_id, verification_id)
                        .await?;
                    let text = format!(
                        "Please confirm your e-mail address for Herald:\n{url}/verify-email?token={token}\n\n\
                         Or use the token with the verifyEmail mutation:\n{token}\n"
                    );
                    Some(
                        self.compose(
                            event,
                            "verification",
                            &email,
                            "Confirm your e-mail address",
                            text,
                        )
                        .await?,
                    )
                }
                UserEvent::PasswordResetRequested {
                    reset_id,
                    email,
                    expires_at,
                } => {
                    let token = self
                        .token(RESET_TOKEN, &event.aggregate_id, reset_id)
                        .await?;
                    let text = format!(
                        "Someone asked to reset your Herald password. If it was you, choose a new one \
                         (link valid until {}):\n{url}/reset-password?token={token}\n\n\
                         Or use the token with the resetPassword mutation:\n{token}\n\n\
                         If it was not you, ignore this mail.\n",
                        expires_at.format("%Y-%m-%d %H:%M UTC"),
                    );
                    Some(
                        self.compose(
                            event,
                            "password_reset",
                            &email,
                            "Reset your Herald password",
                            text,
                        )
                        .await?,
                    )
                }
                _ => None,
            },
            _ => None,
        };
        Ok(mail)
    }
}

#[async_trait]
impl Projection for MailIntents {
    fn name(&self) -> &'static str {
        "mail_intents"
    }

    /// None: the outbox must survive a replay (its rows are what makes
    /// re-enqueueing a no-op).
    fn tables(&self) -> &'static [&'static str] {
        &[]
    }

    async fn apply(
        &self,
        conn: &mut AnyConnection,
        events: &[StoredEvent],
    ) -> Result<(), StoreError> {
        for event in events {
            match self.mail_for(event).await {
                Ok(Some(mail)) => {
                    enqueue(conn, &mail).await?;
                }
                Ok(None) => {}
                // The recipient was erased before the mail was enqueued:
                // nothing to send, nobody to send it to.
                Err(StoreError::Erased) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
