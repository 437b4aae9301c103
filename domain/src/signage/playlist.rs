//! The Playlist aggregate: a named, ordered list of notices, each with how
//! long it stays on screen. Schedules and group defaults point at playlists;
//! an update replaces name and items together.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MAX_PLAYLIST_ITEMS, required_name};
use crate::manifest::PlaylistItem;
use crate::{DomainError, Scoped};

/// Validates playlist items (the notices' existence is checked by the caller).
pub fn parse_playlist(
    name: &str,
    items: Vec<PlaylistItem>,
) -> Result<(String, Vec<PlaylistItem>), DomainError> {
    let name = required_name(name, "name", 100)?;
    if items.len() > MAX_PLAYLIST_ITEMS {
        return Err(DomainError::invalid(
            "items",
            format!("at most {MAX_PLAYLIST_ITEMS} items"),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        if !(1..=3600).contains(&item.duration_seconds) {
            return Err(DomainError::invalid(
                &format!("items.{i}.durationSeconds"),
                "between 1 and 3600 seconds",
            ));
        }
    }
    Ok((name, items))
}

/// What may be asked of a playlist. Both are checked by [`parse_playlist`].
#[derive(Debug, Clone)]
pub enum PlaylistCommand {
    /// Creates it.
    Create {
        /// Its name (1 to 100 characters).
        name: String,
        /// Its items, in play order.
        items: Vec<PlaylistItem>,
    },
    /// Replaces its name and items.
    Update {
        /// The new name.
        name: String,
        /// The new items.
        items: Vec<PlaylistItem>,
    },
}

/// What happened to a playlist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlaylistEvent {
    /// The playlist was created; its first event.
    PlaylistCreated {
        /// The tenant it belongs to.
        tenant_id: Uuid,
        /// Its name.
        name: String,
        /// Its items.
        items: Vec<PlaylistItem>,
    },
    /// Its name and items were replaced.
    PlaylistUpdated {
        /// The new name.
        name: String,
        /// The new items.
        items: Vec<PlaylistItem>,
    },
}
crate::domain_event!(PlaylistEvent, "1");

/// A playlist, as its decisions need it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Playlist {
    /// The owning tenant; `None` until created.
    pub tenant_id: Option<Uuid>,
    /// Always false: playlists are not deleted (yet); kept for the shared
    /// ownership check.
    pub deleted: bool,
}
tenant_owned!(Playlist, "playlist");

impl Playlist {
    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<PlaylistCommand>,
    ) -> Result<Vec<PlaylistEvent>, DomainError> {
        let event = match command {
            PlaylistCommand::Create { name, items } => {
                self.fresh()?;
                let (name, items) = parse_playlist(&name, items)?;
                PlaylistEvent::PlaylistCreated {
                    tenant_id,
                    name,
                    items,
                }
            }
            PlaylistCommand::Update { name, items } => {
                self.owned_by(tenant_id)?;
                let (name, items) = parse_playlist(&name, items)?;
                PlaylistEvent::PlaylistUpdated { name, items }
            }
        };
        Ok(vec![event])
    }
}

impl Aggregate for Playlist {
    const TYPE: &'static str = "Playlist";
    type Command = Scoped<PlaylistCommand>;
    type Event = PlaylistEvent;
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

