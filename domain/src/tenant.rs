//! Tenant: an organisation, its members and their roles, invitations, API
//! keys and security settings. Membership lives here (not on the user), so
//! the rules that span members — the last owner stays, nobody grants more
//! than they hold — are decided in one aggregate.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::DomainError;
use crate::access::Role;
use crate::sealed::Sealed;
use crate::text::check_single_line;

/// Commands on a tenant. `by` is the acting member's role where the rule
/// depends on it (role escalation).
#[derive(Debug, Clone)]
pub enum TenantCommand {
    Create {
        name: String,
        owner_user_id: Uuid,
    },
    InviteMember {
        invitation_id: Uuid,
        /// The invitee's address, sealed with the tenant's data key.
        email: Sealed,
        role: Role,
        by: Role,
        expires_at: DateTime<Utc>,
    },
    AcceptInvitation {
        invitation_id: Uuid,
        user_id: Uuid,
        now: DateTime<Utc>,
    },
    RevokeInvitation {
        invitation_id: Uuid,
    },
    ChangeMemberRole {
        user_id: Uuid,
        role: Role,
        by: Role,
    },
    RemoveMember {
        user_id: Uuid,
        by: Role,
    },
    RequireTwoFactor {
        required: bool,
    },
    CreateApiKey {
        key_id: Uuid,
        name: String,
        role: Role,
        by: Role,
        key_hash: String,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    },
    RevokeApiKey {
        key_id: Uuid,
    },
}

/// Facts about a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TenantEvent {
    TenantCreated {
        name: String,
        owner_user_id: Uuid,
    },
    MemberInvited {
        invitation_id: Uuid,
        email: Sealed,
        role: Role,
        expires_at: DateTime<Utc>,
    },
    InvitationAccepted {
        invitation_id: Uuid,
        user_id: Uuid,
        role: Role,
    },
    InvitationRevoked {
        invitation_id: Uuid,
    },
    MemberRoleChanged {
        user_id: Uuid,
        role: Role,
    },
    MemberRemoved {
        user_id: Uuid,
    },
    TwoFactorRequirementChanged {
        required: bool,
    },
    ApiKeyCreated {
        key_id: Uuid,
        name: String,
        role: Role,
        /// SHA-256 of the key; the key itself is shown once and never stored.
        key_hash: String,
        expires_at: Option<DateTime<Utc>>,
    },
    ApiKeyRevoked {
        key_id: Uuid,
    },
}
crate::domain_event!(TenantEvent, "1");

/// An invitation's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Revoked,
}

/// An invitation as the aggregate remembers it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Invitation {
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    pub status: InvitationStatus,
}

/// Current state of a tenant.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Tenant {
    pub name: Option<String>,
    pub members: BTreeMap<Uuid, Role>,
    pub invitations: BTreeMap<Uuid, Invitation>,
    pub require_two_factor: bool,
    /// API keys and whether each is still active.
    pub api_keys: BTreeMap<Uuid, bool>,
}

/// Validates an organisation or API key name: 1 to 120 characters after
/// trimming, on one line ([`check_single_line`]).
pub fn parse_name(raw: &str, field: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 120 {
        return Err(DomainError::invalid(field, "must be 1 to 120 characters"));
    }
    check_single_line(name, field)?;
    Ok(name.to_string())
}

impl Tenant {
    fn owners(&self) -> usize {
        self.members.values().filter(|r| **r == Role::Owner).count()
    }

    fn member(&self, user_id: Uuid) -> Result<Role, DomainError> {
        self.members
            .get(&user_id)
            .copied()
            .ok_or(DomainError::NotFound("member"))
    }

    fn grant(by: Role, role: Role) -> Result<(), DomainError> {
        if by.may_grant(role) {
            Ok(())
        } else {
            Err(DomainError::Forbidden(format!(
                "granting or taking away the {} role",
                role.as_str()
            )))
        }
    }

