//! Digital signage: displays and their groups, notices, categories,
//! playlists, schedules, emergency overrides, proof-of-play analytics and
//! what a display showed at any instant (`displayManifest(asOf:)`).
//!
//! Every id an input names is looked up in the caller's tenant first, so a
//! foreign id is `NOT_FOUND` exactly like one that does not exist.

use std::collections::BTreeSet;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday as ChronoWeekday};
use cqrs_es::Aggregate;
use domain::access::Action;
use domain::manifest::{Daypart, Manifest, PlaylistItem, ScheduleSpec, Source};
use domain::signage::{
    CategoryCommand, DisplayCommand, DisplayProfile, EmergencyCommand, GroupCommand, NoticeCommand,
    NoticeContent, PlaylistCommand, ScheduleCommand, Severity as DomainSeverity, SignageState,
    targets,
};
use domain::{DomainError, Scoped};
use projections::Repository;
use projections::from_micros;
use projections::signage::DisplayRow;
use projections::store::Committed;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::graphql::{correlation, parse_id, principal, state};
use crate::identity::auth::Principal;
use crate::state::AppState;

// ------------------------------------------------------------------ types

/// A paired display.
#[derive(SimpleObject)]
pub struct Display {
    pub id: ID,
    pub name: String,
    pub group_id: Option<ID>,
    pub tags: Vec<String>,
    pub location: Option<String>,
    pub time_zone: String,
    /// Connected to a Herald process (heartbeats within the last minute).
    pub online: bool,
    /// When it last turned online or offline (or was paired).
    pub status_changed_at: DateTime<Utc>,
    pub paired_at: DateTime<Utc>,
}

impl TryFrom<DisplayRow> for Display {
    type Error = ApiError;
    fn try_from(row: DisplayRow) -> ApiResult<Self> {
        let p = row.profile()?;
        Ok(Self {
            id: ID(row.id),
            name: p.name,
            group_id: p.group_id.map(|g| ID(g.to_string())),
            tags: p.tags,
            location: p.location,
            time_zone: p.time_zone.name().into(),
            online: row.online != 0,
            status_changed_at: from_micros(row.status_at),
            paired_at: from_micros(row.paired_at),
        })
    }
}

/// A group of displays; groups nest one level.
#[derive(SimpleObject)]
pub struct DisplayGroup {
    pub id: ID,
    pub name: String,
    pub parent_id: Option<ID>,
    /// Plays when no schedule matches a display of the group (or of its
    /// child groups without a default of their own).
    pub default_playlist_id: Option<ID>,
}

fn id(u: Uuid) -> ID {
    ID(u.to_string())
}

/// A signage notice.
#[derive(SimpleObject)]
pub struct Notice {
    pub id: ID,
    pub title: String,
    pub body: String,
    pub media_id: Option<ID>,
    pub category_id: Option<ID>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    pub priority: i32,
    pub duration_seconds: i32,
    pub created_at: DateTime<Utc>,
}

/// A notice category.
#[derive(SimpleObject)]
pub struct NoticeCategory {
    pub id: ID,
    pub name: String,
}

/// An entry of a playlist.
#[derive(SimpleObject)]
pub struct PlaylistEntry {
    pub notice_id: ID,
    pub duration_seconds: i32,
}

/// An ordered list of notices with their durations.
#[derive(SimpleObject)]
pub struct Playlist {
    pub id: ID,
    pub name: String,
    pub items: Vec<PlaylistEntry>,
}

/// Day of the week.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "chrono::Weekday")]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

/// Weekly hours, local time of each display.
#[derive(SimpleObject)]
pub struct DaypartOut {
    pub days: Vec<Weekday>,
    /// `HH:MM`.
    pub start: String,
    pub end: String,
}

/// A signage schedule.
#[derive(SimpleObject)]
pub struct SignageSchedule {
    pub id: ID,
    pub name: String,
    pub priority: i32,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub dayparts: Vec<DaypartOut>,
    pub display_ids: Vec<ID>,
    pub group_ids: Vec<ID>,
    pub playlist_id: ID,
}

