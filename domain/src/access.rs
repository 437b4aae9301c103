//! The permission matrix: the one place that says which kind of principal may
//! do what. docs/api.md shows the same table; the tests below check it row by
//! row, and the API's black-box test calls every operation as every principal.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A member's role in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    Owner,
    Admin,
    Editor,
    Viewer,
}

impl Role {
    /// All roles, most powerful first.
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Editor, Role::Viewer];

    /// Stable lowercase name, used in sessions and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Editor => "editor",
            Role::Viewer => "viewer",
        }
    }

    /// Parses [`Role::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether a member with this role may give `other` to someone (invite,
    /// change a role, create an API key). Nobody grants more than they hold,
    /// and only owners make owners.
    pub fn may_grant(self, other: Role) -> bool {
        self <= other
    }
}

/// Who is acting: a member signed in with a session, an API key, or a
/// signage display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Member(Role),
    ApiKey(Role),
    Display,
}

impl Subject {
    /// Every kind of principal, for tables and tests.
    pub const ALL: [Subject; 9] = [
        Subject::Member(Role::Owner),
        Subject::Member(Role::Admin),
        Subject::Member(Role::Editor),
        Subject::Member(Role::Viewer),
        Subject::ApiKey(Role::Owner),
        Subject::ApiKey(Role::Admin),
        Subject::ApiKey(Role::Editor),
        Subject::ApiKey(Role::Viewer),
        Subject::Display,
    ];

    /// The role whose permissions apply, if any.
    pub fn role(self) -> Option<Role> {
        match self {
            Subject::Member(r) | Subject::ApiKey(r) => Some(r),
            Subject::Display => None,
        }
    }
}

/// Something a principal may try to do. Each GraphQL operation and REST route
/// names exactly one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Read campaigns, posts, dashboards and the member list.
    Read,
    /// Create and change campaigns.
    ManageCampaigns,
    /// Draft, schedule, cancel and delete posts.
    ManagePosts,
    /// Invite, remove and change the role of members.
    ManageMembers,
    /// Create and revoke API keys.
    ManageApiKeys,
    /// Tenant security settings (require 2FA).
    ManageSecurity,
    /// Read and export the audit trail.
    ReadAudit,
    /// A person's own account: sessions, 2FA, switching tenant, signing out.
    OwnAccount,
    /// Notices, categories, playlists and signage schedules.
    ManageSignage,
    /// Pair, unpair, rename, move and reload displays; display groups;
    /// emergency overrides.
    ManageDisplays,
    /// A display reads its own manifest and receives its pushes.
    DisplayManifest,
    /// A display reports what it played.
    DisplayReport,
}

impl Action {
    /// Every action, in the order of the documented table.
    pub const ALL: [Action; 12] = [
        Action::Read,
        Action::ManageCampaigns,
        Action::ManagePosts,
        Action::ManageMembers,
        Action::ManageApiKeys,
        Action::ManageSecurity,
        Action::ReadAudit,
        Action::OwnAccount,
        Action::ManageSignage,
        Action::ManageDisplays,
        Action::DisplayManifest,
        Action::DisplayReport,
    ];
}

/// Whether a member with `role` may perform `action`.
fn role_allows(role: Role, action: Action) -> bool {
    use Action::*;
    match action {
        Read | OwnAccount => true,
        ManageCampaigns | ManagePosts | ManageSignage => role <= Role::Editor,
        ManageMembers | ManageApiKeys | ReadAudit | ManageDisplays => role <= Role::Admin,
        ManageSecurity => role == Role::Owner,
        DisplayManifest | DisplayReport => false,
    }
}

/// Whether `subject` may perform `action`. API keys act with their role but
/// never administer people, keys or security, and have no account of their
/// own; displays only read their manifest and report plays.
pub fn allows(subject: Subject, action: Action) -> bool {
    use Action::*;
    match subject {
        Subject::Member(role) => role_allows(role, action),
        Subject::ApiKey(role) => {
            !matches!(
                action,
                ManageMembers | ManageApiKeys | ManageSecurity | OwnAccount
            ) && role_allows(role, action)
        }
        Subject::Display => matches!(action, DisplayManifest | DisplayReport),
    }
}

/// [`allows`] as a `Result`, for use in command paths.
pub fn authorize(subject: Subject, action: Action) -> Result<(), DomainError> {
    if allows(subject, action) {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!("{action:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    #[test]
    fn permission_matrix_reads_as_a_table() {
        // Columns: Read, ManageCampaigns, ManagePosts, ManageMembers,
        // ManageApiKeys, ManageSecurity, ReadAudit, OwnAccount,
        // ManageSignage, ManageDisplays, DisplayManifest, DisplayReport.
        let o = true;
        let x = false;
        let table = [
            (Subject::Member(Owner), [o, o, o, o, o, o, o, o, o, o, x, x]),
            (Subject::Member(Admin), [o, o, o, o, o, x, o, o, o, o, x, x]),
            (
                Subject::Member(Editor),
                [o, o, o, x, x, x, x, o, o, x, x, x],
            ),
            (
                Subject::Member(Viewer),
                [o, x, x, x, x, x, x, o, x, x, x, x],
            ),
            (Subject::ApiKey(Owner), [o, o, o, x, x, x, o, x, o, o, x, x]),
            (Subject::ApiKey(Admin), [o, o, o, x, x, x, o, x, o, o, x, x]),
            (
                Subject::ApiKey(Editor),
                [o, o, o, x, x, x, x, x, o, x, x, x],
            ),
            (
                Subject::ApiKey(Viewer),
                [o, x, x, x, x, x, x, x, x, x, x, x],
            ),
            (Subject::Display, [x, x, x, x, x, x, x, x, x, x, o, o]),
        ];
        assert_eq!(table.len(), Subject::ALL.len());
        for (subject, expected) in table {
            for (action, want) in Action::ALL.into_iter().zip(expected) {
                assert_eq!(allows(subject, action), want, "{subject:?} {action:?}");
            }
        }
    }

    #[test]
    fn nobody_grants_more_than_they_hold() {
        assert!(Owner.may_grant(Owner));
        assert!(!Admin.may_grant(Owner));
        assert!(Admin.may_grant(Admin) && Admin.may_grant(Viewer));
        assert!(!Editor.may_grant(Admin));
    }

    #[test]
    fn viewer_is_forbidden_to_write() {
        assert!(matches!(
            authorize(Subject::Member(Viewer), Action::ManagePosts),
            Err(DomainError::Forbidden(_))
        ));
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}