    /// Decides a command; `Ok(events)` are the facts to append.
    pub fn decide(&self, command: TenantCommand) -> Result<Vec<TenantEvent>, DomainError> {
        use TenantCommand as C;
        use TenantEvent as E;
        if self.name.is_none() && !matches!(command, C::Create { .. }) {
            return Err(DomainError::NotFound("tenant"));
        }
        Ok(match command {
            C::Create {
                name,
                owner_user_id,
            } => {
                if self.name.is_some() {
                    return Err(DomainError::Conflict("tenant already exists".into()));
                }
                vec![E::TenantCreated {
                    name: parse_name(&name, "organization")?,
                    owner_user_id,
                }]
            }
            C::InviteMember {
                invitation_id,
                email,
                role,
                by,
                expires_at,
            } => {
                Self::grant(by, role)?;
                if self.invitations.contains_key(&invitation_id) {
                    return Err(DomainError::Conflict("invitation exists".into()));
                }
                vec![E::MemberInvited {
                    invitation_id,
                    email,
                    role,
                    expires_at,
                }]
            }
            C::AcceptInvitation {
                invitation_id,
                user_id,
                now,
            } => {
                let invitation = self
                    .invitations
                    .get(&invitation_id)
                    .ok_or(DomainError::NotFound("invitation"))?;
                if invitation.status != InvitationStatus::Pending || invitation.expires_at <= now {
                    return Err(DomainError::invalid(
                        "token",
                        "the invitation has expired or was already used",
                    ));
                }
                if self.members.contains_key(&user_id) {
                    return Err(DomainError::Conflict(
                        "already a member of this organisation".into(),
                    ));
                }
                vec![E::InvitationAccepted {
                    invitation_id,
                    user_id,
                    role: invitation.role,
                }]
            }
            C::RevokeInvitation { invitation_id } => match self.invitations.get(&invitation_id) {
                Some(i) if i.status == InvitationStatus::Pending => {
                    vec![E::InvitationRevoked { invitation_id }]
                }
                Some(_) => return Err(DomainError::Conflict("invitation is not pending".into())),
                None => return Err(DomainError::NotFound("invitation")),
            },
            C::ChangeMemberRole { user_id, role, by } => {
                let current = self.member(user_id)?;
                // Changing someone's role means taking theirs away and
                // granting the new one: both must be within the actor's reach.
                Self::grant(by, current)?;
                Self::grant(by, role)?;
                if current == Role::Owner && role != Role::Owner && self.owners() == 1 {
                    return Err(DomainError::Conflict(
                        "the last owner cannot be demoted".into(),
                    ));
                }
                if current == role {
                    vec![]
                } else {
                    vec![E::MemberRoleChanged { user_id, role }]
                }
            }
            C::RemoveMember { user_id, by } => {
                let current = self.member(user_id)?;
                Self::grant(by, current)?;
                if current == Role::Owner && self.owners() == 1 {
                    return Err(DomainError::Conflict(
                        "the last owner cannot be removed".into(),
                    ));
                }
                vec![E::MemberRemoved { user_id }]
            }
            C::RequireTwoFactor { required } => {
                if self.require_two_factor == required {
                    vec![]
                } else {
                    vec![E::TwoFactorRequirementChanged { required }]
                }
            }
            C::CreateApiKey {
                key_id,
                name,
                role,
                by,
                key_hash,
                expires_at,
                now,
            } => {
                Self::grant(by, role)?;
                let name = parse_name(&name, "name")?;
                if expires_at.is_some_and(|t| t <= now) {
                    return Err(DomainError::invalid("expiresAt", "must be in the future"));
                }
                vec![E::ApiKeyCreated {
                    key_id,
                    name,
                    role,
                    key_hash,
                    expires_at,
                }]
            }
            C::RevokeApiKey { key_id } => match self.api_keys.get(&key_id) {
                Some(true) => vec![E::ApiKeyRevoked { key_id }],
                Some(false) => return Err(DomainError::Conflict("already revoked".into())),
                None => return Err(DomainError::NotFound("API key")),
            },
        })
    }
}