impl From<&ScheduleSpec> for SignageSchedule {
    fn from(s: &ScheduleSpec) -> Self {
        Self {
            id: id(s.id),
            name: s.name.clone(),
            priority: s.priority,
            starts_on: s.starts_on,
            ends_on: s.ends_on,
            dayparts: s
                .dayparts
                .iter()
                .map(|d| DaypartOut {
                    days: d.days().into_iter().map(Into::into).collect(),
                    start: d.start().format("%H:%M").to_string(),
                    end: d.end().format("%H:%M").to_string(),
                })
                .collect(),
            display_ids: s.targets.displays.iter().copied().map(id).collect(),
            group_ids: s.targets.groups.iter().copied().map(id).collect(),
            playlist_id: id(s.playlist_id),
        }
    }
}

/// Severity of an emergency override.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "domain::signage::Severity")]
pub enum Severity {
    Info,
    Warning,
    High,
    Critical,
}

/// An active emergency override.
#[derive(SimpleObject)]
pub struct Emergency {
    pub id: ID,
    pub message: String,
    pub severity: String,
    /// Empty: every display.
    pub group_ids: Vec<ID>,
    pub media_id: Option<ID>,
    pub started_at: DateTime<Utc>,
}

impl From<&domain::manifest::ActiveEmergency> for Emergency {
    fn from(e: &domain::manifest::ActiveEmergency) -> Self {
        Self {
            id: id(e.id),
            message: e.message.clone(),
            severity: e.severity.clone(),
            group_ids: e.groups.iter().copied().map(id).collect(),
            media_id: e.media_id.map(id),
            started_at: e.started_at,
        }
    }
}

/// Where a manifest's content comes from.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
pub enum ManifestSource {
    Emergency,
    Schedule,
    GroupDefault,
    None,
}

/// A slide of a manifest.
#[derive(SimpleObject)]
pub struct Slide {
    pub notice_id: ID,
    pub title: String,
    pub body: String,
    pub media_id: Option<ID>,
    pub category: Option<String>,
    pub duration_seconds: i32,
}

/// What a display shows (or showed) at an instant.
#[derive(SimpleObject)]
pub struct DisplayManifest {
    pub display_id: ID,
    pub at: DateTime<Utc>,
    pub source: ManifestSource,
    /// The schedule, group or emergency the content comes from.
    pub source_id: Option<ID>,
    pub emergency: Option<Emergency>,
    pub slides: Vec<Slide>,
    pub next_change: Option<DateTime<Utc>>,
}

impl DisplayManifest {
    fn new(display: Uuid, at: DateTime<Utc>, m: Manifest) -> Self {
        let (source, source_id) = match m.source {
            Source::Emergency(i) => (ManifestSource::Emergency, Some(id(i))),
            Source::Schedule(i) => (ManifestSource::Schedule, Some(id(i))),
            Source::GroupDefault(i) => (ManifestSource::GroupDefault, Some(id(i))),
            Source::Nothing => (ManifestSource::None, None),
        };
        Self {
            display_id: id(display),
            at,
            source,
            source_id,
            emergency: m.emergency.as_ref().map(Into::into),
            slides: m
                .slides
                .into_iter()
                .map(|s| Slide {
                    notice_id: id(s.notice_id),
                    title: s.title,
                    body: s.body,
                    media_id: s.media_id.map(id),
                    category: s.category,
                    duration_seconds: s.duration_seconds as i32,
                })
                .collect(),
            next_change: m.next_change,
        }
    }
}

/// Plays of a notice on one display in one hour.
#[derive(SimpleObject)]
pub struct NoticePlays {
    pub display_id: ID,
    /// Start of the hour.
    pub hour: DateTime<Utc>,
    pub plays: i64,
    pub seconds: i64,
}

/// The id of something just removed.
#[derive(SimpleObject)]
pub struct Removed {
    pub id: ID,
}

// ----------------------------------------------------------------- inputs

