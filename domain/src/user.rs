//! User: a person who signs in, with their sealed e-mail address and password
//! hash, e-mail verification, password reset and TOTP second factor.
//!
//! The aggregate id is derived from a keyed hash of the normalised e-mail
//! address ([`user_id_for_index`]): the stream key keeps addresses unique
//! without storing them, and nobody without the server's keys can confirm an
//! address by hashing guesses. Memberships live on the tenant.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;
use crate::sealed::Sealed;

/// Namespace for user ids derived from an e-mail blind index.
const USER_NAMESPACE: Uuid = Uuid::from_u128(0x6d3f_1c2a_9b8e_4f70_a1d2_3e4f_5a6b_7c8d);

/// A syntactically valid, lower-cased e-mail address.
#[derive(Clone, PartialEq, Eq)]
pub struct Email(String);

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Email(..)")
    }
}

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
                    && !domain.contains("..")
                    && !email.contains(char::is_whitespace)
                    && !email.contains(['<', '>', ',', ';', '"', '\\'])
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

/// The user id that belongs to an e-mail address's blind index.
pub fn user_id_for_index(email_index: &str) -> Uuid {
    Uuid::new_v5(&USER_NAMESPACE, email_index.as_bytes())
}

/// Compares two strings in time independent of where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Commands on a user.
#[derive(Debug, Clone)]
pub enum UserCommand {
    /// Registers the user (again, after an erasure). Hashing and sealing
    /// happen before: the aggregate receives ciphertext only.
    Register {
        email: Sealed,
        password_hash: Sealed,
        /// True when the address was proven on the way in (an invitation).
        email_verified: bool,
        /// The caller found this user to be a sign-up that never finished
        /// (registered, never verified, in no organisation: a failure
        /// between the steps of sign-up before it was made atomic). Such a
        /// registration is replaced instead of refused.
        replaces_unfinished: bool,
    },
    RequestEmailVerification {
        verification_id: Uuid,
        expires_at: DateTime<Utc>,
    },
    VerifyEmail {
        verification_id: Uuid,
        now: DateTime<Utc>,
    },
    RequestPasswordReset {
        reset_id: Uuid,
        expires_at: DateTime<Utc>,
    },
    ResetPassword {
        reset_id: Uuid,
        password_hash: Sealed,
        now: DateTime<Utc>,
    },
    BeginTotpEnrollment {
        secret: Sealed,
    },
    /// `step` is the TOTP time step the caller's code matched.
    ConfirmTotp {
        step: u64,
        backup_code_hashes: Vec<String>,
    },
    /// A second factor presented at sign-in or to disable TOTP.
    UseSecondFactor(SecondFactor),
    DisableTotp(SecondFactor),
    Erase,
}

/// A verified TOTP step, or the hash of a backup code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondFactor {
    Totp { step: u64 },
    BackupCode { code_hash: String },
}

/// Facts about a user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    UserRegistered {
        email: Sealed,
        password_hash: Sealed,
        email_verified: bool,
    },
    /// Carries the (sealed) address, so the mail needs no look-up.
    EmailVerificationRequested {
        verification_id: Uuid,
        expires_at: DateTime<Utc>,
        email: Sealed,
    },
    EmailVerified {
        verification_id: Uuid,
    },
    /// Carries the (sealed) address, so the mail needs no look-up.
    PasswordResetRequested {
        reset_id: Uuid,
        expires_at: DateTime<Utc>,
        email: Sealed,
    },
    PasswordReset {
        reset_id: Uuid,
        password_hash: Sealed,
    },
    TotpEnrollmentStarted {
        secret: Sealed,
    },
    TotpEnabled {
        step: u64,
        backup_code_hashes: Vec<String>,
    },
    TotpCodeUsed {
        step: u64,
    },
    BackupCodeUsed {
        code_hash: String,
    },
    TotpDisabled,
    UserErased,
}
crate::domain_event!(UserEvent, "2");

