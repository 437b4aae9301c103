//! The Display aggregate: a screen once it is paired to a tenant. Pairing is
//! its first event (an unpaired screen is no fact of any tenant); afterwards
//! only that tenant may rename, move, reload or unpair it, and its presence
//! is recorded only when it changes.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MAX_TAGS, bounded_text, required_name};
use crate::schedule::TimeZone;
use crate::text::check_single_line;
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
        if tags.len() > MAX_TAGS {
            return Err(DomainError::invalid(
                "tags",
                format!("at most {MAX_TAGS} tags"),
            ));
        }
        let tags = tags
            .iter()
            .enumerate()
            .map(|(i, t)| required_name(t, &format!("tags.{i}"), 50))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: required_name(name, "name", 100)?,
            group_id,
            tags,
            location: location
                .map(|l| {
                    check_single_line(l.trim(), "location")?;
                    bounded_text(l.trim(), "location", 200)
                })
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

impl Display {
    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<DisplayCommand>,
    ) -> Result<Vec<DisplayEvent>, DomainError> {
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
                name: required_name(&name, "name", 100)?,
            },
            DisplayCommand::Move { group_id } => DisplayEvent::DisplayMoved { group_id },
            DisplayCommand::Unpair => DisplayEvent::DisplayUnpaired,
            DisplayCommand::Reload => DisplayEvent::DisplayReloadRequested,
            DisplayCommand::MarkOnline if !self.online => DisplayEvent::DisplayWentOnline,
            DisplayCommand::MarkOffline if self.online => DisplayEvent::DisplayWentOffline,
            DisplayCommand::MarkOnline | DisplayCommand::MarkOffline => return Ok(vec![]),
        };
        Ok(vec![event])
    }
}

impl Aggregate for Display {
    const TYPE: &'static str = "Display";
    type Command = Scoped<DisplayCommand>;
    type Event = DisplayEvent;
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
    use serde_json::json;

    use super::*;
    use crate::signage::testing::{OTHER_TENANT, TENANT, assert_stored, given};

    const GROUP: Uuid = Uuid::from_u128(30);

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

    fn paired() -> DisplayEvent {
        DisplayEvent::DisplayPaired {
            tenant_id: TENANT,
            profile: profile(),
        }
    }

    /// Every command a paired display answers, for the rules that refuse
    /// them all alike.
    fn every_change() -> Vec<DisplayCommand> {
        vec![
            DisplayCommand::Rename {
                name: "Hall".into(),
            },
            DisplayCommand::Move {
                group_id: Some(GROUP),
            },
            DisplayCommand::Unpair,
            DisplayCommand::Reload,
            DisplayCommand::MarkOnline,
            DisplayCommand::MarkOffline,
        ]
    }

    #[test]
    fn is_stored_as_aggregate_type_display() {
        assert_eq!(Display::TYPE, "Display");
    }

    #[test]
    fn events_keep_their_stored_shape() {
        assert_stored(
            paired(),
            json!({"DisplayPaired": {
                "tenant_id": TENANT,
                "profile": {
                    "name": "Lobby",
                    "group_id": null,
                    "tags": ["ground"],
                    "location": null,
                    "time_zone": "Europe/Berlin",
                },
            }}),
        );
        assert_stored(
            DisplayEvent::DisplayRenamed {
                name: "Hall".into(),
            },
            json!({"DisplayRenamed": {"name": "Hall"}}),
        );
        assert_stored(
            DisplayEvent::DisplayMoved {
                group_id: Some(GROUP),
            },
            json!({"DisplayMoved": {"group_id": GROUP}}),
        );
        for (event, name) in [
            (DisplayEvent::DisplayUnpaired, "DisplayUnpaired"),
            (
                DisplayEvent::DisplayReloadRequested,
                "DisplayReloadRequested",
            ),
            (DisplayEvent::DisplayWentOnline, "DisplayWentOnline"),
            (DisplayEvent::DisplayWentOffline, "DisplayWentOffline"),
        ] {
            assert_stored(event, json!(name));
        }
    }

    #[test]
    fn pairing_records_the_tenant_and_profile() {
        given::<Display>([])
            .when(TENANT, DisplayCommand::Pair(profile()))
            .then([paired()]);
    }

    #[test]
    fn a_paired_display_cannot_be_paired_again_by_any_tenant() {
        for tenant in [TENANT, OTHER_TENANT] {
            given::<Display>([paired()])
                .when(tenant, DisplayCommand::Pair(profile()))
                .then_err(DomainError::NotFound("pairing code"));
        }
    }

    #[test]
    fn an_unpaired_display_answers_nothing_but_pairing() {
        for command in every_change() {
            given::<Display>([])
                .when(TENANT, command)
                .then_err(DomainError::NotFound("display"));
        }
    }

    #[test]
    fn another_tenant_finds_no_display() {
        for command in every_change() {
            given::<Display>([paired()])
                .when(OTHER_TENANT, command)
                .then_err(DomainError::NotFound("display"));
        }
    }

