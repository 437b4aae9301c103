//! The Playlist aggregate: a named, ordered list of notices, each with how
//! long it stays on screen. Schedules and group defaults point at playlists;
//! an update replaces name and items together.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MAX_PLAYLIST_ITEMS, required_text};
use crate::manifest::PlaylistItem;
use crate::{DomainError, Scoped};

/// Validates playlist items (the notices' existence is checked by the caller).
pub fn parse_playlist(
    name: &str,
    items: Vec<PlaylistItem>,
) -> Result<(String, Vec<PlaylistItem>), DomainError> {
    let name = required_text(name, "name", 100)?;
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

impl Aggregate for Playlist {
    const TYPE: &'static str = "Playlist";
    type Command = Scoped<PlaylistCommand>;
    type Event = PlaylistEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
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
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: PlaylistEvent) {
        if let PlaylistEvent::PlaylistCreated { tenant_id, .. } = event {
            self.tenant_id = Some(tenant_id);
        }
    }
}