/// Current state of a user.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct User {
    pub email: Option<Sealed>,
    pub password_hash: Option<Sealed>,
    pub email_verified: bool,
    pub erased: bool,
    pub pending_verification: Option<(Uuid, DateTime<Utc>)>,
    pub pending_reset: Option<(Uuid, DateTime<Utc>)>,
    pub totp_pending: Option<Sealed>,
    pub totp_secret: Option<Sealed>,
    pub last_totp_step: u64,
    /// Hashes of backup codes not used yet.
    pub backup_codes: Vec<String>,
}

impl User {
    /// Whether the account exists and can sign in.
    pub fn is_active(&self) -> bool {
        self.email.is_some() && !self.erased
    }

    fn active(&self) -> Result<(), DomainError> {
        if self.is_active() {
            Ok(())
        } else {
            Err(DomainError::NotFound("user"))
        }
    }

    fn second_factor(&self, factor: SecondFactor) -> Result<UserEvent, DomainError> {
        if self.totp_secret.is_none() {
            return Err(DomainError::Conflict(
                "two-factor authentication is off".into(),
            ));
        }
        match factor {
            SecondFactor::Totp { step } if step > self.last_totp_step => {
                Ok(UserEvent::TotpCodeUsed { step })
            }
            SecondFactor::Totp { .. } => Err(DomainError::invalid(
                "totp",
                "this code was already used; wait for the next one",
            )),
            SecondFactor::BackupCode { code_hash } => {
                if self
                    .backup_codes
                    .iter()
                    .any(|h| constant_time_eq(h, &code_hash))
                {
                    Ok(UserEvent::BackupCodeUsed { code_hash })
                } else {
                    Err(DomainError::invalid(
                        "totp",
                        "not a valid code or already used",
                    ))
                }
            }
        }
    }