    fn apply(&mut self, event: PlaylistEvent) {
        if let PlaylistEvent::PlaylistCreated { tenant_id, .. } = event {
            self.tenant_id = Some(tenant_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::signage::testing::{OTHER_TENANT, TENANT, assert_stored, given};

    fn item(n: u128, duration_seconds: u32) -> PlaylistItem {
        PlaylistItem {
            notice_id: Uuid::from_u128(n),
            duration_seconds,
        }
    }

    fn created() -> PlaylistEvent {
        PlaylistEvent::PlaylistCreated {
            tenant_id: TENANT,
            name: "Day".into(),
            items: vec![item(1, 10), item(2, 20)],
        }
    }

    fn update(name: &str, items: Vec<PlaylistItem>) -> PlaylistCommand {
        PlaylistCommand::Update {
            name: name.into(),
            items,
        }
    }

    #[test]
    fn is_stored_as_aggregate_type_playlist() {
        assert_eq!(Playlist::TYPE, "Playlist");
    }

    #[test]
    fn events_keep_their_stored_shape() {
        let items = json!([
            {"notice_id": Uuid::from_u128(1), "duration_seconds": 10},
            {"notice_id": Uuid::from_u128(2), "duration_seconds": 20},
        ]);
        assert_stored(
            created(),
            json!({"PlaylistCreated": {"tenant_id": TENANT, "name": "Day", "items": items}}),
        );
        assert_stored(
            PlaylistEvent::PlaylistUpdated {
                name: "Day".into(),
                items: vec![item(1, 10), item(2, 20)],
            },
            json!({"PlaylistUpdated": {"name": "Day", "items": items}}),
        );
    }

    #[test]
    fn create_records_the_trimmed_name_and_items_in_order() {
        given::<Playlist>([])
            .when(
                TENANT,
                PlaylistCommand::Create {
                    name: " Day ".into(),
                    items: vec![item(1, 10), item(2, 20)],
                },
            )
            .then([created()]);
    }

    #[test]
    fn an_existing_playlist_cannot_be_created_again_by_any_tenant() {
        for tenant in [TENANT, OTHER_TENANT] {
            given::<Playlist>([created()])
                .when(
                    tenant,
                    PlaylistCommand::Create {
                        name: "Day".into(),
                        items: vec![],
                    },
                )
                .then_err(DomainError::Conflict("playlist already exists".into()));
        }
    }

    #[test]
    fn update_replaces_name_and_items_and_may_empty_it() {
        given::<Playlist>([created()])
            .when(TENANT, update("Night", vec![item(3, 5)]))
            .then([PlaylistEvent::PlaylistUpdated {
                name: "Night".into(),
                items: vec![item(3, 5)],
            }]);
        given::<Playlist>([created()])
            .when(TENANT, update("Night", vec![]))
            .then([PlaylistEvent::PlaylistUpdated {
                name: "Night".into(),
                items: vec![],
            }]);
    }

    #[test]
    fn update_checks_like_create() {
        given::<Playlist>([created()])
            .when(TENANT, update(" ", vec![]))
            .then_err(DomainError::invalid("name", "must not be empty"));
        given::<Playlist>([created()])
            .when(TENANT, update("Day", vec![item(1, 10), item(2, 0)]))
            .then_err(DomainError::invalid(
                "items.1.durationSeconds",
                "between 1 and 3600 seconds",
            ));
    }

    #[test]
    fn another_tenant_or_a_missing_playlist_is_not_found() {
        given::<Playlist>([created()])
            .when(OTHER_TENANT, update("Night", vec![]))
            .then_err(DomainError::NotFound("playlist"));
        given::<Playlist>([])
            .when(TENANT, update("Night", vec![]))
            .then_err(DomainError::NotFound("playlist"));
    }

    #[test]
    fn items_are_limited_in_number_and_duration() {
        assert!(parse_playlist("Day", vec![item(1, 1); MAX_PLAYLIST_ITEMS]).is_ok());
        assert_eq!(
            parse_playlist("Day", vec![item(1, 1); MAX_PLAYLIST_ITEMS + 1]).unwrap_err(),
            DomainError::invalid("items", "at most 200 items")
        );
        assert!(parse_playlist("Day", vec![item(1, 1), item(2, 3600)]).is_ok());
        for bad in [0, 3601] {
            assert_eq!(
                parse_playlist("Day", vec![item(1, bad)]).unwrap_err(),
                DomainError::invalid("items.0.durationSeconds", "between 1 and 3600 seconds")
            );
        }
        assert_eq!(
            parse_playlist(&"p".repeat(101), vec![]).unwrap_err(),
            DomainError::invalid("name", "101 characters; at most 100")
        );
    }
}