impl Aggregate for Tenant {
    const TYPE: &'static str = "Tenant";
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: TenantCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        crate::record(self.decide(command), self, sink).await
    }

    fn apply(&mut self, event: TenantEvent) {
        use TenantEvent as E;
        match event {
            E::TenantCreated {
                name,
                owner_user_id,
            } => {
                self.name = Some(name);
                self.members.insert(owner_user_id, Role::Owner);
            }
            E::MemberInvited {
                invitation_id,
                role,
                expires_at,
                ..
            } => {
                self.invitations.insert(
                    invitation_id,
                    Invitation {
                        role,
                        expires_at,
                        status: InvitationStatus::Pending,
                    },
                );
            }
            E::InvitationAccepted {
                invitation_id,
                user_id,
                role,
            } => {
                if let Some(i) = self.invitations.get_mut(&invitation_id) {
                    i.status = InvitationStatus::Accepted;
                }
                self.members.insert(user_id, role);
            }
            E::InvitationRevoked { invitation_id } => {
                if let Some(i) = self.invitations.get_mut(&invitation_id) {
                    i.status = InvitationStatus::Revoked;
                }
            }
            E::MemberRoleChanged { user_id, role } => {
                self.members.insert(user_id, role);
            }
            E::MemberRemoved { user_id } => {
                self.members.remove(&user_id);
            }
            E::TwoFactorRequirementChanged { required } => self.require_two_factor = required,
            E::ApiKeyCreated { key_id, .. } => {
                self.api_keys.insert(key_id, true);
            }
            E::ApiKeyRevoked { key_id } => {
                self.api_keys.insert(key_id, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type Test = TestFramework<Tenant>;
    const OWNER: Uuid = Uuid::from_u128(1);
    const OTHER: Uuid = Uuid::from_u128(2);
    const INVITE: Uuid = Uuid::from_u128(3);

    fn created() -> TenantEvent {
        TenantEvent::TenantCreated {
            name: "Acme".into(),
            owner_user_id: OWNER,
        }
    }

    fn invited(role: Role, expires_at: DateTime<Utc>) -> TenantEvent {
        TenantEvent::MemberInvited {
            invitation_id: INVITE,
            email: Sealed::from_stored("hk1:k:x"),
            role,
            expires_at,
        }
    }

    fn invite(role: Role, by: Role) -> TenantCommand {
        TenantCommand::InviteMember {
            invitation_id: INVITE,
            email: Sealed::from_stored("hk1:k:x"),
            role,
            by,
            expires_at: Utc::now() + chrono::Duration::days(7),
        }
    }

    #[test]
    fn an_admin_cannot_invite_an_owner_but_an_owner_can() {
        Test::with(())
            .given(vec![created()])
            .when(invite(Role::Owner, Role::Admin))
            .then_expect_error_message(
                "your role does not allow granting or taking away the owner role",
            );
        let result = Tenant::default();
        let mut t = result;
        t.apply(created());
        assert_eq!(t.decide(invite(Role::Owner, Role::Owner)).unwrap().len(), 1);
    }

    #[test]
    fn an_invitation_is_single_use_and_expires() {
        let now = Utc::now();
        let accept = |user| TenantCommand::AcceptInvitation {
            invitation_id: INVITE,
            user_id: user,
            now,
        };
        Test::with(())
            .given(vec![
                created(),
                invited(Role::Editor, now + chrono::Duration::days(1)),
            ])
            .when(accept(OTHER))
            .then_expect_events(vec![TenantEvent::InvitationAccepted {
                invitation_id: INVITE,
                user_id: OTHER,
                role: Role::Editor,
            }]);
        Test::with(())
            .given(vec![
                created(),
                invited(Role::Editor, now + chrono::Duration::days(1)),
                TenantEvent::InvitationAccepted {
                    invitation_id: INVITE,
                    user_id: OTHER,
                    role: Role::Editor,
                },
            ])
            .when(accept(Uuid::from_u128(9)))
            .then_expect_error_message("token: the invitation has expired or was already used");
        Test::with(())
            .given(vec![
                created(),
                invited(Role::Editor, now - chrono::Duration::seconds(1)),
            ])
            .when(accept(OTHER))
            .then_expect_error_message("token: the invitation has expired or was already used");
    }

    #[test]
    fn the_last_owner_stays() {
        Test::with(())
            .given(vec![created()])
            .when(TenantCommand::ChangeMemberRole {
                user_id: OWNER,
                role: Role::Admin,
                by: Role::Owner,
            })
            .then_expect_error_message("the last owner cannot be demoted");
        Test::with(())
            .given(vec![created()])
            .when(TenantCommand::RemoveMember {
                user_id: OWNER,
                by: Role::Owner,
            })
            .then_expect_error_message("the last owner cannot be removed");
        // With a second owner, one may step down.
        Test::with(())
            .given(vec![
                created(),
                TenantEvent::InvitationAccepted {
                    invitation_id: INVITE,
                    user_id: OTHER,
                    role: Role::Owner,
                },
            ])
            .when(TenantCommand::ChangeMemberRole {
                user_id: OWNER,
                role: Role::Viewer,
                by: Role::Owner,
            })
            .then_expect_events(vec![TenantEvent::MemberRoleChanged {
                user_id: OWNER,
                role: Role::Viewer,
            }]);
    }

    #[test]
    fn an_admin_cannot_demote_or_remove_an_owner() {
        Test::with(())
            .given(vec![created()])
            .when(TenantCommand::ChangeMemberRole {
                user_id: OWNER,
                role: Role::Viewer,
                by: Role::Admin,
            })
            .then_expect_error_message(
                "your role does not allow granting or taking away the owner role",
            );
        Test::with(())
            .given(vec![created()])
            .when(TenantCommand::RemoveMember {
                user_id: OWNER,
                by: Role::Admin,
            })
            .then_expect_error_message(
                "your role does not allow granting or taking away the owner role",
            );
    }

    #[test]
    fn foreign_members_and_keys_are_not_found() {
        Test::with(())
            .given(vec![created()])
            .when(TenantCommand::RemoveMember {
                user_id: OTHER,
                by: Role::Owner,
            })
            .then_expect_error(DomainError::NotFound("member"));
        Test::with(())
            .given(vec![created()])
            .when(TenantCommand::RevokeApiKey { key_id: OTHER })
            .then_expect_error(DomainError::NotFound("API key"));
        Test::with(())
            .given(vec![])
            .when(TenantCommand::RequireTwoFactor { required: true })
            .then_expect_error(DomainError::NotFound("tenant"));
    }
}
