//! The Display aggregate: a screen once it is paired to a tenant. Pairing is
//! its first event (an unpaired screen is no fact of any tenant); afterwards
//! only that tenant may rename, move, reload or unpair it, and its presence
//! is recorded only when it changes.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{bounded_text, required_text};
use crate::schedule::TimeZone;
use crate::{DomainError, Scoped};

/// What a display is told about itself when paired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisplayProfile {
    /// Its name in the tenant (1 to 100 characters).
    pub name: String,
    /// The group it belongs to, if any.
    pub group_id: Option<Uuid>,
    /// Free tags (at most 20, each 1 to 50 characters).
    pub tags: Vec<String>,
    /// Where it hangs (at most 200 characters).
    pub location: Option<String>,
    /// The zone its dayparts are read in.
    pub time_zone: TimeZone,
}

impl DisplayProfile {
    /// Validates the pairing input (the group's existence is checked by the
    /// caller, in the tenant). No time zone means UTC.
    pub fn parse(
        name: &str,
        group_id: Option<Uuid>,
        tags: Vec<String>,
        location: Option<String>,
        time_zone: Option<&str>,
    ) -> Result<Self, DomainError> {
        if tags.len() > 20 {
            return Err(DomainError::invalid("tags", "at most 20 tags"));
        }
        let tags = tags
            .iter()
            .enumerate()
            .map(|(i, t)| required_text(t, &format!("tags.{i}"), 50))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: required_text(name, "name", 100)?,
            group_id,
            tags,
            location: location
                .map(|l| bounded_text(l.trim(), "location", 200))
                .transpose()?,
            time_zone: TimeZone::parse(time_zone.unwrap_or("UTC"))?,
        })
    }
}

/// What may be asked of a display.
#[derive(Debug, Clone)]
pub enum DisplayCommand {
    /// Pairs an unpaired display with the caller's tenant.
    Pair(DisplayProfile),
    /// Renames it.
    Rename {
        /// The new name (1 to 100 characters).
        name: String,
    },
    /// Moves it into a group, or out of any.
    Move {
        /// The new group (checked by the caller, in the tenant).
        group_id: Option<Uuid>,
    },
    /// Unpairs it for good.
    Unpair,
    /// Asks it to reload its player.
    Reload,
    /// Presence transitions: no event when the display is already there.
    MarkOnline,
    /// See [`DisplayCommand::MarkOnline`].
    MarkOffline,
}

/// What happened to a display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DisplayEvent {
    /// It was paired with `tenant_id`; its first event.
    DisplayPaired {
        /// The tenant it belongs to from now on.
        tenant_id: Uuid,
        /// What it was told about itself.
        profile: DisplayProfile,
    },
    /// It was renamed.
    DisplayRenamed {
        /// The new name.
        name: String,
    },
    /// It was moved into a group, or out of any.
    DisplayMoved {
        /// The new group.
        group_id: Option<Uuid>,
    },
    /// It was unpaired; no command reaches it any more.
    DisplayUnpaired,
    /// A reload was asked for (pushed to the player).
    DisplayReloadRequested,
    /// It came online.
    DisplayWentOnline,
    /// It went offline.
    DisplayWentOffline,
}
crate::domain_event!(DisplayEvent, "1");

/// A paired display, as its decisions need it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Display {
    /// The tenant that paired it; `None` until paired.
    pub tenant_id: Option<Uuid>,
    /// Its current profile.
    pub profile: Option<DisplayProfile>,
    /// Whether it is online now.
    pub online: bool,
    /// Unpaired (terminal).
    pub unpaired: bool,
}

