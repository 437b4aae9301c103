//! The SignageSchedule aggregate: a playlist on some dayparts of a date
//! range for some displays or groups. Created whole (there is no update) and
//! refused when it overlaps another schedule of the same priority, since
//! which would win is undefined; deleting it is terminal.

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::required_text;
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

impl Aggregate for SignageSchedule {
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
