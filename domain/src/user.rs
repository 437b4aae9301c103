//! User: a person who signs in. The aggregate id is derived from the normalised
//! e-mail address ([`user_id_for_email`]), so the event store's stream key makes
//! e-mail addresses unique without a separate reservation table.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;
use crate::access::Role;

/// Namespace for e-mail-derived user ids.
const USER_NAMESPACE: Uuid = Uuid::from_u128(0x6d3f_1c2a_9b8e_4f70_a1d2_3e4f_5a6b_7c8d);

/// A syntactically valid, lower-cased e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Validates and normalises (trim, lower-case) an address.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !email.contains(char::is_whitespace)
            })
            && email.matches('@').count() == 1;
        if !valid {
            return Err(DomainError::invalid("email", "not a valid e-mail address"));
        }
        Ok(Self(email))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The user id that belongs to `email`.
pub fn user_id_for_email(email: &Email) -> Uuid {
    Uuid::new_v5(&USER_NAMESPACE, email.as_str().as_bytes())
}

/// Commands on a user.
#[derive(Debug, Clone)]
pub enum UserCommand {
    /// Registers the user as a member of `tenant_id`. `password_hash` is an
    /// Argon2id PHC string computed by the caller (hashing is I/O-free but slow,
    /// and stays out of the aggregate).
    Register {
        email: Email,
        password_hash: String,
        tenant_id: Uuid,
        role: Role,
    },
}

/// Facts about a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    UserRegistered {
        email: String,
        password_hash: String,
        tenant_id: Uuid,
        role: Role,
    },
}
crate::domain_event!(UserEvent, "1");

/// Current state of a user.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct User {
    pub email: Option<String>,
    pub password_hash: Option<String>,
    /// Tenants the user belongs to, with the role in each.
    pub memberships: Vec<(Uuid, Role)>,
}

impl Aggregate for User {
    const TYPE: &'static str = "User";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: UserCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        match command {
            UserCommand::Register {
                email,
                password_hash,
                tenant_id,
                role,
            } => {
                if self.email.is_some() {
                    return Err(DomainError::Conflict(
                        "an account with this e-mail address already exists".into(),
                    ));
                }
                sink.write(
                    UserEvent::UserRegistered {
                        email: email.0,
                        password_hash,
                        tenant_id,
                        role,
                    },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: UserEvent) {
        match event {
            UserEvent::UserRegistered {
                email,
                password_hash,
                tenant_id,
                role,
            } => {
                self.email = Some(email);
                self.password_hash = Some(password_hash);
                self.memberships.push((tenant_id, role));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_normalised_and_validated() {
        let e = Email::parse("  Ada@Example.ORG ").unwrap();
        assert_eq!(e.as_str(), "ada@example.org");
        assert_eq!(
            user_id_for_email(&e),
            user_id_for_email(&Email::parse("ada@example.org").unwrap())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "a@b",
            "a b@example.org",
            "a@@example.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }
}
