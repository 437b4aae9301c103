//! Digital signage aggregates: Display, DisplayGroup, NoticeCategory,
//! Notice, Playlist, SignageSchedule, Emergency and PlayReport, and
//! [`SignageState`], the fold of a tenant's signage events into what
//! [`crate::manifest::resolve`] needs. The live read model and the time-travel
//! query (`displayManifest(asOf)`) both use that fold, so they cannot disagree.
//!
//! A display that has registered but is not paired is no fact of any tenant:
//! it lives in an operational table, not in the log (an anonymous endpoint
//! must not be able to grow the immutable log). `DisplayPaired` is the first
//! event of a Display.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::manifest::{
    DisplayContext, Emergency, Notice, PlaylistItem, Signage, SignageSchedule, Targets, Validity,
};
use crate::schedule::TimeZone;
use crate::text::graphemes;
use crate::{DomainError, Scoped};

/// Most plays in one report.
pub const MAX_PLAYS_PER_REPORT: usize = 500;
/// Most items in a playlist.
pub const MAX_PLAYLIST_ITEMS: usize = 200;
/// How far in the future a reported play may lie (clock skew).
pub const PLAY_CLOCK_SKEW_SECONDS: i64 = 120;

/// Checks a required, bounded text; answers it trimmed.
pub fn required_text(raw: &str, field: &str, max: usize) -> Result<String, DomainError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    bounded_text(text, field, max)
}

/// Checks an optional text's length.
pub fn bounded_text(raw: &str, field: &str, max: usize) -> Result<String, DomainError> {
    let n = graphemes(raw);
    if n > max {
        return Err(DomainError::invalid(
            field,
            format!("{n} characters; at most {max}"),
        ));
    }
    Ok(raw.to_string())
}

/// Severity of an emergency override.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Info,
    Warning,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

// ---------------------------------------------------------------- Display

/// What a display is told about itself when paired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DisplayProfile {
    pub name: String,
    pub group_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub location: Option<String>,
    pub time_zone: TimeZone,
}

