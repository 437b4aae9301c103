//! [`SignageState`]: a tenant's signage content folded from the content
//! aggregates' events, and what it hands [`crate::manifest::resolve`]. The
//! live read model and the time-travel query both fold with it, so a
//! manifest computed now and one computed "as of" an instant agree.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    CategoryEvent, DisplayProfile, EmergencyEvent, GroupEvent, NoticeContent, NoticeEvent,
    PlaylistEvent, ScheduleEvent,
};
use crate::manifest::{
    ActiveEmergency, DisplayContext, PlayerNotice, PlaylistItem, ScheduleSpec, Signage, Validity,
};

/// A group as the state keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Its name.
    pub name: String,
    /// The group it nests in.
    pub parent_id: Option<Uuid>,
    /// What its displays play when no schedule matches.
    pub default_playlist_id: Option<Uuid>,
}

/// A notice as the state keeps it (deleted ones stay, for play reports and
/// the analytics' names, but leave every manifest at once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeInfo {
    /// Its current content.
    pub content: NoticeContent,
    /// When `NoticeCreated` was recorded.
    pub created_at: DateTime<Utc>,
    /// Deleted: out of every manifest, kept for its name.
    pub deleted: bool,
}

/// A tenant's signage content: the fold of its content events.
///
/// Ordered maps, so equal states serialize equally (a replay rebuilds the
/// same rows).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SignageState {
    /// Display groups by id.
    pub groups: BTreeMap<Uuid, GroupInfo>,
    /// Category names by id.
    pub categories: BTreeMap<Uuid, String>,
    /// Notices by id, deleted ones included.
    pub notices: BTreeMap<Uuid, NoticeInfo>,
    /// Playlists (name, items) by id.
    pub playlists: BTreeMap<Uuid, (String, Vec<PlaylistItem>)>,
    /// Schedules by id; deleted ones are removed.
    pub schedules: BTreeMap<Uuid, ScheduleSpec>,
    /// Active emergencies by id; cleared ones are removed.
    pub emergencies: BTreeMap<Uuid, ActiveEmergency>,
}

/// One content event of any signage aggregate, with its aggregate id.
#[derive(Debug, Clone)]
pub enum ContentEvent {
    /// A DisplayGroup's event.
    Group(Uuid, GroupEvent),
    /// A NoticeCategory's event.
    Category(Uuid, CategoryEvent),
    /// A Notice's event.
    Notice(Uuid, NoticeEvent),
    /// A Playlist's event.
    Playlist(Uuid, PlaylistEvent),
    /// A SignageSchedule's event.
    Schedule(Uuid, ScheduleEvent),
    /// An Emergency's event.
    Emergency(Uuid, EmergencyEvent),
}

impl SignageState {
    /// Applies one event recorded at `at`.
    pub fn apply(&mut self, event: ContentEvent, at: DateTime<Utc>) {
        match event {
            ContentEvent::Group(id, e) => match e {
                GroupEvent::DisplayGroupCreated {
                    name,
                    parent_id,
                    default_playlist_id,
                    ..
                } => {
                    self.groups.insert(
                        id,
                        GroupInfo {
                            name,
                            parent_id,
                            default_playlist_id,
                        },
                    );
                }
                GroupEvent::DisplayGroupDefaultSet { playlist_id } => {
                    if let Some(g) = self.groups.get_mut(&id) {
                        g.default_playlist_id = playlist_id;
                    }
                }
            },
            ContentEvent::Category(id, CategoryEvent::NoticeCategoryCreated { name, .. }) => {
                self.categories.insert(id, name);
            }
            ContentEvent::Notice(id, e) => match e {
                NoticeEvent::NoticeCreated { content, .. } => {
                    self.notices.insert(
                        id,
                        NoticeInfo {
                            content,
                            created_at: at,
                            deleted: false,
                        },
                    );
                }
                NoticeEvent::NoticeUpdated { content } => {
                    if let Some(n) = self.notices.get_mut(&id) {
                        n.content = content;
                    }
                }
                NoticeEvent::NoticeDeleted => {
                    if let Some(n) = self.notices.get_mut(&id) {
                        n.deleted = true;
                    }
                }
            },
            ContentEvent::Playlist(id, e) => match e {
                PlaylistEvent::PlaylistCreated { name, items, .. }
                | PlaylistEvent::PlaylistUpdated { name, items } => {
                    self.playlists.insert(id, (name, items));
                }
            },
            ContentEvent::Schedule(id, e) => match e {
                ScheduleEvent::SignageScheduleCreated { schedule, .. } => {
                    self.schedules.insert(id, schedule);
                }
                ScheduleEvent::SignageScheduleDeleted => {
                    self.schedules.remove(&id);
                }
            },
            ContentEvent::Emergency(id, e) => match e {
                EmergencyEvent::EmergencyStarted {
                    message,
                    severity,
                    groups,
                    media_id,
                    ..
                } => {
                    self.emergencies.insert(
                        id,
                        ActiveEmergency {
                            id,
                            message,
                            severity: severity.as_str().into(),
                            groups,
                            media_id,
                            started_at: at,
                        },
                    );
                }
                EmergencyEvent::EmergencyCleared => {
                    self.emergencies.remove(&id);
                }
            },
        }
    }