impl Aggregate for Display {
    const TYPE: &'static str = "Display";
    type Command = Scoped<DisplayCommand>;
    type Event = DisplayEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            DisplayCommand::Pair(profile) => {
                if self.tenant_id.is_some() {
                    // Paired already (maybe by another tenant): the code is spent.
                    return Err(DomainError::NotFound("pairing code"));
                }
                DisplayEvent::DisplayPaired { tenant_id, profile }
            }
            _ if self.tenant_id != Some(tenant_id) || self.unpaired => {
                return Err(DomainError::NotFound("display"));
            }
            DisplayCommand::Rename { name } => DisplayEvent::DisplayRenamed {
                name: required_text(&name, "name", 100)?,
            },
            DisplayCommand::Move { group_id } => DisplayEvent::DisplayMoved { group_id },
            DisplayCommand::Unpair => DisplayEvent::DisplayUnpaired,
            DisplayCommand::Reload => DisplayEvent::DisplayReloadRequested,
            DisplayCommand::MarkOnline if !self.online => DisplayEvent::DisplayWentOnline,
            DisplayCommand::MarkOffline if self.online => DisplayEvent::DisplayWentOffline,
            DisplayCommand::MarkOnline | DisplayCommand::MarkOffline => return Ok(()),
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: DisplayEvent) {
        match event {
            DisplayEvent::DisplayPaired { tenant_id, profile } => {
                self.tenant_id = Some(tenant_id);
                self.profile = Some(profile);
            }
            DisplayEvent::DisplayRenamed { name } => {
                if let Some(p) = &mut self.profile {
                    p.name = name;
                }
            }
            DisplayEvent::DisplayMoved { group_id } => {
                if let Some(p) = &mut self.profile {
                    p.group_id = group_id;
                }
            }
            DisplayEvent::DisplayUnpaired => self.unpaired = true,
            DisplayEvent::DisplayReloadRequested => {}
            DisplayEvent::DisplayWentOnline => self.online = true,
            DisplayEvent::DisplayWentOffline => self.online = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    const T: Uuid = Uuid::from_u128(7);
    const OTHER: Uuid = Uuid::from_u128(8);

    fn scoped<C>(tenant_id: Uuid, command: C) -> Scoped<C> {
        Scoped { tenant_id, command }
    }

    fn profile() -> DisplayProfile {
        DisplayProfile::parse(
            "Lobby",
            None,
            vec!["ground".into()],
            None,
            Some("Europe/Berlin"),
        )
        .unwrap()
    }

    #[test]
    fn a_paired_display_belongs_to_its_tenant_and_cannot_be_paired_again() {
        let paired = DisplayEvent::DisplayPaired {
            tenant_id: T,
            profile: profile(),
        };
        TestFramework::<Display>::with(())
            .given(vec![paired.clone()])
            .when(scoped(OTHER, DisplayCommand::Pair(profile())))
            .then_expect_error(DomainError::NotFound("pairing code"));
        TestFramework::<Display>::with(())
            .given(vec![paired.clone()])
            .when(scoped(OTHER, DisplayCommand::Reload))
            .then_expect_error(DomainError::NotFound("display"));
        TestFramework::<Display>::with(())
            .given(vec![paired.clone(), DisplayEvent::DisplayUnpaired])
            .when(scoped(T, DisplayCommand::Rename { name: "x".into() }))
            .then_expect_error(DomainError::NotFound("display"));
        TestFramework::<Display>::with(())
            .given(vec![paired])
            .when(scoped(T, DisplayCommand::Rename { name: "  ".into() }))
            .then_expect_error(DomainError::invalid("name", "must not be empty"));
    }

    #[test]
    fn presence_records_only_transitions() {
        let paired = DisplayEvent::DisplayPaired {
            tenant_id: T,
            profile: profile(),
        };
        TestFramework::<Display>::with(())
            .given(vec![paired.clone()])
            .when(scoped(T, DisplayCommand::MarkOffline))
            .then_expect_events(vec![]);
        TestFramework::<Display>::with(())
            .given(vec![paired.clone()])
            .when(scoped(T, DisplayCommand::MarkOnline))
            .then_expect_events(vec![DisplayEvent::DisplayWentOnline]);
        TestFramework::<Display>::with(())
            .given(vec![paired, DisplayEvent::DisplayWentOnline])
            .when(scoped(T, DisplayCommand::MarkOnline))
            .then_expect_events(vec![]);
    }
}