impl DisplayProfile {
    /// Validates the pairing input (the group's existence is checked by the
    /// caller, in the tenant).
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

#[derive(Debug, Clone)]
pub enum DisplayCommand {
    Pair(DisplayProfile),
    Rename {
        name: String,
    },
    Move {
        group_id: Option<Uuid>,
    },
    Unpair,
    Reload,
    /// Presence transitions: no event when the display is already there.
    MarkOnline,
    MarkOffline,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DisplayEvent {
    DisplayPaired {
        tenant_id: Uuid,
        profile: DisplayProfile,
    },
    DisplayRenamed {
        name: String,
    },
    DisplayMoved {
        group_id: Option<Uuid>,
    },
    DisplayUnpaired,
    DisplayReloadRequested,
    DisplayWentOnline,
    DisplayWentOffline,
}
crate::domain_event!(DisplayEvent, "1");

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Display {
    pub tenant_id: Option<Uuid>,
    pub profile: Option<DisplayProfile>,
    pub online: bool,
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

// ----------------------------------------------------------- Simple content

/// The scaffolding shared by the content aggregates: created once by a
/// tenant, then changed or deleted only by that tenant.
macro_rules! tenant_owned {
    ($agg:ident, $name:literal) => {
        impl $agg {
            #[allow(dead_code)] // not every one changes after creation
            fn owned_by(&self, tenant: Uuid) -> Result<(), DomainError> {
                if self.tenant_id == Some(tenant) && !self.deleted {
                    Ok(())
                } else {
                    Err(DomainError::NotFound($name))
                }
            }
            fn fresh(&self) -> Result<(), DomainError> {
                if self.tenant_id.is_some() {
                    Err(DomainError::Conflict(
                        concat!($name, " already exists").into(),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    };
}

#[derive(Debug, Clone)]
pub enum GroupCommand {
    /// `parent_id` must name a top-level group of the tenant (checked by the
    /// caller; groups nest one level).
    Create {
        name: String,
        parent_id: Option<Uuid>,
        default_playlist_id: Option<Uuid>,
    },
    SetDefaultPlaylist {
        playlist_id: Option<Uuid>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum GroupEvent {
    DisplayGroupCreated {
        tenant_id: Uuid,
        name: String,
        parent_id: Option<Uuid>,
        default_playlist_id: Option<Uuid>,
    },
    DisplayGroupDefaultSet {
        playlist_id: Option<Uuid>,
    },
}
crate::domain_event!(GroupEvent, "1");

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DisplayGroup {
    pub tenant_id: Option<Uuid>,
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

#[derive(Debug, Clone)]
pub enum CategoryCommand {
    Create { name: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CategoryEvent {
    NoticeCategoryCreated { tenant_id: Uuid, name: String },
}
crate::domain_event!(CategoryEvent, "1");

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct NoticeCategory {
    pub tenant_id: Option<Uuid>,
    pub deleted: bool,
}
tenant_owned!(NoticeCategory, "category");

impl Aggregate for NoticeCategory {
    const TYPE: &'static str = "NoticeCategory";
    type Command = Scoped<CategoryCommand>;
    type Event = CategoryEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let CategoryCommand::Create { name } = command;
        self.fresh()?;
        let event = CategoryEvent::NoticeCategoryCreated {
            tenant_id,
            name: required_text(&name, "name", 100)?,
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: CategoryEvent) {
        let CategoryEvent::NoticeCategoryCreated { tenant_id, .. } = event;
        self.tenant_id = Some(tenant_id);
    }
}

/// A notice's content (ids of media and category are checked by the caller
/// in the tenant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeContent {
    pub title: String,
    pub body: String,
    pub media_id: Option<Uuid>,
    pub category_id: Option<Uuid>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub priority: i32,
    pub duration_seconds: u32,
}

impl NoticeContent {
    /// Validates the input of `createNotice`/`updateNotice`.
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        title: &str,
        body: &str,
        media_id: Option<Uuid>,
        category_id: Option<Uuid>,
        valid_from: Option<DateTime<Utc>>,
        valid_to: Option<DateTime<Utc>>,
        priority: i32,
        duration_seconds: i32,
    ) -> Result<Self, DomainError> {
        Validity::parse(valid_from, valid_to)?;
        if !(0..=100).contains(&priority) {
            return Err(DomainError::invalid("priority", "between 0 and 100"));
        }
        if !(1..=3600).contains(&duration_seconds) {
            return Err(DomainError::invalid(
                "durationSeconds",
                "between 1 and 3600 seconds",
            ));
        }
        Ok(Self {
            title: required_text(title, "title", 200)?,
            body: bounded_text(body, "body", 2000)?,
            media_id,
            category_id,
            valid_from,
            valid_to,
            priority,
            duration_seconds: duration_seconds as u32,
        })
    }
}

#[derive(Debug, Clone)]
pub enum NoticeCommand {
    Create(NoticeContent),
    Update(NoticeContent),
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum NoticeEvent {
    NoticeCreated {
        tenant_id: Uuid,
        content: NoticeContent,
    },
    NoticeUpdated {
        content: NoticeContent,
    },
    NoticeDeleted,
}
crate::domain_event!(NoticeEvent, "1");

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SignageNotice {
    pub tenant_id: Option<Uuid>,
    pub deleted: bool,
}
tenant_owned!(SignageNotice, "notice");

impl Aggregate for SignageNotice {
    const TYPE: &'static str = "Notice";
    type Command = Scoped<NoticeCommand>;
    type Event = NoticeEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            NoticeCommand::Create(content) => {
                self.fresh()?;
                NoticeEvent::NoticeCreated { tenant_id, content }
            }
            NoticeCommand::Update(content) => {
                self.owned_by(tenant_id)?;
                NoticeEvent::NoticeUpdated { content }
            }
            NoticeCommand::Delete => {
                self.owned_by(tenant_id)?;
                NoticeEvent::NoticeDeleted
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: NoticeEvent) {
        match event {
            NoticeEvent::NoticeCreated { tenant_id, .. } => self.tenant_id = Some(tenant_id),
            NoticeEvent::NoticeUpdated { .. } => {}
            NoticeEvent::NoticeDeleted => self.deleted = true,
        }
    }
}

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

#[derive(Debug, Clone)]
pub enum PlaylistCommand {
    Create {
        name: String,
        items: Vec<PlaylistItem>,
    },
    Update {
        name: String,
        items: Vec<PlaylistItem>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlaylistEvent {
    PlaylistCreated {
        tenant_id: Uuid,
        name: String,
        items: Vec<PlaylistItem>,
    },
    PlaylistUpdated {
        name: String,
        items: Vec<PlaylistItem>,
    },
}
crate::domain_event!(PlaylistEvent, "1");

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Playlist {
    pub tenant_id: Option<Uuid>,
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

// --------------------------------------------------------- SignageSchedule

#[derive(Debug, Clone)]
pub enum ScheduleCommand {
    /// `existing` are the tenant's other schedules (from the read model):
    /// an overlap with equal priority is refused, naming the other one.
    Create {
        schedule: SignageSchedule,
        existing: Vec<SignageSchedule>,
    },
    Delete,
}

/// Validates a schedule's shape (dates and targets; dayparts are parsed by
/// [`Daypart::parse`]).
pub fn check_schedule(s: &SignageSchedule) -> Result<(), DomainError> {
    required_text(&s.name, "name", 100)?;
    if s.ends_on < s.starts_on {
        return Err(DomainError::invalid("endsOn", "ends before it starts"));
    }
    if s.dayparts.is_empty() {
        return Err(DomainError::invalid(
            "dayparts",
            "name at least one daypart",
        ));
    }
    if s.targets.displays.is_empty() && s.targets.groups.is_empty() {
        return Err(DomainError::invalid(
            "targets",
            "name at least one display or group",
        ));
    }
    if !(0..=100).contains(&s.priority) {
        return Err(DomainError::invalid("priority", "between 0 and 100"));
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScheduleEvent {
    SignageScheduleCreated {
        tenant_id: Uuid,
        schedule: SignageSchedule,
    },
    SignageScheduleDeleted,
}
crate::domain_event!(ScheduleEvent, "1");

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SignageScheduleAggregate {
    pub tenant_id: Option<Uuid>,
    pub deleted: bool,
}
tenant_owned!(SignageScheduleAggregate, "schedule");

impl Aggregate for SignageScheduleAggregate {
    const TYPE: &'static str = "SignageSchedule";
    type Command = Scoped<ScheduleCommand>;
    type Event = ScheduleEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            ScheduleCommand::Create { schedule, existing } => {
                self.fresh()?;
                check_schedule(&schedule)?;
                schedule.check_conflicts(&existing)?;
                ScheduleEvent::SignageScheduleCreated {
                    tenant_id,
                    schedule,
                }
            }
            ScheduleCommand::Delete => {
                self.owned_by(tenant_id)?;
                ScheduleEvent::SignageScheduleDeleted
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: ScheduleEvent) {
        match event {
            ScheduleEvent::SignageScheduleCreated { tenant_id, .. } => {
                self.tenant_id = Some(tenant_id)
            }
            ScheduleEvent::SignageScheduleDeleted => self.deleted = true,
        }
    }
}

// ---------------------------------------------------------------- Emergency

#[derive(Debug, Clone)]
pub enum EmergencyCommand {
    Start {
        message: String,
        severity: Severity,
        /// Empty: every display of the tenant.
        groups: BTreeSet<Uuid>,
        media_id: Option<Uuid>,
    },
    Clear,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EmergencyEvent {
    EmergencyStarted {
        tenant_id: Uuid,
        message: String,
        severity: Severity,
        groups: BTreeSet<Uuid>,
        media_id: Option<Uuid>,
    },
    EmergencyCleared,
}
crate::domain_event!(EmergencyEvent, "1");

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct EmergencyOverride {
    pub tenant_id: Option<Uuid>,
    /// Cleared (so it cannot be cleared twice).
    pub deleted: bool,
}
tenant_owned!(EmergencyOverride, "emergency");

impl Aggregate for EmergencyOverride {
    const TYPE: &'static str = "Emergency";
    type Command = Scoped<EmergencyCommand>;
    type Event = EmergencyEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let event = match command {
            EmergencyCommand::Start {
                message,
                severity,
                groups,
                media_id,
            } => {
                self.fresh()?;
                EmergencyEvent::EmergencyStarted {
                    tenant_id,
                    message: required_text(&message, "message", 500)?,
                    severity,
                    groups,
                    media_id,
                }
            }
            EmergencyCommand::Clear => {
                self.owned_by(tenant_id)?;
                EmergencyEvent::EmergencyCleared
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: EmergencyEvent) {
        match event {
            EmergencyEvent::EmergencyStarted { tenant_id, .. } => self.tenant_id = Some(tenant_id),
            EmergencyEvent::EmergencyCleared => self.deleted = true,
        }
    }
}

// --------------------------------------------------------------- PlayReport

/// One play of a notice on a display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Play {
    pub notice_id: Uuid,
    pub played_at: DateTime<Utc>,
    pub duration_seconds: u32,
}

/// The id of a display's report: the display chooses `report_id`, so it is
/// namespaced by the display (two displays cannot collide, nor can one
/// display touch another's report).
pub fn play_report_id(display_id: Uuid, report_id: Uuid) -> Uuid {
    Uuid::new_v5(&display_id, report_id.as_bytes())
}

#[derive(Debug, Clone)]
pub enum PlayReportCommand {
    /// `known` answers whether the tenant ever had a notice (deleted ones
    /// count: a display offline for a while reports them late).
    Report {
        display_id: Uuid,
        plays: Vec<Play>,
        unknown: Vec<Uuid>,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlayReportEvent {
    PlaysReported {
        tenant_id: Uuid,
        display_id: Uuid,
        plays: Vec<Play>,
    },
}
crate::domain_event!(PlayReportEvent, "1");

/// A batch of plays as reported once; the same report again is a duplicate.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PlayReport {
    pub tenant_id: Option<Uuid>,
}

/// The rules for a batch of plays.
pub fn check_plays(
    plays: &[Play],
    unknown: &[Uuid],
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    if plays.len() > MAX_PLAYS_PER_REPORT {
        return Err(DomainError::invalid(
            "plays",
            format!("at most {MAX_PLAYS_PER_REPORT} plays per report"),
        ));
    }
    for (i, play) in plays.iter().enumerate() {
        if unknown.contains(&play.notice_id) {
            return Err(DomainError::invalid(
                &format!("plays.{i}.noticeId"),
                "no such notice",
            ));
        }
        if play.played_at > now + Duration::seconds(PLAY_CLOCK_SKEW_SECONDS) {
            return Err(DomainError::invalid(
                &format!("plays.{i}.playedAt"),
                "lies in the future",
            ));
        }
        if play.duration_seconds > 86_400 {
            return Err(DomainError::invalid(
                &format!("plays.{i}.durationSeconds"),
                "at most a day",
            ));
        }
    }
    Ok(())
}

impl Aggregate for PlayReport {
    const TYPE: &'static str = "PlayReport";
    type Command = Scoped<PlayReportCommand>;
    type Event = PlayReportEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        Scoped { tenant_id, command }: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let PlayReportCommand::Report {
            display_id,
            plays,
            unknown,
            now,
        } = command;
        if self.tenant_id.is_some() {
            return Err(DomainError::Conflict("report already received".into()));
        }
        check_plays(&plays, &unknown, now)?;
        sink.write(
            PlayReportEvent::PlaysReported {
                tenant_id,
                display_id,
                plays,
            },
            self,
        )
        .await;
        Ok(())
    }

    fn apply(&mut self, event: PlayReportEvent) {
        let PlayReportEvent::PlaysReported { tenant_id, .. } = event;
        self.tenant_id = Some(tenant_id);
    }
}

// ------------------------------------------------------------ SignageState

/// A group as the state keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub parent_id: Option<Uuid>,
    pub default_playlist_id: Option<Uuid>,
}

/// A notice as the state keeps it (deleted ones stay, for play reports and
/// the analytics' names, but leave every manifest at once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeInfo {
    pub content: NoticeContent,
    pub created_at: DateTime<Utc>,
    pub deleted: bool,
}

/// A tenant's signage content: the fold of its content events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
/// Ordered maps, so equal states serialize equally (a replay rebuilds the
/// same rows).
pub struct SignageState {
    pub groups: BTreeMap<Uuid, GroupInfo>,
    pub categories: BTreeMap<Uuid, String>,
    pub notices: BTreeMap<Uuid, NoticeInfo>,
    pub playlists: BTreeMap<Uuid, (String, Vec<PlaylistItem>)>,
    pub schedules: BTreeMap<Uuid, SignageSchedule>,
    pub emergencies: BTreeMap<Uuid, Emergency>,
}

/// One content event of any signage aggregate, with its aggregate id.
#[derive(Debug, Clone)]
pub enum ContentEvent {
    Group(Uuid, GroupEvent),
    Category(Uuid, CategoryEvent),
    Notice(Uuid, NoticeEvent),
    Playlist(Uuid, PlaylistEvent),
    Schedule(Uuid, ScheduleEvent),
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
                        Emergency {
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
                        Notice {
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
    pub fn other_schedules(&self, except: Uuid) -> Vec<SignageSchedule> {
        self.schedules
            .values()
            .filter(|s| s.id != except)
            .cloned()
            .collect()
    }
}

/// Targets from id lists (emptiness is refused by [`check_schedule`]).
pub fn targets(displays: Vec<Uuid>, groups: Vec<Uuid>) -> Targets {
    Targets {
        displays: displays.into_iter().collect(),
        groups: groups.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{Source, resolve};
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

    #[test]
    fn notice_rules() {
        let at = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
        let err = NoticeContent::parse(
            "Lunch",
            "",
            None,
            None,
            at("2027-01-02T00:00:00Z"),
            at("2027-01-01T00:00:00Z"),
            0,
            10,
        )
        .unwrap_err();
        assert!(matches!(err, DomainError::Validation { ref field, .. } if field == "validTo"));
        assert!(NoticeContent::parse("", "", None, None, None, None, 0, 10).is_err());
        assert!(NoticeContent::parse("x", "", None, None, None, None, 0, 0).is_err());
        assert!(
            NoticeContent::parse("x", &"b".repeat(2001), None, None, None, None, 0, 5).is_err()
        );
        assert!(NoticeContent::parse("x", "", None, None, None, None, 0, 5).is_ok());
    }

    #[test]
    fn play_reports_are_checked_and_counted_once() {
        let now: DateTime<Utc> = "2027-01-01T12:00:00Z".parse().unwrap();
        let notice = Uuid::from_u128(50);
        let play = |at: DateTime<Utc>| Play {
            notice_id: notice,
            played_at: at,
            duration_seconds: 10,
        };
        let report = |plays, unknown| {
            scoped(
                T,
                PlayReportCommand::Report {
                    display_id: Uuid::from_u128(1),
                    plays,
                    unknown,
                    now,
                },
            )
        };
        TestFramework::<PlayReport>::with(())
            .given_no_previous_events()
            .when(report(vec![play(now + Duration::minutes(10))], vec![]))
            .then_expect_error(DomainError::invalid(
                "plays.0.playedAt",
                "lies in the future",
            ));
        TestFramework::<PlayReport>::with(())
            .given_no_previous_events()
            .when(report(vec![play(now)], vec![notice]))
            .then_expect_error(DomainError::invalid("plays.0.noticeId", "no such notice"));
        // Late (a week old) is fine.
        TestFramework::<PlayReport>::with(())
            .given_no_previous_events()
            .when(report(vec![play(now - Duration::days(7))], vec![]))
            .then_expect_events(vec![PlayReportEvent::PlaysReported {
                tenant_id: T,
                display_id: Uuid::from_u128(1),
                plays: vec![play(now - Duration::days(7))],
            }]);
        TestFramework::<PlayReport>::with(())
            .given(vec![PlayReportEvent::PlaysReported {
                tenant_id: T,
                display_id: Uuid::from_u128(1),
                plays: vec![],
            }])
            .when(report(vec![play(now)], vec![]))
            .then_expect_error(DomainError::Conflict("report already received".into()));
        let many = vec![play(now); MAX_PLAYS_PER_REPORT + 1];
        assert!(check_plays(&many, &[], now).is_err());
        assert_ne!(
            play_report_id(Uuid::from_u128(1), notice),
            play_report_id(Uuid::from_u128(2), notice)
        );
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
}