    /// What [`crate::manifest::resolve`] looks at.
    pub fn signage(&self) -> Signage {
        Signage {
            schedules: self.schedules.values().cloned().collect(),
            playlists: self
                .playlists
                .iter()
                .map(|(id, (_, items))| (*id, items.clone()))
                .collect(),
            notices: self
                .notices
                .iter()
                .filter(|(_, n)| !n.deleted)
                .map(|(id, n)| {
                    (
                        *id,
                        PlayerNotice {
                            id: *id,
                            title: n.content.title.clone(),
                            body: n.content.body.clone(),
                            media_id: n.content.media_id,
                            validity: Validity {
                                from: n.content.valid_from,
                                to: n.content.valid_to,
                            },
                            category_id: n.content.category_id,
                        },
                    )
                })
                .collect(),
            group_defaults: self
                .groups
                .iter()
                .filter_map(|(id, g)| Some((*id, g.default_playlist_id?)))
                .collect(),
            emergencies: self.emergencies.values().cloned().collect(),
            categories: self
                .categories
                .iter()
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
        }
    }

    /// The display's context for resolution.
    pub fn context(&self, id: Uuid, profile: &DisplayProfile) -> DisplayContext {
        DisplayContext {
            id,
            group_id: profile.group_id,
            parent_group_id: profile
                .group_id
                .and_then(|g| self.groups.get(&g))
                .and_then(|g| g.parent_id),
            time_zone: profile.time_zone,
        }
    }

    /// Whether `group` may be a parent (exists and is top-level).
    pub fn top_level_group(&self, group: Uuid) -> bool {
        self.groups
            .get(&group)
            .is_some_and(|g| g.parent_id.is_none())
    }

    /// Every schedule but `except`, for the conflict check.
    pub fn other_schedules(&self, except: Uuid) -> Vec<ScheduleSpec> {
        self.schedules
            .values()
            .filter(|s| s.id != except)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Source, resolve};

