//! Displays: the paired displays, pairing and unpairing, renaming, moving
//! and reloading one, and what a display shows now or showed at an instant
//! (`displayManifest`).

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use domain::access::Action;
use domain::manifest::{Manifest, Source};
use domain::signage::{DisplayCommand, DisplayProfile};
use projections::from_micros;
use projections::signage::DisplayRow;
use uuid::Uuid;

use super::emergency::Emergency;
use super::support::{Removed, Target, check_group, content, execute, id, opt_id};
use crate::error::{ApiError, ApiResult};
use crate::graphql::{parse_id, principal, state};
use crate::identity::auth::Principal;

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

/// The display `display` of the caller's tenant, or `NOT_FOUND`.
pub(super) async fn display_of(
    ctx: &Context<'_>,
    p: &Principal,
    display: Uuid,
) -> ApiResult<Display> {
    state(ctx)
        .signage
        .display(p.tenant_id, display)
        .await?
        .ok_or(ApiError::NotFound("display"))?
        .try_into()
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

/// The display queries.
#[derive(Default)]
pub struct DisplayQuery;

#[Object]
impl DisplayQuery {
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
}

/// The display mutations: pairing, unpairing, renaming, moving, reloading.
#[derive(Default)]
pub struct DisplayMutation;

#[Object]
impl DisplayMutation {
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
}
