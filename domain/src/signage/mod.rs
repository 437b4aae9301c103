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
//!
//! Layout: one submodule per aggregate (`display`, `group`, `category`,
//! `notice`, `playlist`, `schedule`, `emergency`, `play_report`), each with its
//! commands, events, rules and given/when/then tests, and `state` for the
//! fold. `rules` holds what they share (the text checks, [`Severity`], the
//! limits); this module re-exports every public item, so `domain::signage::X` names
//! them all.

// Every public item here carries a `///` line; keep it that way.
#![warn(missing_docs)]

/// The scaffolding shared by the content aggregates: created once by a
/// tenant, then changed or deleted only by that tenant. Defined before the
/// submodules so they can use it.
macro_rules! tenant_owned {
    ($agg:ident, $name:literal) => {
        impl $agg {
            #[allow(dead_code)] // not every one changes after creation
            fn owned_by(&self, tenant: uuid::Uuid) -> Result<(), $crate::DomainError> {
                if self.tenant_id == Some(tenant) && !self.deleted {
                    Ok(())
                } else {
                    Err($crate::DomainError::NotFound($name))
                }
            }
            fn fresh(&self) -> Result<(), $crate::DomainError> {
                if self.tenant_id.is_some() {
                    Err($crate::DomainError::Conflict(
                        concat!($name, " already exists").into(),
                    ))
                } else {
                    Ok(())
                }
            }
        }
    };
}

pub mod category;
pub mod display;
pub mod emergency;
pub mod group;
pub mod notice;
pub mod play_report;
pub mod playlist;
mod rules;
pub mod schedule;
pub mod state;

pub use category::{CategoryCommand, CategoryEvent, NoticeCategory};
pub use display::{Display, DisplayCommand, DisplayEvent, DisplayProfile};
pub use emergency::{Emergency, EmergencyCommand, EmergencyEvent};
pub use group::{DisplayGroup, GroupCommand, GroupEvent};
pub use notice::{Notice, NoticeCommand, NoticeContent, NoticeEvent};
pub use play_report::{
    Play, PlayReport, PlayReportCommand, PlayReportEvent, check_plays, play_report_id,
};
pub use playlist::{Playlist, PlaylistCommand, PlaylistEvent, parse_playlist};
pub use rules::{
    MAX_DAYPARTS, MAX_PLAYLIST_ITEMS, MAX_PLAYS_PER_REPORT, MAX_TAGS, MAX_TARGETS,
    PLAY_CLOCK_SKEW_SECONDS, Severity, bounded_text, required_name, required_text,
};
pub use schedule::{ScheduleCommand, ScheduleEvent, SignageSchedule, check_schedule, targets};
pub use state::{ContentEvent, GroupInfo, NoticeInfo, SignageState};

/// Given/when/then for the signage aggregates, over cqrs-es's
/// `TestFramework`: `given::<Display>([paired()]).when(TENANT, command)`
/// `.then([event])` or `.then_err(error)`. Every command is sent on behalf
/// of a tenant, so `when` takes it first.
#[cfg(test)]
pub(crate) mod testing {
    use cqrs_es::Aggregate;
    use cqrs_es::test::{AggregateResultValidator, AggregateTestExecutor, TestFramework};
    use uuid::Uuid;

    use crate::{DomainError, Scoped};

    /// The tenant the tests act for.
    pub(crate) const TENANT: Uuid = Uuid::from_u128(7);
    /// Another tenant, which must see nothing of [`TENANT`]'s aggregates.
    pub(crate) const OTHER_TENANT: Uuid = Uuid::from_u128(8);

    /// The aggregate's history before the command.
    pub(crate) fn given<A: Aggregate<Services = ()>>(
        events: impl IntoIterator<Item = A::Event>,
    ) -> Given<A> {
        Given(TestFramework::<A>::with(()).given(events.into_iter().collect()))
    }

    /// A history, waiting for its command.
    pub(crate) struct Given<A: Aggregate>(AggregateTestExecutor<A>);

    impl<A: Aggregate> Given<A> {
        /// Handles `command` on behalf of `tenant_id`.
        pub(crate) fn when<C>(self, tenant_id: Uuid, command: C) -> Then<A>
        where
            A: Aggregate<Command = Scoped<C>>,
        {
            Then(self.0.when(Scoped { tenant_id, command }))
        }
    }

    /// The command's outcome, to be checked.
    pub(crate) struct Then<A: Aggregate>(AggregateResultValidator<A>);

    impl<A: Aggregate<Error = DomainError>> Then<A> {
        /// The command succeeded and recorded exactly `events` (none: `[]`).
        pub(crate) fn then(self, events: impl IntoIterator<Item = A::Event>) {
            self.0.then_expect_events(events.into_iter().collect());
        }

        /// The command was refused with `error`.
        pub(crate) fn then_err(self, error: DomainError) {
            self.0.then_expect_error(error);
        }
    }

    /// Pins an event as it is stored: `event` serializes to `json` (whose
    /// outer key, or whole string for a unit variant, is its event type) and
    /// `json` loads back as `event`. Changing either would orphan the events
    /// already in the log.
    pub(crate) fn assert_stored<E: cqrs_es::DomainEvent>(event: E, json: serde_json::Value) {
        let name = event.event_type();
        assert_eq!(serde_json::to_value(&event).unwrap(), json, "{name} stores");
        assert_eq!(
            serde_json::from_value::<E>(json).unwrap(),
            event,
            "{name} loads"
        );
    }
}