    const T: Uuid = Uuid::from_u128(7);

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
    fn the_state_resolves_group_defaults_and_drops_deleted_notices_at_once() {
        let mut state = SignageState::default();
        let at: DateTime<Utc> = "2027-01-01T12:00:00Z".parse().unwrap();
        let (lobby, floor, playlist, notice) = (
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            Uuid::from_u128(3),
            Uuid::from_u128(4),
        );
        let content = NoticeContent::parse("Lunch", "Soup", None, None, None, None, 0, 10).unwrap();
        for e in [
            ContentEvent::Group(
                lobby,
                GroupEvent::DisplayGroupCreated {
                    tenant_id: T,
                    name: "Building".into(),
                    parent_id: None,
                    default_playlist_id: Some(playlist),
                },
            ),
            ContentEvent::Group(
                floor,
                GroupEvent::DisplayGroupCreated {
                    tenant_id: T,
                    name: "Lobby".into(),
                    parent_id: Some(lobby),
                    default_playlist_id: None,
                },
            ),
            ContentEvent::Notice(
                notice,
                NoticeEvent::NoticeCreated {
                    tenant_id: T,
                    content,
                },
            ),
            ContentEvent::Playlist(
                playlist,
                PlaylistEvent::PlaylistCreated {
                    tenant_id: T,
                    name: "Day".into(),
                    items: vec![PlaylistItem {
                        notice_id: notice,
                        duration_seconds: 7,
                    }],
                },
            ),
        ] {
            state.apply(e, at);
        }
        let mut p = profile();
        p.group_id = Some(floor);
        let display = state.context(Uuid::from_u128(9), &p);
        assert_eq!(display.parent_group_id, Some(lobby));
        let m = resolve(&display, &state.signage(), at);
        assert_eq!(m.source, Source::GroupDefault(lobby));
        assert_eq!(m.slides.len(), 1);
        assert_eq!(m.slides[0].duration_seconds, 7);
        state.apply(ContentEvent::Notice(notice, NoticeEvent::NoticeDeleted), at);
        assert!(resolve(&display, &state.signage(), at).slides.is_empty());
        assert!(
            state.notices.contains_key(&notice),
            "kept for late play reports"
        );
        assert!(!state.top_level_group(floor));
        assert!(state.top_level_group(lobby));
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn schedules_and_emergencies_leave_the_state_when_deleted_or_cleared() {
        use crate::signage::{Severity, targets};
        let mut state = SignageState::default();
        let t0 = at("2027-01-01T12:00:00Z");
        let (schedule, emergency) = (Uuid::from_u128(20), Uuid::from_u128(21));
        let spec = ScheduleSpec {
            id: schedule,
            name: "Mornings".into(),
            priority: 1,
            starts_on: t0.date_naive(),
            ends_on: t0.date_naive(),
            dayparts: vec![],
            targets: targets(vec![Uuid::from_u128(9)], vec![]),
            playlist_id: Uuid::from_u128(3),
        };
        state.apply(
            ContentEvent::Schedule(
                schedule,
                ScheduleEvent::SignageScheduleCreated {
                    tenant_id: T,
                    schedule: spec.clone(),
                },
            ),
            t0,
        );
        state.apply(
            ContentEvent::Emergency(
                emergency,
                EmergencyEvent::EmergencyStarted {
                    tenant_id: T,
                    message: "Evacuate".into(),
                    severity: Severity::High,
                    groups: Default::default(),
                    media_id: None,
                },
            ),
            t0,
        );
        assert_eq!(state.other_schedules(Uuid::from_u128(99)), [spec]);
        assert!(state.other_schedules(schedule).is_empty());
        let active = &state.emergencies[&emergency];
        assert_eq!(
            (active.severity.as_str(), active.started_at),
            ("HIGH", t0),
            "started at the event's time"
        );
        state.apply(
            ContentEvent::Schedule(schedule, ScheduleEvent::SignageScheduleDeleted),
            t0,
        );
        state.apply(
            ContentEvent::Emergency(emergency, EmergencyEvent::EmergencyCleared),
            t0,
        );
        assert!(state.schedules.is_empty());
        assert!(state.emergencies.is_empty());
    }

    #[test]
    fn updates_replace_notices_playlists_and_group_defaults() {
        let mut state = SignageState::default();
        let (t0, t1) = (at("2027-01-01T12:00:00Z"), at("2027-01-02T12:00:00Z"));
        let (group, notice, playlist, category) = (
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            Uuid::from_u128(3),
            Uuid::from_u128(4),
        );
        let lunch = NoticeContent::parse("Lunch", "", None, None, None, None, 0, 10).unwrap();
        let dinner = NoticeContent::parse("Dinner", "", None, None, None, None, 0, 10).unwrap();
        for (event, time) in [
            (
                ContentEvent::Group(
                    group,
                    GroupEvent::DisplayGroupCreated {
                        tenant_id: T,
                        name: "Lobby".into(),
                        parent_id: None,
                        default_playlist_id: None,
                    },
                ),
                t0,
            ),
            (
                ContentEvent::Group(
                    group,
                    GroupEvent::DisplayGroupDefaultSet {
                        playlist_id: Some(playlist),
                    },
                ),
                t1,
            ),
            (
                ContentEvent::Category(
                    category,
                    CategoryEvent::NoticeCategoryCreated {
                        tenant_id: T,
                        name: "Canteen".into(),
                    },
                ),
                t0,
            ),
            (
                ContentEvent::Notice(
                    notice,
                    NoticeEvent::NoticeCreated {
                        tenant_id: T,
                        content: lunch,
                    },
                ),
                t0,
            ),
            (
                ContentEvent::Notice(
                    notice,
                    NoticeEvent::NoticeUpdated {
                        content: dinner.clone(),
                    },
                ),
                t1,
            ),
            (
                ContentEvent::Playlist(
                    playlist,
                    PlaylistEvent::PlaylistCreated {
                        tenant_id: T,
                        name: "Day".into(),
                        items: vec![],
                    },
                ),
                t0,
            ),
            (
                ContentEvent::Playlist(
                    playlist,
                    PlaylistEvent::PlaylistUpdated {
                        name: "Night".into(),
                        items: vec![],
                    },
                ),
                t1,
            ),
        ] {
            state.apply(event, time);
        }
        assert_eq!(state.groups[&group].default_playlist_id, Some(playlist));
        assert_eq!(state.categories[&category], "Canteen");
        assert_eq!(state.notices[&notice].content, dinner);
        assert_eq!(state.notices[&notice].created_at, t0, "kept on update");
        assert_eq!(state.playlists[&playlist].0, "Night");
        let signage = state.signage();
        assert_eq!(signage.group_defaults[&group], playlist);
        assert_eq!(signage.notices[&notice].title, "Dinner");
        assert_eq!(signage.categories[&category], "Canteen");
    }

    #[test]
    fn events_for_unknown_ids_change_nothing() {
        let mut state = SignageState::default();
        let id = Uuid::from_u128(1);
        let t0 = at("2027-01-01T12:00:00Z");
        state.apply(ContentEvent::Notice(id, NoticeEvent::NoticeDeleted), t0);
        state.apply(
            ContentEvent::Group(id, GroupEvent::DisplayGroupDefaultSet { playlist_id: None }),
            t0,
        );
        assert_eq!(state, SignageState::default());
    }
}
