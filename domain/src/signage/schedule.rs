//! The SignageSchedule aggregate: a playlist on some dayparts of a date
//! range for some displays or groups. Created whole (there is no update) and
//! refused when it overlaps another schedule of the same priority, since
//! which would win is undefined; deleting it is terminal.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::required_name;
use crate::manifest::{ScheduleSpec, Targets};
use crate::{DomainError, Scoped};

/// What may be asked of a schedule.
#[derive(Debug, Clone)]
pub enum ScheduleCommand {
    /// `existing` are the tenant's other schedules (from the read model):
    /// an overlap with equal priority is refused, naming the other one.
    Create {
        /// The schedule, checked by [`check_schedule`].
        schedule: ScheduleSpec,
        /// The tenant's other schedules.
        existing: Vec<ScheduleSpec>,
    },
    /// Deletes it (terminal).
    Delete,
}

/// Validates a schedule's shape (dates and targets; dayparts are parsed by
/// [`crate::manifest::Daypart::parse`]).
pub fn check_schedule(s: &ScheduleSpec) -> Result<(), DomainError> {
    required_name(&s.name, "name", 100)?;
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

/// Targets from id lists (emptiness is refused by [`check_schedule`]).
pub fn targets(displays: Vec<Uuid>, groups: Vec<Uuid>) -> Targets {
    Targets {
        displays: displays.into_iter().collect(),
        groups: groups.into_iter().collect(),
    }
}

/// What happened to a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ScheduleEvent {
    /// The schedule was created; its first event.
    SignageScheduleCreated {
        /// The tenant it belongs to.
        tenant_id: Uuid,
        /// The schedule.
        schedule: ScheduleSpec,
    },
    /// It was deleted; no command reaches it any more.
    SignageScheduleDeleted,
}
crate::domain_event!(ScheduleEvent, "1");

/// A schedule, as its decisions need it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct SignageSchedule {
    /// The owning tenant; `None` until created.
    pub tenant_id: Option<Uuid>,
    /// Deleted (terminal).
    pub deleted: bool,
}
tenant_owned!(SignageSchedule, "schedule");

impl SignageSchedule {
    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<ScheduleCommand>,
    ) -> Result<Vec<ScheduleEvent>, DomainError> {
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
        Ok(vec![event])
    }
}

impl Aggregate for SignageSchedule {
    const TYPE: &'static str = "SignageSchedule";
    type Command = Scoped<ScheduleCommand>;
    type Event = ScheduleEvent;
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