#[derive(InputObject)]
pub struct PairDisplayInput {
    /// The code the display shows (case, spaces and dashes do not matter).
    pub code: String,
    pub name: String,
    pub group_id: Option<ID>,
    #[graphql(default)]
    pub tags: Vec<String>,
    pub location: Option<String>,
    /// IANA zone for the display's schedules; `UTC` when absent.
    pub time_zone: Option<String>,
}

#[derive(InputObject)]
pub struct CreateDisplayGroupInput {
    pub name: String,
    /// A top-level group (groups nest one level).
    pub parent_id: Option<ID>,
    pub default_playlist_id: Option<ID>,
}

#[derive(InputObject)]
pub struct NoticeInput {
    pub title: String,
    #[graphql(default)]
    pub body: String,
    pub media_id: Option<ID>,
    pub category_id: Option<ID>,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_to: Option<DateTime<Utc>>,
    #[graphql(default)]
    pub priority: i32,
    #[graphql(default = 10)]
    pub duration_seconds: i32,
}

#[derive(InputObject)]
pub struct PlaylistItemInput {
    pub notice_id: ID,
    pub duration_seconds: i32,
}

#[derive(InputObject)]
pub struct PlaylistInput {
    pub name: String,
    pub items: Vec<PlaylistItemInput>,
}

#[derive(InputObject)]
pub struct DaypartInput {
    pub days: Vec<Weekday>,
    /// Local `HH:MM`.
    pub start: String,
    /// Local `HH:MM`, after `start` (a slot across midnight is two dayparts).
    pub end: String,
}

#[derive(InputObject)]
pub struct SignageScheduleInput {
    pub name: String,
    #[graphql(default)]
    pub priority: i32,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub dayparts: Vec<DaypartInput>,
    #[graphql(default)]
    pub display_ids: Vec<ID>,
    #[graphql(default)]
    pub group_ids: Vec<ID>,
    pub playlist_id: ID,
}

#[derive(InputObject)]
pub struct StartEmergencyInput {
    pub message: String,
    pub severity: Severity,
    /// Groups to override; empty or absent: every display.
    #[graphql(default)]
    pub group_ids: Vec<ID>,
    pub media_id: Option<ID>,
}

// ---------------------------------------------------------------- helpers

fn time(raw: &str, field: &str) -> ApiResult<NaiveTime> {
    NaiveTime::parse_from_str(raw, "%H:%M")
        .map_err(|_| ApiError::invalid(field, "a local time as HH:MM"))
}

async fn content(ctx: &Context<'_>, p: &Principal) -> ApiResult<SignageState> {
    Ok(state(ctx).signage.state(p.tenant_id).await?)
}

fn check_group(s: &SignageState, group: Uuid) -> ApiResult<()> {
    s.groups
        .contains_key(&group)
        .then_some(())
        .ok_or(ApiError::NotFound("display group"))
}

fn check_playlist(s: &SignageState, playlist: Uuid) -> ApiResult<()> {
    s.playlists
        .contains_key(&playlist)
        .then_some(())
        .ok_or(ApiError::NotFound("playlist"))
}

async fn check_media(ctx: &Context<'_>, p: &Principal, media: Option<Uuid>) -> ApiResult<()> {
    if let Some(m) = media {
        state(ctx)
            .media_reads
            .get(p.tenant_id, m)
            .await?
            .ok_or(ApiError::NotFound("media asset"))?;
    }
    Ok(())
}

fn opt_id(raw: &Option<ID>, field: &str) -> ApiResult<Option<Uuid>> {
    raw.as_ref().map(|i| parse_id(i, field)).transpose()
}

async fn display_of(ctx: &Context<'_>, p: &Principal, display: Uuid) -> ApiResult<Display> {
    state(ctx)
        .signage
        .display(p.tenant_id, display)
        .await?
        .ok_or(ApiError::NotFound("display"))?
        .try_into()
}

/// A signage aggregate a command goes to: one the caller just named, or one
/// that exists.
#[derive(Clone, Copy)]
enum Target {
    New(Uuid),
    Existing(Uuid),
}