    #[test]
    fn rename_records_the_trimmed_name() {
        given::<Display>([paired()])
            .when(
                TENANT,
                DisplayCommand::Rename {
                    name: "  Hall ".into(),
                },
            )
            .then([DisplayEvent::DisplayRenamed {
                name: "Hall".into(),
            }]);
    }

    #[test]
    fn rename_refuses_an_empty_or_overlong_name() {
        given::<Display>([paired()])
            .when(TENANT, DisplayCommand::Rename { name: "  ".into() })
            .then_err(DomainError::invalid("name", "must not be empty"));
        given::<Display>([paired()])
            .when(
                TENANT,
                DisplayCommand::Rename {
                    name: "x".repeat(101),
                },
            )
            .then_err(DomainError::invalid("name", "101 characters; at most 100"));
    }

    #[test]
    fn move_records_the_new_group_or_none() {
        for group_id in [Some(GROUP), None] {
            given::<Display>([paired()])
                .when(TENANT, DisplayCommand::Move { group_id })
                .then([DisplayEvent::DisplayMoved { group_id }]);
        }
    }

    #[test]
    fn reload_records_a_request_every_time() {
        given::<Display>([paired(), DisplayEvent::DisplayReloadRequested])
            .when(TENANT, DisplayCommand::Reload)
            .then([DisplayEvent::DisplayReloadRequested]);
    }

    #[test]
    fn unpairing_is_terminal() {
        given::<Display>([paired()])
            .when(TENANT, DisplayCommand::Unpair)
            .then([DisplayEvent::DisplayUnpaired]);
        for command in every_change() {
            given::<Display>([paired(), DisplayEvent::DisplayUnpaired])
                .when(TENANT, command)
                .then_err(DomainError::NotFound("display"));
        }
        // Its pairing code is spent too.
        given::<Display>([paired(), DisplayEvent::DisplayUnpaired])
            .when(TENANT, DisplayCommand::Pair(profile()))
            .then_err(DomainError::NotFound("pairing code"));
    }

    #[test]
    fn presence_records_only_transitions() {
        given::<Display>([paired()])
            .when(TENANT, DisplayCommand::MarkOffline)
            .then([]);
        given::<Display>([paired()])
            .when(TENANT, DisplayCommand::MarkOnline)
            .then([DisplayEvent::DisplayWentOnline]);
        given::<Display>([paired(), DisplayEvent::DisplayWentOnline])
            .when(TENANT, DisplayCommand::MarkOnline)
            .then([]);
        given::<Display>([paired(), DisplayEvent::DisplayWentOnline])
            .when(TENANT, DisplayCommand::MarkOffline)
            .then([DisplayEvent::DisplayWentOffline]);
        given::<Display>([
            paired(),
            DisplayEvent::DisplayWentOnline,
            DisplayEvent::DisplayWentOffline,
        ])
        .when(TENANT, DisplayCommand::MarkOnline)
        .then([DisplayEvent::DisplayWentOnline]);
    }

    #[test]
    fn profile_defaults_to_utc_and_trims_its_texts() {
        let p = DisplayProfile::parse(
            " Lobby ",
            Some(GROUP),
            vec![" ground ".into()],
            Some(" by the door ".into()),
            None,
        )
        .unwrap();
        assert_eq!(p.name, "Lobby");
        assert_eq!(p.group_id, Some(GROUP));
        assert_eq!(p.tags, ["ground"]);
        assert_eq!(p.location.as_deref(), Some("by the door"));
        assert_eq!(p.time_zone.name(), "UTC");
    }

    #[test]
    fn profile_refuses_bad_name_tags_location_and_zone() {
        let parse = |name: &str, tags: Vec<String>, location: Option<String>, zone| {
            DisplayProfile::parse(name, None, tags, location, zone).unwrap_err()
        };
        assert_eq!(
            parse(" ", vec![], None, None),
            DomainError::invalid("name", "must not be empty")
        );
        assert_eq!(
            parse(&"x".repeat(101), vec![], None, None),
            DomainError::invalid("name", "101 characters; at most 100")
        );
        assert_eq!(
            parse("Lobby", vec!["t".into(); 21], None, None),
            DomainError::invalid("tags", "at most 20 tags")
        );
        assert!(DisplayProfile::parse("Lobby", None, vec!["t".into(); 20], None, None).is_ok());
        assert_eq!(
            parse("Lobby", vec!["ok".into(), " ".into()], None, None),
            DomainError::invalid("tags.1", "must not be empty")
        );
        assert_eq!(
            parse("Lobby", vec!["t".repeat(51)], None, None),
            DomainError::invalid("tags.0", "51 characters; at most 50")
        );
        assert_eq!(
            parse("Lobby", vec![], Some("l".repeat(201)), None),
            DomainError::invalid("location", "201 characters; at most 200")
        );
        assert!(matches!(
            parse("Lobby", vec![], None, Some("Mars/Olympus")),
            DomainError::Validation { field, .. } if field == "timeZone"
        ));
    }
}