    fn apply(&mut self, event: ScheduleEvent) {
        match event {
            ScheduleEvent::SignageScheduleCreated { tenant_id, .. } => {
                self.tenant_id = Some(tenant_id)
            }
            ScheduleEvent::SignageScheduleDeleted => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, NaiveTime, Weekday};
    use serde_json::json;

    use super::*;
    use crate::manifest::Daypart;
    use crate::signage::testing::{OTHER_TENANT, TENANT, assert_stored, given};

    const DISPLAY: Uuid = Uuid::from_u128(80);
    const GROUP: Uuid = Uuid::from_u128(81);
    const PLAYLIST: Uuid = Uuid::from_u128(82);

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 1, d).unwrap()
    }

    fn hour(h: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, 0, 0).unwrap()
    }

    fn mornings() -> Daypart {
        Daypart::parse(
            "dayparts.0",
            &[Weekday::Mon, Weekday::Tue],
            hour(8),
            hour(12),
        )
        .unwrap()
    }

    /// "Mornings": Monday and Tuesday 08:00 to 12:00 in January 2027, on
    /// one display, priority 10.
    fn spec(id: u128) -> ScheduleSpec {
        ScheduleSpec {
            id: Uuid::from_u128(id),
            name: "Mornings".into(),
            priority: 10,
            starts_on: day(1),
            ends_on: day(31),
            dayparts: vec![mornings()],
            targets: targets(vec![DISPLAY], vec![]),
            playlist_id: PLAYLIST,
        }
    }

    fn create(schedule: ScheduleSpec, existing: Vec<ScheduleSpec>) -> ScheduleCommand {
        ScheduleCommand::Create { schedule, existing }
    }

    fn created() -> ScheduleEvent {
        ScheduleEvent::SignageScheduleCreated {
            tenant_id: TENANT,
            schedule: spec(1),
        }
    }

    #[test]
    fn is_stored_as_aggregate_type_signage_schedule() {
        assert_eq!(SignageSchedule::TYPE, "SignageSchedule");
    }

    #[test]
    fn events_keep_their_stored_shape() {
        assert_stored(
            created(),
            json!({"SignageScheduleCreated": {
                "tenant_id": TENANT,
                "schedule": {
                    "id": Uuid::from_u128(1),
                    "name": "Mornings",
                    "priority": 10,
                    "starts_on": "2027-01-01",
                    "ends_on": "2027-01-31",
                    "dayparts": [{"days": [0, 1], "start": "08:00:00", "end": "12:00:00"}],
                    "targets": {"displays": [DISPLAY], "groups": []},
                    "playlist_id": PLAYLIST,
                },
            }}),
        );
        assert_stored(
            ScheduleEvent::SignageScheduleDeleted,
            json!("SignageScheduleDeleted"),
        );
    }

    #[test]
    fn create_records_the_schedule() {
        given::<SignageSchedule>([])
            .when(TENANT, create(spec(1), vec![]))
            .then([created()]);
    }

    #[test]
    fn an_existing_schedule_cannot_be_created_again_by_any_tenant() {
        for tenant in [TENANT, OTHER_TENANT] {
            given::<SignageSchedule>([created()])
                .when(tenant, create(spec(1), vec![]))
                .then_err(DomainError::Conflict("schedule already exists".into()));
        }
    }

    #[test]
    fn create_refuses_a_bad_name_reversed_dates_no_dayparts_no_targets_or_bad_priority() {
        let refused = |change: fn(&mut ScheduleSpec), error: DomainError| {
            let mut s = spec(1);
            change(&mut s);
            given::<SignageSchedule>([])
                .when(TENANT, create(s, vec![]))
                .then_err(error);
        };
        refused(
            |s| s.name = " ".into(),
            DomainError::invalid("name", "must not be empty"),
        );
        refused(
            |s| s.name = "n".repeat(101),
            DomainError::invalid("name", "101 characters; at most 100"),
        );
        refused(
            |s| s.ends_on = day(1).pred_opt().unwrap(),
            DomainError::invalid("endsOn", "ends before it starts"),
        );
        refused(
            |s| s.dayparts.clear(),
            DomainError::invalid("dayparts", "name at least one daypart"),
        );
        refused(
            |s| s.targets = targets(vec![], vec![]),
            DomainError::invalid("targets", "name at least one display or group"),
        );
        for priority in [-1, 101] {
            let mut s = spec(1);
            s.priority = priority;
            given::<SignageSchedule>([])
                .when(TENANT, create(s, vec![]))
                .then_err(DomainError::invalid("priority", "between 0 and 100"));
        }
    }

    #[test]
    fn a_single_day_for_groups_only_at_the_priority_bounds_is_fine() {
        for priority in [0, 100] {
            let mut s = spec(1);
            s.ends_on = s.starts_on;
            s.targets = targets(vec![], vec![GROUP]);
            s.priority = priority;
            assert_eq!(check_schedule(&s), Ok(()));
        }
    }

    #[test]
    fn create_refuses_an_overlap_with_the_same_priority_naming_it() {
        let other = spec(2);
        given::<SignageSchedule>([])
            .when(TENANT, create(spec(1), vec![other.clone()]))
            .then_err(DomainError::Conflict(format!(
                "overlaps schedule \"Mornings\" ({}) with the same priority 10",
                other.id
            )));
    }

    #[test]
    fn create_allows_what_does_not_collide() {
        let mut higher = spec(2);
        higher.priority = 11;
        let mut february = spec(3);
        (february.starts_on, february.ends_on) = (
            NaiveDate::from_ymd_opt(2027, 2, 1).unwrap(),
            NaiveDate::from_ymd_opt(2027, 2, 28).unwrap(),
        );
        let mut afternoons = spec(4);
        afternoons.dayparts =
            vec![Daypart::parse("dayparts.0", &[Weekday::Mon], hour(12), hour(17)).unwrap()];
        let mut elsewhere = spec(5);
        elsewhere.targets = targets(vec![Uuid::from_u128(99)], vec![GROUP]);
        // Itself (as the read model may already list it) is no conflict.
        let itself = spec(1);
        given::<SignageSchedule>([])
            .when(
                TENANT,
                create(
                    spec(1),
                    vec![higher, february, afternoons, elsewhere, itself],
                ),
            )
            .then([created()]);
    }

    #[test]
    fn shape_is_checked_before_conflicts() {
        let mut s = spec(1);
        s.dayparts.clear();
        given::<SignageSchedule>([])
            .when(TENANT, create(s, vec![spec(2)]))
            .then_err(DomainError::invalid(
                "dayparts",
                "name at least one daypart",
            ));
    }

    #[test]
    fn delete_records_it_and_is_terminal() {
        given::<SignageSchedule>([created()])
            .when(TENANT, ScheduleCommand::Delete)
            .then([ScheduleEvent::SignageScheduleDeleted]);
        given::<SignageSchedule>([created(), ScheduleEvent::SignageScheduleDeleted])
            .when(TENANT, ScheduleCommand::Delete)
            .then_err(DomainError::NotFound("schedule"));
        given::<SignageSchedule>([created(), ScheduleEvent::SignageScheduleDeleted])
            .when(TENANT, create(spec(1), vec![]))
            .then_err(DomainError::Conflict("schedule already exists".into()));
    }

    #[test]
    fn another_tenant_or_a_missing_schedule_is_not_found() {
        given::<SignageSchedule>([created()])
            .when(OTHER_TENANT, ScheduleCommand::Delete)
            .then_err(DomainError::NotFound("schedule"));
        given::<SignageSchedule>([])
            .when(TENANT, ScheduleCommand::Delete)
            .then_err(DomainError::NotFound("schedule"));
    }

    #[test]
    fn targets_collects_ids_without_duplicates() {
        let t = targets(vec![DISPLAY, DISPLAY], vec![GROUP]);
        assert_eq!(t.displays.len(), 1);
        assert!(t.groups.contains(&GROUP));
    }
}