/// Runs `command` in the caller's tenant and waits until the read models
/// show it.
async fn execute<A, C>(
    ctx: &Context<'_>,
    p: &Principal,
    repo: impl FnOnce(&AppState) -> &Repository<A>,
    target: Target,
    command: C,
) -> ApiResult<Committed>
where
    A: Aggregate<Command = Scoped<C>, Services = (), Error = DomainError>,
    C: Clone,
{
    let st = state(ctx);
    let meta = st.metadata(p, correlation(ctx));
    let command = Scoped {
        tenant_id: p.tenant_id,
        command,
    };
    match target {
        Target::New(id) => st.create(repo(st), id, command, &meta).await,
        Target::Existing(id) => st.run(repo(st), id, command, &meta).await,
    }
}

async fn run_display(
    ctx: &Context<'_>,
    p: &Principal,
    display: Uuid,
    command: DisplayCommand,
) -> ApiResult<()> {
    execute(
        ctx,
        p,
        |st| &st.displays,
        Target::Existing(display),
        command,
    )
    .await?;
    Ok(())
}

fn notice_out(id_: Uuid, s: &SignageState) -> ApiResult<Notice> {
    let n = s
        .notices
        .get(&id_)
        .filter(|n| !n.deleted)
        .ok_or(ApiError::NotFound("notice"))?;
    let c = &n.content;
    Ok(Notice {
        id: id(id_),
        title: c.title.clone(),
        body: c.body.clone(),
        media_id: c.media_id.map(id),
        category_id: c.category_id.map(id),
        valid_from: c.valid_from,
        valid_to: c.valid_to,
        priority: c.priority,
        duration_seconds: c.duration_seconds as i32,
        created_at: n.created_at,
    })
}

fn playlist_out(id_: Uuid, s: &SignageState) -> ApiResult<Playlist> {
    let (name, items) = s
        .playlists
        .get(&id_)
        .ok_or(ApiError::NotFound("playlist"))?;
    Ok(Playlist {
        id: id(id_),
        name: name.clone(),
        items: items
            .iter()
            .map(|i| PlaylistEntry {
                notice_id: id(i.notice_id),
                duration_seconds: i.duration_seconds as i32,
            })
            .collect(),
    })
}

fn group_out(id_: Uuid, s: &SignageState) -> ApiResult<DisplayGroup> {
    let g = s
        .groups
        .get(&id_)
        .ok_or(ApiError::NotFound("display group"))?;
    Ok(DisplayGroup {
        id: id(id_),
        name: g.name.clone(),
        parent_id: g.parent_id.map(id),
        default_playlist_id: g.default_playlist_id.map(id),
    })
}

/// Validates a notice input in the tenant.
async fn notice_content(
    ctx: &Context<'_>,
    p: &Principal,
    input: NoticeInput,
) -> ApiResult<NoticeContent> {
    let media = opt_id(&input.media_id, "mediaId")?;
    let category = opt_id(&input.category_id, "categoryId")?;
    let parsed = NoticeContent::parse(
        &input.title,
        &input.body,
        media,
        category,
        input.valid_from,
        input.valid_to,
        input.priority,
        input.duration_seconds,
    )?;
    check_media(ctx, p, media).await?;
    if let Some(c) = category
        && !content(ctx, p).await?.categories.contains_key(&c)
    {
        return Err(ApiError::NotFound("category"));
    }
    Ok(parsed)
}

/// Validates playlist items in the tenant.
fn playlist_items(s: &SignageState, items: Vec<PlaylistItemInput>) -> ApiResult<Vec<PlaylistItem>> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let notice = parse_id(&item.notice_id, &format!("items.{i}.noticeId"))?;
            if s.notices.get(&notice).is_none_or(|n| n.deleted) {
                return Err(ApiError::NotFound("notice"));
            }
            if !(1..=3600).contains(&item.duration_seconds) {
                return Err(ApiError::invalid(
                    &format!("items.{i}.durationSeconds"),
                    "between 1 and 3600 seconds",
                ));
            }
            Ok(PlaylistItem {
                notice_id: notice,
                duration_seconds: item.duration_seconds as u32,
            })
        })
        .collect()
}