    /// Decides a command; `Ok(events)` are the facts to append.
    pub fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, DomainError> {
        use UserCommand as C;
        use UserEvent as E;
        let expired = || DomainError::invalid("token", "the link has expired or was already used");
        Ok(match command {
            C::Register {
                email,
                password_hash,
                email_verified,
                replaces_unfinished,
            } => {
                let replaceable = replaces_unfinished && !self.email_verified;
                if self.is_active() && !replaceable {
                    return Err(DomainError::Conflict(
                        "an account with this e-mail address already exists".into(),
                    ));
                }
                vec![E::UserRegistered {
                    email,
                    password_hash,
                    email_verified,
                }]
            }
            C::RequestEmailVerification {
                verification_id,
                expires_at,
            } => {
                self.active()?;
                if self.email_verified {
                    return Err(DomainError::Conflict(
                        "e-mail address already verified".into(),
                    ));
                }
                vec![E::EmailVerificationRequested {
                    verification_id,
                    expires_at,
                    email: self.email.clone().ok_or(DomainError::NotFound("user"))?,
                }]
            }
            C::VerifyEmail {
                verification_id,
                now,
            } => {
                self.active()?;
                match self.pending_verification {
                    Some((id, until)) if id == verification_id && until > now => {
                        vec![E::EmailVerified { verification_id }]
                    }
                    _ => return Err(expired()),
                }
            }
            C::RequestPasswordReset {
                reset_id,
                expires_at,
            } => {
                self.active()?;
                vec![E::PasswordResetRequested {
                    reset_id,
                    expires_at,
                    email: self.email.clone().ok_or(DomainError::NotFound("user"))?,
                }]
            }
            C::ResetPassword {
                reset_id,
                password_hash,
                now,
            } => {
                self.active()?;
                match self.pending_reset {
                    Some((id, until)) if id == reset_id && until > now => {
                        vec![E::PasswordReset {
                            reset_id,
                            password_hash,
                        }]
                    }
                    _ => return Err(expired()),
                }
            }
            C::BeginTotpEnrollment { secret } => {
                self.active()?;
                if self.totp_secret.is_some() {
                    return Err(DomainError::Conflict(
                        "two-factor authentication is already on; disable it first".into(),
                    ));
                }
                vec![E::TotpEnrollmentStarted { secret }]
            }
            C::ConfirmTotp {
                step,
                backup_code_hashes,
            } => {
                self.active()?;
                if self.totp_pending.is_none() {
                    return Err(DomainError::Conflict(
                        "start the enrollment with beginTotpEnrollment first".into(),
                    ));
                }
                vec![E::TotpEnabled {
                    step,
                    backup_code_hashes,
                }]
            }
            C::UseSecondFactor(factor) => {
                self.active()?;
                vec![self.second_factor(factor)?]
            }
            C::DisableTotp(factor) => {
                self.active()?;
                vec![self.second_factor(factor)?, E::TotpDisabled]
            }
            C::Erase => {
                self.active()?;
                vec![E::UserErased]
            }
        })
    }
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
        crate::record(self.decide(command), self, sink).await
    }

    fn apply(&mut self, event: UserEvent) {
        use UserEvent as E;
        match event {
            E::UserRegistered {
                email,
                password_hash,
                email_verified,
            } => {
                *self = User {
                    email: Some(email),
                    password_hash: Some(password_hash),
                    email_verified,
                    ..User::default()
                };
            }
            E::EmailVerificationRequested {
                verification_id,
                expires_at,
                ..
            } => self.pending_verification = Some((verification_id, expires_at)),
            E::EmailVerified { .. } => {
                self.email_verified = true;
                self.pending_verification = None;
            }
            E::PasswordResetRequested {
                reset_id,
                expires_at,
                ..
            } => self.pending_reset = Some((reset_id, expires_at)),
            E::PasswordReset { password_hash, .. } => {
                self.password_hash = Some(password_hash);
                self.pending_reset = None;
            }
            E::TotpEnrollmentStarted { secret } => self.totp_pending = Some(secret),
            E::TotpEnabled {
                step,
                backup_code_hashes,
            } => {
                self.totp_secret = self.totp_pending.take();
                self.last_totp_step = step;
                self.backup_codes = backup_code_hashes;
            }
            E::TotpCodeUsed { step } => self.last_totp_step = step,
            E::BackupCodeUsed { code_hash } => self.backup_codes.retain(|h| *h != code_hash),
            E::TotpDisabled => {
                self.totp_secret = None;
                self.totp_pending = None;
                self.backup_codes.clear();
            }
            E::UserErased => {
                *self = User {
                    erased: true,
                    ..User::default()
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Test = TestFramework<User>;

    fn registered() -> UserEvent {
        UserEvent::UserRegistered {
            email: Sealed::from_stored("hk1:k:e"),
            password_hash: Sealed::from_stored("hk1:k:p"),
            email_verified: false,
        }
    }

    fn totp_on() -> Vec<UserEvent> {
        vec![
            registered(),
            UserEvent::TotpEnrollmentStarted {
                secret: Sealed::from_stored("hk1:k:s"),
            },
            UserEvent::TotpEnabled {
                step: 100,
                backup_code_hashes: vec!["a".into(), "b".into()],
            },
        ]
    }

    #[test]
    fn email_is_normalised_and_validated() {
        let e = Email::parse("  Ada@Example.ORG ").unwrap();
        assert_eq!(e.as_str(), "ada@example.org");
        assert!(!format!("{e:?}").contains("ada"), "Debug hides the address");
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "a@b",
            "a b@example.org",
            "a@@example.org",
            "a@example..org",
            "a<b>@example.org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_totp_step_works_once() {
        Test::with(())
            .given(totp_on())
            .when(UserCommand::UseSecondFactor(SecondFactor::Totp {
                step: 101,
            }))
            .then_expect_events(vec![UserEvent::TotpCodeUsed { step: 101 }]);
        Test::with(())
            .given(totp_on())
            .when(UserCommand::UseSecondFactor(SecondFactor::Totp {
                step: 100,
            }))
            .then_expect_error_message("totp: this code was already used; wait for the next one");
    }

    #[test]
    fn a_backup_code_works_once() {
        let mut events = totp_on();
        Test::with(())
            .given(events.clone())
            .when(UserCommand::UseSecondFactor(SecondFactor::BackupCode {
                code_hash: "a".into(),
            }))
            .then_expect_events(vec![UserEvent::BackupCodeUsed {
                code_hash: "a".into(),
            }]);
        events.push(UserEvent::BackupCodeUsed {
            code_hash: "a".into(),
        });
        Test::with(())
            .given(events)
            .when(UserCommand::UseSecondFactor(SecondFactor::BackupCode {
                code_hash: "a".into(),
            }))
            .then_expect_error_message("totp: not a valid code or already used");
    }

    #[test]
    fn disabling_totp_needs_a_fresh_code() {
        Test::with(())
            .given(totp_on())
            .when(UserCommand::DisableTotp(SecondFactor::Totp { step: 99 }))
            .then_expect_error_message("totp: this code was already used; wait for the next one");
        Test::with(())
            .given(totp_on())
            .when(UserCommand::DisableTotp(SecondFactor::Totp { step: 102 }))
            .then_expect_events(vec![
                UserEvent::TotpCodeUsed { step: 102 },
                UserEvent::TotpDisabled,
            ]);
    }

    #[test]
    fn a_reset_link_is_single_use_and_expires() {
        let now = Utc::now();
        let reset = Uuid::from_u128(5);
        let requested = UserEvent::PasswordResetRequested {
            reset_id: reset,
            expires_at: now + chrono::Duration::hours(1),
            email: Sealed::from_stored("hk1:k:e"),
        };
        let command = |at| UserCommand::ResetPassword {
            reset_id: reset,
            password_hash: Sealed::from_stored("hk1:k:new"),
            now: at,
        };
        Test::with(())
            .given(vec![registered(), requested.clone()])
            .when(command(now))
            .then_expect_events(vec![UserEvent::PasswordReset {
                reset_id: reset,
                password_hash: Sealed::from_stored("hk1:k:new"),
            }]);
        Test::with(())
            .given(vec![
                registered(),
                requested.clone(),
                UserEvent::PasswordReset {
                    reset_id: reset,
                    password_hash: Sealed::from_stored("hk1:k:new"),
                },
            ])
            .when(command(now))
            .then_expect_error_message("token: the link has expired or was already used");
        Test::with(())
            .given(vec![registered(), requested])
            .when(command(now + chrono::Duration::hours(2)))
            .then_expect_error_message("token: the link has expired or was already used");
    }

    #[test]
    fn an_erased_user_is_gone_and_the_address_can_register_again() {
        Test::with(())
            .given(vec![registered(), UserEvent::UserErased])
            .when(UserCommand::RequestPasswordReset {
                reset_id: Uuid::from_u128(1),
                expires_at: Utc::now(),
            })
            .then_expect_error(DomainError::NotFound("user"));
        Test::with(())
            .given(vec![registered(), UserEvent::UserErased])
            .when(UserCommand::Register {
                email: Sealed::from_stored("hk1:k2:e"),
                password_hash: Sealed::from_stored("hk1:k2:p"),
                email_verified: false,
                replaces_unfinished: false,
            })
            .then_expect_events(vec![UserEvent::UserRegistered {
                email: Sealed::from_stored("hk1:k2:e"),
                password_hash: Sealed::from_stored("hk1:k2:p"),
                email_verified: false,
            }]);
    }

    fn register(replaces_unfinished: bool) -> UserCommand {
        UserCommand::Register {
            email: Sealed::from_stored("hk1:k2:e2"),
            password_hash: Sealed::from_stored("hk1:k2:p2"),
            email_verified: false,
            replaces_unfinished,
        }
    }

    #[test]
    fn an_active_address_cannot_register_again() {
        Test::with(())
            .given(vec![registered()])
            .when(register(false))
            .then_expect_error(DomainError::Conflict(
                "an account with this e-mail address already exists".into(),
            ));
    }

    #[test]
    fn an_unfinished_sign_up_is_replaced_by_a_new_one() {
        Test::with(())
            .given(vec![registered()])
            .when(register(true))
            .then_expect_events(vec![UserEvent::UserRegistered {
                email: Sealed::from_stored("hk1:k2:e2"),
                password_hash: Sealed::from_stored("hk1:k2:p2"),
                email_verified: false,
            }]);
    }

    #[test]
    fn a_verified_address_is_never_taken_over() {
        Test::with(())
            .given(vec![
                registered(),
                UserEvent::EmailVerified {
                    verification_id: Uuid::from_u128(1),
                },
            ])
            .when(register(true))
            .then_expect_error(DomainError::Conflict(
                "an account with this e-mail address already exists".into(),
            ));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
