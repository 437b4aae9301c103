//! The DisplayGroup aggregate: a named set of displays of one tenant, nested
//! at most one level, with an optional default playlist that plays when no
//! schedule matches.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::required_text;
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

impl Aggregate for DisplayGroup {
    const TYPE: &'static str = "DisplayGroup";
    type Command = Scoped<GroupCommand>;
    type Event = GroupEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            GroupCommand::Create {
                name,
                parent_id,
                default_playlist_id,
            } => {
                self.fresh()?;
                GroupEvent::DisplayGroupCreated {
                    tenant_id,
                    name: required_text(&name, "name", 100)?,
                    parent_id,
                    default_playlist_id,
                }
            }
            GroupCommand::SetDefaultPlaylist { playlist_id } => {
                self.owned_by(tenant_id)?;
                GroupEvent::DisplayGroupDefaultSet { playlist_id }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: GroupEvent) {
        if let GroupEvent::DisplayGroupCreated { tenant_id, .. } = event {
            self.tenant_id = Some(tenant_id);
        }
    }
}
