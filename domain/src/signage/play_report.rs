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
use crate::bounds::check_instant;
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
/// notice known, none later than `now` plus [`PLAY_CLOCK_SKEW_SECONDS`] nor
/// outside the sane range ([`check_instant`]), none longer than a day. Late
/// plays are fine.
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
        check_instant(play.played_at, &format!("plays.{i}.playedAt"))?;
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

impl PlayReport {
    /// Decides a command without I/O; `Ok(events)` are the facts to append.
    pub fn decide(
        &self,
        Scoped { tenant_id, command }: Scoped<PlayReportCommand>,
    ) -> Result<Vec<PlayReportEvent>, DomainError> {
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
        Ok(vec![PlayReportEvent::PlaysReported {
            tenant_id,
            display_id,
            plays,
        }])
    }
}

impl Aggregate for PlayReport {
    const TYPE: &'static str = "PlayReport";
    type Command = Scoped<PlayReportCommand>;
    type Event = PlayReportEvent;
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

    fn apply(&mut self, event: PlayReportEvent) {
        let PlayReportEvent::PlaysReported { tenant_id, .. } = event;
        self.tenant_id = Some(tenant_id);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::signage::testing::{OTHER_TENANT, TENANT, assert_stored, given};

    const DISPLAY: Uuid = Uuid::from_u128(1);
    const NOTICE: Uuid = Uuid::from_u128(50);

    fn now() -> DateTime<Utc> {
        "2027-01-01T12:00:00Z".parse().unwrap()
    }

    fn play(played_at: DateTime<Utc>) -> Play {
        Play {
            notice_id: NOTICE,
            played_at,
            duration_seconds: 10,
        }
    }

    fn report(plays: Vec<Play>, unknown: Vec<Uuid>) -> PlayReportCommand {
        PlayReportCommand::Report {
            display_id: DISPLAY,
            plays,
            unknown,
            now: now(),
        }
    }

    fn reported(plays: Vec<Play>) -> PlayReportEvent {
        PlayReportEvent::PlaysReported {
            tenant_id: TENANT,
            display_id: DISPLAY,
            plays,
        }
    }

    #[test]
    fn is_stored_as_aggregate_type_play_report() {
        assert_eq!(PlayReport::TYPE, "PlayReport");
    }

    #[test]
    fn events_keep_their_stored_shape() {
        assert_stored(
            reported(vec![play(now())]),
            json!({"PlaysReported": {
                "tenant_id": TENANT,
                "display_id": DISPLAY,
                "plays": [{
                    "notice_id": NOTICE,
                    "played_at": "2027-01-01T12:00:00Z",
                    "duration_seconds": 10,
                }],
            }}),
        );
    }

    #[test]
    fn a_report_records_its_plays_late_ones_included() {
        let plays = vec![play(now() - Duration::days(7)), play(now())];
        given::<PlayReport>([])
            .when(TENANT, report(plays.clone(), vec![]))
            .then([reported(plays)]);
        given::<PlayReport>([])
            .when(TENANT, report(vec![], vec![]))
            .then([reported(vec![])]);
    }

    #[test]
    fn the_same_report_again_is_a_duplicate_whoever_sends_it() {
        // There is no tenant rule to apply: the id is the display's own
        // (see play_report_id), and a second report on it is refused.
        for tenant in [TENANT, OTHER_TENANT] {
            given::<PlayReport>([reported(vec![])])
                .when(tenant, report(vec![play(now())], vec![]))
                .then_err(DomainError::Conflict("report already received".into()));
        }
    }

    #[test]
    fn a_play_of_an_unknown_notice_is_refused_by_its_index() {
        let other = Play {
            notice_id: Uuid::from_u128(51),
            ..play(now())
        };
        given::<PlayReport>([])
            .when(TENANT, report(vec![other, play(now())], vec![NOTICE]))
            .then_err(DomainError::invalid("plays.1.noticeId", "no such notice"));
    }

    #[test]
    fn a_play_beyond_the_clock_skew_is_refused() {
        let skew = Duration::seconds(PLAY_CLOCK_SKEW_SECONDS);
        given::<PlayReport>([])
            .when(TENANT, report(vec![play(now() + skew)], vec![]))
            .then([reported(vec![play(now() + skew)])]);
        given::<PlayReport>([])
            .when(
                TENANT,
                report(vec![play(now() + skew + Duration::seconds(1))], vec![]),
            )
            .then_err(DomainError::invalid(
                "plays.0.playedAt",
                "lies in the future",
            ));
    }

    #[test]
    fn a_play_from_a_reset_clock_or_year_minus_9999_is_refused() {
        for at in ["1970-01-01T00:00:00Z", "-9999-01-01T00:00:00Z"] {
            given::<PlayReport>([])
                .when(
                    TENANT,
                    report(vec![play(now()), play(at.parse().unwrap())], vec![]),
                )
                .then_err(DomainError::invalid(
                    "plays.1.playedAt",
                    "must lie in the years 2000 to 2099 (UTC)",
                ));
        }
    }

    #[test]
    fn a_play_longer_than_a_day_is_refused() {
        let long = |duration_seconds| Play {
            duration_seconds,
            ..play(now())
        };
        assert_eq!(check_plays(&[long(86_400)], &[], now()), Ok(()));
        given::<PlayReport>([])
            .when(TENANT, report(vec![long(86_401)], vec![]))
            .then_err(DomainError::invalid(
                "plays.0.durationSeconds",
                "at most a day",
            ));
    }

    #[test]
    fn a_report_holds_at_most_500_plays() {
        assert_eq!(
            check_plays(&vec![play(now()); MAX_PLAYS_PER_REPORT], &[], now()),
            Ok(())
        );
        given::<PlayReport>([])
            .when(
                TENANT,
                report(vec![play(now()); MAX_PLAYS_PER_REPORT + 1], vec![]),
            )
            .then_err(DomainError::invalid(
                "plays",
                "at most 500 plays per report",
            ));
    }

    #[test]
    fn report_ids_are_stable_and_namespaced_by_display() {
        let report_id = Uuid::from_u128(90);
        assert_eq!(
            play_report_id(DISPLAY, report_id),
            play_report_id(DISPLAY, report_id)
        );
        assert_ne!(
            play_report_id(DISPLAY, report_id),
            play_report_id(Uuid::from_u128(2), report_id)
        );
        assert_ne!(play_report_id(DISPLAY, report_id), report_id);
    }
}
