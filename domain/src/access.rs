//! The role × action permission matrix: the one place that says who may do what.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A member's role in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
}

/// Something a principal may try to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read campaigns, posts and dashboards.
    Read,
    /// Create and change campaigns and their settings.
    ManageCampaigns,
    /// Draft, schedule, cancel and delete posts.
    ManagePosts,
    /// Administer the organisation (members, roles).
    ManageTenant,
}

/// Whether `role` may perform `action`.
pub fn allows(role: Role, action: Action) -> bool {
    use Action::*;
    match role {
        Role::Owner => true,
        Role::Admin => matches!(action, Read | ManageCampaigns | ManagePosts | ManageTenant),
        Role::Editor => matches!(action, Read | ManageCampaigns | ManagePosts),
        Role::Viewer => matches!(action, Read),
    }
}

/// [`allows`] as a `Result`, for use in command paths.
pub fn authorize(role: Role, action: Action) -> Result<(), DomainError> {
    if allows(role, action) {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!("{action:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    #[test]
    fn permission_matrix_reads_as_a_table() {
        // role, Read, ManageCampaigns, ManagePosts, ManageTenant
        let table = [
            (Role::Owner, [true, true, true, true]),
            (Role::Admin, [true, true, true, true]),
            (Role::Editor, [true, true, true, false]),
            (Role::Viewer, [true, false, false, false]),
        ];
        for (role, expected) in table {
            for (action, want) in [Read, ManageCampaigns, ManagePosts, ManageTenant]
                .into_iter()
                .zip(expected)
            {
                assert_eq!(allows(role, action), want, "{role:?} {action:?}");
            }
        }
    }

    #[test]
    fn viewer_is_forbidden_to_write() {
        assert!(matches!(
            authorize(Role::Viewer, ManagePosts),
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
