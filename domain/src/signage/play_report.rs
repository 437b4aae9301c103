//! The PlayReport aggregate: one batch of plays a display reports (proof of
//! play). Its id is derived from the display and the display's own report
//! id, so a report sent twice lands on the same aggregate and is refused as
//! a duplicate: a retry never counts plays twice.

use chrono::{DateTime, Duration, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MAX_PLAYS_PER_REPORT, PLAY_CLOCK_SKEW_SECONDS};
use crate::{DomainError, Scoped};

/// One play of a notice on a display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Play {
    /// The notice shown.
    pub notice_id: Uuid,
    /// When it went on screen.
    pub played_at: DateTime<Utc>,
    /// How long it stayed (at most a day).
    pub duration_seconds: u32,
}

/// The id of a display's report: the display chooses `report_id`, so it is
/// namespaced by the display (two displays cannot collide, nor can one
/// display touch another's report).
pub fn play_report_id(display_id: Uuid, report_id: Uuid) -> Uuid {
    Uuid::new_v5(&display_id, report_id.as_bytes())
}

/// What may be asked of a play report.
#[derive(Debug, Clone)]
pub enum PlayReportCommand {
    /// Records a batch of plays, checked by [`check_plays`].
    Report {
        /// The reporting display.
        display_id: Uuid,
        /// The plays.
        plays: Vec<Play>,
        /// The reported notice ids the tenant never had (looked up by the
        /// caller; deleted notices count as known, since a display offline
        /// for a while reports them late).
        unknown: Vec<Uuid>,
        /// The current time, for the clock-skew check.
        now: DateTime<Utc>,
    },
}

/// What happened to a play report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PlayReportEvent {
    /// The plays were recorded; the report's only event.
    PlaysReported {
        /// The display's tenant.
        tenant_id: Uuid,
        /// The reporting display.
        display_id: Uuid,
        /// The plays.
        plays: Vec<Play>,
    },
}
crate::domain_event!(PlayReportEvent, "1");

/// A batch of plays as reported once; the same report again is a duplicate.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct PlayReport {
    /// The reporting tenant; `None` until received.
    pub tenant_id: Option<Uuid>,
}

/// The rules for a batch of plays: at most [`MAX_PLAYS_PER_REPORT`], every
/// notice known, none later than `now` plus [`PLAY_CLOCK_SKEW_SECONDS`], none
/// longer than a day. Late plays are fine.
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

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    const T: Uuid = Uuid::from_u128(7);

    fn scoped<C>(tenant_id: Uuid, command: C) -> Scoped<C> {
        Scoped { tenant_id, command }
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
}
