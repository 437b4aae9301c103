//! The DisplayGroup aggregate: a named set of displays of one tenant, nested
//! at most one level, with an optional default playlist that plays when no
//! schedule matches.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::required_name;
use crate::{DomainError, Scoped};

/// What may be asked of a display group.
#[derive(Debug, Clone)]
pub enum GroupCommand {
    /// `parent_id` must name a top-level group of the tenant (checked by the
    /// caller; groups nest one level).
    Create {
        /// Its name (1 to 100 characters).
        name: String,
        /// The group it nests in.
        parent_id: Option<Uuid>,
        /// What its displays play when no schedule matches.
        default_playlist_id: Option<Uuid>,
    },
    /// Sets or clears the default playlist.
    SetDefaultPlaylist {
        /// The playlist (checked by the caller, in the tenant).
        playlist_id: Option<Uuid>,
    },
}

/// What happened to a display group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GroupEvent {
    /// The group was created; its first event.
    DisplayGroupCreated {
        /// The tenant it belongs to.
        tenant_id: Uuid,
        /// Its name.
        name: String,
        /// The group it nests in.
        parent_id: Option<Uuid>,
        /// Its default playlist.
        default_playlist_id: Option<Uuid>,
    },
    /// The default playlist was set or cleared.
    DisplayGroupDefaultSet {
        /// The new default.
        playlist_id: Option<Uuid>,
    },
}
crate::domain_event!(GroupEvent, "1");

/// A display group, as its decisions need it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DisplayGroup {
    /// The owning tenant; `None` until created.
    pub tenant_id: Option<Uuid>,
    /// Always false: groups are not deleted (yet); kept for the shared
    /// ownership check.
    pub deleted: bool,
}
tenant_owned!(DisplayGroup, "display group");

impl DisplayGroup {
    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<GroupCommand>,
    ) -> Result<Vec<GroupEvent>, DomainError> {
        let event = match command {
            GroupCommand::Create {
                name,
                parent_id,
                default_playlist_id,
            } => {
                self.fresh()?;
                GroupEvent::DisplayGroupCreated {
                    tenant_id,
                    name: required_name(&name, "name", 100)?,
                    parent_id,
                    default_playlist_id,
                }
            }
            GroupCommand::SetDefaultPlaylist { playlist_id } => {
                self.owned_by(tenant_id)?;
                GroupEvent::DisplayGroupDefaultSet { playlist_id }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for DisplayGroup {
    const TYPE: &'static str = "DisplayGroup";
    type Command = Scoped<GroupCommand>;
    type Event = GroupEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        crate::record(self.decide(command), self, sink).await
    }

    fn apply(&mut self, event: GroupEvent) {
        if let GroupEvent::DisplayGroupCreated { tenant_id, .. } = event {
            self.tenant_id = Some(tenant_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::signage::testing::{OTHER_TENANT, TENANT, assert_stored, given};

    const PARENT: Uuid = Uuid::from_u128(40);
    const PLAYLIST: Uuid = Uuid::from_u128(41);

    fn create(name: &str) -> GroupCommand {
        GroupCommand::Create {
            name: name.into(),
            parent_id: Some(PARENT),
            default_playlist_id: Some(PLAYLIST),
        }
    }

    fn created() -> GroupEvent {
        GroupEvent::DisplayGroupCreated {
            tenant_id: TENANT,
            name: "Lobby".into(),
            parent_id: Some(PARENT),
            default_playlist_id: Some(PLAYLIST),
        }
    }

    #[test]
    fn is_stored_as_aggregate_type_display_group() {
        assert_eq!(DisplayGroup::TYPE, "DisplayGroup");
    }

    #[test]
    fn events_keep_their_stored_shape() {
        assert_stored(
            created(),
            json!({"DisplayGroupCreated": {
                "tenant_id": TENANT,
                "name": "Lobby",
                "parent_id": PARENT,
                "default_playlist_id": PLAYLIST,
            }}),
        );
        assert_stored(
            GroupEvent::DisplayGroupDefaultSet { playlist_id: None },
            json!({"DisplayGroupDefaultSet": {"playlist_id": null}}),
        );
    }

    #[test]
    fn create_records_the_trimmed_name_parent_and_default() {
        given::<DisplayGroup>([])
            .when(TENANT, create(" Lobby "))
            .then([created()]);
    }

    #[test]
    fn create_refuses_an_empty_or_overlong_name() {
        given::<DisplayGroup>([])
            .when(TENANT, create(""))
            .then_err(DomainError::invalid("name", "must not be empty"));
        given::<DisplayGroup>([])
            .when(TENANT, create(&"g".repeat(101)))
            .then_err(DomainError::invalid("name", "101 characters; at most 100"));
    }

    #[test]
    fn an_existing_group_cannot_be_created_again_by_any_tenant() {
        for tenant in [TENANT, OTHER_TENANT] {
            given::<DisplayGroup>([created()])
                .when(tenant, create("Lobby"))
                .then_err(DomainError::Conflict("display group already exists".into()));
        }
    }

    #[test]
    fn set_default_playlist_records_it_or_its_removal() {
        for playlist_id in [Some(Uuid::from_u128(42)), None] {
            given::<DisplayGroup>([created()])
                .when(TENANT, GroupCommand::SetDefaultPlaylist { playlist_id })
                .then([GroupEvent::DisplayGroupDefaultSet { playlist_id }]);
        }
    }

    #[test]
    fn another_tenant_or_a_missing_group_is_not_found() {
        let set = || GroupCommand::SetDefaultPlaylist { playlist_id: None };
        given::<DisplayGroup>([created()])
            .when(OTHER_TENANT, set())
            .then_err(DomainError::NotFound("display group"));
        given::<DisplayGroup>([])
            .when(TENANT, set())
            .then_err(DomainError::NotFound("display group"));
    }
}