// ---------------------------------------------------------------- queries

#[derive(Default)]
pub struct SignageQuery;

#[Object]
impl SignageQuery {
    /// The organisation's paired displays, by name.
    async fn displays(&self, ctx: &Context<'_>) -> ApiResult<Vec<Display>> {
        let p = principal(ctx, Action::Read)?;
        state(ctx)
            .signage
            .displays(p.tenant_id)
            .await?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }

    /// One display.
    async fn display(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Display> {
        let p = principal(ctx, Action::Read)?;
        display_of(ctx, p, parse_id(&id, "id")?).await
    }

    /// Display groups, by name.
    async fn display_groups(&self, ctx: &Context<'_>) -> ApiResult<Vec<DisplayGroup>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<DisplayGroup> = s
            .groups
            .keys()
            .map(|g| group_out(*g, &s))
            .collect::<ApiResult<_>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Notices (deleted ones are gone), newest first.
    async fn notices(&self, ctx: &Context<'_>) -> ApiResult<Vec<Notice>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<Notice> = s
            .notices
            .iter()
            .filter(|(_, n)| !n.deleted)
            .map(|(i, _)| notice_out(*i, &s))
            .collect::<ApiResult<_>>()?;
        out.sort_by_key(|a| std::cmp::Reverse(a.created_at));
        Ok(out)
    }

    /// Notice categories, by name.
    async fn notice_categories(&self, ctx: &Context<'_>) -> ApiResult<Vec<NoticeCategory>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<NoticeCategory> = s
            .categories
            .iter()
            .map(|(i, n)| NoticeCategory {
                id: id(*i),
                name: n.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Playlists, by name.
    async fn playlists(&self, ctx: &Context<'_>) -> ApiResult<Vec<Playlist>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<Playlist> = s
            .playlists
            .keys()
            .map(|i| playlist_out(*i, &s))
            .collect::<ApiResult<_>>()?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Signage schedules, highest priority first.
    async fn signage_schedules(&self, ctx: &Context<'_>) -> ApiResult<Vec<SignageSchedule>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<&ScheduleSpec> = s.schedules.values().collect();
        out.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
        Ok(out.into_iter().map(Into::into).collect())
    }

    /// Active emergency overrides, newest first.
    async fn emergencies(&self, ctx: &Context<'_>) -> ApiResult<Vec<Emergency>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<&domain::manifest::ActiveEmergency> = s.emergencies.values().collect();
        out.sort_by_key(|a| std::cmp::Reverse(a.started_at));
        Ok(out.into_iter().map(Into::into).collect())
    }

    /// What a display shows now, or showed at `asOf` (from the event log:
    /// the content, groups and emergencies as they were then).
    async fn display_manifest(
        &self,
        ctx: &Context<'_>,
        display_id: ID,
        as_of: Option<DateTime<Utc>>,
    ) -> ApiResult<DisplayManifest> {
        let p = principal(ctx, Action::Read)?;
        let display = parse_id(&display_id, "displayId")?;
        let signage = &state(ctx).signage;
        let found = match as_of {
            Some(at) => {
                if at > Utc::now() {
                    return Err(ApiError::invalid("asOf", "lies in the future"));
                }
                signage.manifest_as_of(p.tenant_id, display, at).await?
            }
            None => signage.manifest(p.tenant_id, display, Utc::now()).await?,
        };
        let at = as_of.unwrap_or_else(Utc::now);
        let (_, manifest) = found.ok_or(ApiError::NotFound("display"))?;
        Ok(DisplayManifest::new(display, at, manifest))
    }

    /// Plays of a notice per display and hour in `[from, to)` (kept after
    /// the notice is deleted).
    async fn notice_plays(
        &self,
        ctx: &Context<'_>,
        notice_id: ID,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> ApiResult<Vec<NoticePlays>> {
        let p = principal(ctx, Action::Read)?;
        let notice = parse_id(&notice_id, "noticeId")?;
        if !content(ctx, p).await?.notices.contains_key(&notice) {
            return Err(ApiError::NotFound("notice"));
        }
        if to <= from {
            return Err(ApiError::invalid("to", "must be after from"));
        }
        Ok(state(ctx)
            .signage
            .notice_plays(p.tenant_id, notice, from, to)
            .await?
            .into_iter()
            .map(|r| NoticePlays {
                display_id: ID(r.display_id),
                hour: from_micros(r.hour),
                plays: r.plays,
                seconds: r.seconds,
            })
            .collect())
    }
}

// -------------------------------------------------------------- mutations

#[derive(Default)]
pub struct SignageMutation;

#[Object]
impl SignageMutation {
    /// Binds the display showing `code` to this organisation.
    async fn pair_display(&self, ctx: &Context<'_>, input: PairDisplayInput) -> ApiResult<Display> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let st = state(ctx);
        let group = opt_id(&input.group_id, "groupId")?;
        let profile = DisplayProfile::parse(
            &input.name,
            group,
            input.tags,
            input.location,
            input.time_zone.as_deref(),
        )?;
        if let Some(g) = group {
            check_group(&content(ctx, p).await?, g)?;
        }
        let code = crate::signage::routes::normalize_code(&input.code);
        let device = st
            .signage
            .pending_device(&code)
            .await?
            .ok_or(ApiError::NotFound("pairing code"))?;
        let paired = execute(
            ctx,
            p,
            |st| &st.displays,
            Target::New(device),
            DisplayCommand::Pair(profile),
        )
        .await;
        if let Err(e) = paired {
            // A pairing whose device row was not updated (a crash in
            // between) is finished by repeating it in the same tenant.
            let display = st.load(&st.displays, device).await?;
            if display.tenant_id != Some(p.tenant_id) || display.unpaired {
                return Err(e);
            }
        }
        st.signage.mark_paired(device, p.tenant_id).await?;
        display_of(ctx, p, device).await
    }

    /// Unbinds a display: its secret stops working; it registers again.
    async fn unpair_display(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Removed> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let display = parse_id(&id, "id")?;
        run_display(ctx, p, display, DisplayCommand::Unpair).await?;
        state(ctx).signage.forget_device(display).await?;
        Ok(Removed { id })
    }

    async fn rename_display(&self, ctx: &Context<'_>, id: ID, name: String) -> ApiResult<Display> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let display = parse_id(&id, "id")?;
        run_display(ctx, p, display, DisplayCommand::Rename { name }).await?;
        display_of(ctx, p, display).await
    }

    /// Puts a display into a group (or none).
    async fn move_display(
        &self,
        ctx: &Context<'_>,
        id: ID,
        group_id: Option<ID>,
    ) -> ApiResult<Display> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let display = parse_id(&id, "id")?;
        let group = opt_id(&group_id, "groupId")?;
        if let Some(g) = group {
            check_group(&content(ctx, p).await?, g)?;
        }
        run_display(ctx, p, display, DisplayCommand::Move { group_id: group }).await?;
        display_of(ctx, p, display).await
    }

    /// Tells a connected display to reload its page.
    async fn reload_display(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Display> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let display = parse_id(&id, "id")?;
        run_display(ctx, p, display, DisplayCommand::Reload).await?;
        display_of(ctx, p, display).await
    }

    async fn create_display_group(
        &self,
        ctx: &Context<'_>,
        input: CreateDisplayGroupInput,
    ) -> ApiResult<DisplayGroup> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let s = content(ctx, p).await?;
        let parent = opt_id(&input.parent_id, "parentId")?;
        let playlist = opt_id(&input.default_playlist_id, "defaultPlaylistId")?;
        if let Some(g) = parent {
            check_group(&s, g)?;
            if !s.top_level_group(g) {
                return Err(ApiError::invalid(
                    "parentId",
                    "groups nest one level: the parent must be a top-level group",
                ));
            }
        }
        if let Some(pl) = playlist {
            check_playlist(&s, pl)?;
        }
        let group = Uuid::now_v7();
        execute(
            ctx,
            p,
            |st| &st.display_groups,
            Target::New(group),
            GroupCommand::Create {
                name: input.name,
                parent_id: parent,
                default_playlist_id: playlist,
            },
        )
        .await?;
        group_out(group, &content(ctx, p).await?)
    }

    /// Sets (or with null removes) a group's default playlist.
    async fn set_group_default_playlist(
        &self,
        ctx: &Context<'_>,
        id: ID,
        playlist_id: Option<ID>,
    ) -> ApiResult<DisplayGroup> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let group = parse_id(&id, "id")?;
        let playlist = opt_id(&playlist_id, "playlistId")?;
        if let Some(pl) = playlist {
            check_playlist(&content(ctx, p).await?, pl)?;
        }
        execute(
            ctx,
            p,
            |st| &st.display_groups,
            Target::Existing(group),
            GroupCommand::SetDefaultPlaylist {
                playlist_id: playlist,
            },
        )
        .await?;
        group_out(group, &content(ctx, p).await?)
    }

    async fn create_notice_category(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> ApiResult<NoticeCategory> {
        let p = principal(ctx, Action::ManageSignage)?;
        let category = Uuid::now_v7();
        execute(
            ctx,
            p,
            |st| &st.categories,
            Target::New(category),
            CategoryCommand::Create { name },
        )
        .await?;
        let s = content(ctx, p).await?;
        Ok(NoticeCategory {
            id: id(category),
            name: s.categories.get(&category).cloned().unwrap_or_default(),
        })
    }

    async fn create_notice(&self, ctx: &Context<'_>, input: NoticeInput) -> ApiResult<Notice> {
        let p = principal(ctx, Action::ManageSignage)?;
        let content_ = notice_content(ctx, p, input).await?;
        let notice = Uuid::now_v7();
        execute(
            ctx,
            p,
            |st| &st.notices,
            Target::New(notice),
            NoticeCommand::Create(content_),
        )
        .await?;
        notice_out(notice, &content(ctx, p).await?)
    }

    async fn update_notice(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: NoticeInput,
    ) -> ApiResult<Notice> {
        let p = principal(ctx, Action::ManageSignage)?;
        let notice = parse_id(&id, "id")?;
        let content_ = notice_content(ctx, p, input).await?;
        execute(
            ctx,
            p,
            |st| &st.notices,
            Target::Existing(notice),
            NoticeCommand::Update(content_),
        )
        .await?;
        notice_out(notice, &content(ctx, p).await?)
    }

    /// Deletes a notice: it leaves every display at once; its plays stay.
    async fn delete_notice(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Removed> {
        let p = principal(ctx, Action::ManageSignage)?;
        let notice = parse_id(&id, "id")?;
        execute(
            ctx,
            p,
            |st| &st.notices,
            Target::Existing(notice),
            NoticeCommand::Delete,
        )
        .await?;
        Ok(Removed { id })
    }

    async fn create_playlist(
        &self,
        ctx: &Context<'_>,
        input: PlaylistInput,
    ) -> ApiResult<Playlist> {
        let p = principal(ctx, Action::ManageSignage)?;
        let items = playlist_items(&content(ctx, p).await?, input.items)?;
        let playlist = Uuid::now_v7();
        execute(
            ctx,
            p,
            |st| &st.playlists,
            Target::New(playlist),
            PlaylistCommand::Create {
                name: input.name,
                items,
            },
        )
        .await?;
        playlist_out(playlist, &content(ctx, p).await?)
    }

    async fn update_playlist(
        &self,
        ctx: &Context<'_>,
        id: ID,
        input: PlaylistInput,
    ) -> ApiResult<Playlist> {
        let p = principal(ctx, Action::ManageSignage)?;
        let playlist = parse_id(&id, "id")?;
        let items = playlist_items(&content(ctx, p).await?, input.items)?;
        execute(
            ctx,
            p,
            |st| &st.playlists,
            Target::Existing(playlist),
            PlaylistCommand::Update {
                name: input.name,
                items,
            },
        )
        .await?;
        playlist_out(playlist, &content(ctx, p).await?)
    }

    /// A playlist on weekly dayparts of a date range, for some displays or
    /// groups. An overlap with a schedule of the same priority is refused
    /// (`CONFLICT`, naming it).
    async fn create_signage_schedule(
        &self,
        ctx: &Context<'_>,
        input: SignageScheduleInput,
    ) -> ApiResult<SignageSchedule> {
        let p = principal(ctx, Action::ManageSignage)?;
        let s = content(ctx, p).await?;
        let playlist = parse_id(&input.playlist_id, "playlistId")?;
        check_playlist(&s, playlist)?;
        let mut displays = Vec::new();
        for (i, d) in input.display_ids.iter().enumerate() {
            let d = parse_id(d, &format!("displayIds.{i}"))?;
            display_of(ctx, p, d).await?;
            displays.push(d);
        }
        let mut groups = Vec::new();
        for (i, g) in input.group_ids.iter().enumerate() {
            let g = parse_id(g, &format!("groupIds.{i}"))?;
            check_group(&s, g)?;
            groups.push(g);
        }
        let dayparts = input
            .dayparts
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let field = format!("dayparts.{i}");
                let days: Vec<ChronoWeekday> = d.days.iter().map(|w| (*w).into()).collect();
                Ok(Daypart::parse(
                    &field,
                    &days,
                    time(&d.start, &format!("{field}.start"))?,
                    time(&d.end, &format!("{field}.end"))?,
                )?)
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let schedule_id = Uuid::now_v7();
        let schedule = ScheduleSpec {
            id: schedule_id,
            name: input.name.trim().to_string(),
            priority: input.priority,
            starts_on: input.starts_on,
            ends_on: input.ends_on,
            dayparts,
            targets: targets(displays, groups),
            playlist_id: playlist,
        };
        execute(
            ctx,
            p,
            |st| &st.signage_schedules,
            Target::New(schedule_id),
            ScheduleCommand::Create {
                existing: s.other_schedules(schedule_id),
                schedule,
            },
        )
        .await?;
        let s = content(ctx, p).await?;
        Ok(s.schedules
            .get(&schedule_id)
            .ok_or(ApiError::NotFound("schedule"))?
            .into())
    }

    async fn delete_signage_schedule(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Removed> {
        let p = principal(ctx, Action::ManageSignage)?;
        let schedule = parse_id(&id, "id")?;
        execute(
            ctx,
            p,
            |st| &st.signage_schedules,
            Target::Existing(schedule),
            ScheduleCommand::Delete,
        )
        .await?;
        Ok(Removed { id })
    }

    /// Overrides every display (or the displays of some groups) with a
    /// message until cleared; pushed to connected displays at once.
    async fn start_emergency(
        &self,
        ctx: &Context<'_>,
        input: StartEmergencyInput,
    ) -> ApiResult<Emergency> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let s = content(ctx, p).await?;
        let mut groups = BTreeSet::new();
        for (i, g) in input.group_ids.iter().enumerate() {
            let g = parse_id(g, &format!("groupIds.{i}"))?;
            check_group(&s, g)?;
            groups.insert(g);
        }
        let media = opt_id(&input.media_id, "mediaId")?;
        check_media(ctx, p, media).await?;
        let emergency = Uuid::now_v7();
        execute(
            ctx,
            p,
            |st| &st.emergencies,
            Target::New(emergency),
            EmergencyCommand::Start {
                message: input.message,
                severity: DomainSeverity::from(input.severity),
                groups,
                media_id: media,
            },
        )
        .await?;
        let s = content(ctx, p).await?;
        Ok(s.emergencies
            .get(&emergency)
            .ok_or(ApiError::NotFound("emergency"))?
            .into())
    }

    async fn clear_emergency(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Removed> {
        let p = principal(ctx, Action::ManageDisplays)?;
        let emergency = parse_id(&id, "id")?;
        execute(
            ctx,
            p,
            |st| &st.emergencies,
            Target::Existing(emergency),
            EmergencyCommand::Clear,
        )
        .await?;
        Ok(Removed { id })
    }
}
