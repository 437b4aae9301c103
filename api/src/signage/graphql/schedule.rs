//! Signage schedules: listing them, creating one (a playlist on weekly
//! dayparts of a date range, for some displays or groups) and deleting one.

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{NaiveDate, NaiveTime, Weekday as ChronoWeekday};
use domain::access::Action;
use domain::manifest::{Daypart, ScheduleSpec};
use domain::signage::{ScheduleCommand, targets};

use super::support::{
    Removed, Target, check_group, check_playlist, content, execute, id, parse_ids,
};
use crate::error::{ApiError, ApiResult};
use crate::graphql::{parse_id, principal, state};

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

fn time(raw: &str, field: &str) -> ApiResult<NaiveTime> {
    NaiveTime::parse_from_str(raw, "%H:%M")
        .map_err(|_| ApiError::invalid(field, "a local time as HH:MM"))
}

/// The signage schedule queries.
#[derive(Default)]
pub struct ScheduleQuery;

#[Object]
impl ScheduleQuery {
    /// Signage schedules, highest priority first.
    async fn signage_schedules(&self, ctx: &Context<'_>) -> ApiResult<Vec<SignageSchedule>> {
        let p = principal(ctx, Action::Read)?;
        let s = content(ctx, p).await?;
        let mut out: Vec<&ScheduleSpec> = s.schedules.values().collect();
        out.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
        Ok(out.into_iter().map(Into::into).collect())
    }
}

/// The signage schedule mutations.
#[derive(Default)]
pub struct ScheduleMutation;

#[Object]
impl ScheduleMutation {
    /// A playlist on weekly dayparts of a date range, for some displays or
    /// groups. An overlap with a schedule of the same priority is refused
    /// (`CONFLICT`, naming it).
    async fn create_signage_schedule(
        &self,
        ctx: &Context<'_>,
        input: SignageScheduleInput,
    ) -> ApiResult<SignageSchedule> {
        // Cheapest first: the lists' lengths (the input guard), the ids'
        // and dayparts' shape, then one look-up per kind of id.
        let p = principal(ctx, Action::ManageSignage)?;
        let playlist = parse_id(&input.playlist_id, "playlistId")?;
        let displays = parse_ids(&input.display_ids, "displayIds")?;
        let groups = parse_ids(&input.group_ids, "groupIds")?;
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
        let s = content(ctx, p).await?;
        check_playlist(&s, playlist)?;
        groups.iter().try_for_each(|g| check_group(&s, *g))?;
        let unknown = state(ctx)
            .signage
            .unknown_displays(p.tenant_id, &displays)
            .await?;
        if !unknown.is_empty() {
            return Err(ApiError::NotFound("display"));
        }
        let schedule_id = crate::ids::new_id();
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
}
