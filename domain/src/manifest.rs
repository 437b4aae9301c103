//! Digital signage: what a display shows at an instant, and when that can
//! next change. Pure: the caller gathers the tenant's schedules, playlists,
//! notices, group defaults and emergencies; nothing here reads a clock.
//!
//! Precedence: an active emergency for the display (or its group) beats the
//! highest-priority schedule whose date range and daypart match the display's
//! local time, which beats the default playlist of the display's group (or
//! of the group's parent). Notices outside their validity are dropped from
//! whatever playlist wins, and deleted ones (absent from `notices`) vanish.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone as _, Utc, Weekday};
use uuid::Uuid;

use crate::error::DomainError;
use crate::schedule::TimeZone;

/// Weekly hours on some weekdays, `[start, end)` in local time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Daypart {
    days: BTreeSet<u32>,
    start: NaiveTime,
    end: NaiveTime,
}

impl Daypart {
    /// A daypart must name at least one day and end after it starts (a slot
    /// across midnight is two dayparts).
    pub fn parse(
        field: &str,
        days: &[Weekday],
        start: NaiveTime,
        end: NaiveTime,
    ) -> Result<Self, DomainError> {
        if days.is_empty() {
            return Err(DomainError::invalid(
                &format!("{field}.days"),
                "name at least one day",
            ));
        }
        if end <= start {
            return Err(DomainError::invalid(
                &format!("{field}.end"),
                format!("the daypart ends ({end}) before it starts ({start})"),
            ));
        }
        Ok(Self {
            days: days.iter().map(|d| d.num_days_from_monday()).collect(),
            start,
            end,
        })
    }

    /// Its weekdays, Monday first.
    pub fn days(&self) -> Vec<Weekday> {
        self.days
            .iter()
            .filter_map(|d| Weekday::try_from(*d as u8).ok())
            .collect()
    }

    pub fn start(&self) -> NaiveTime {
        self.start
    }

    pub fn end(&self) -> NaiveTime {
        self.end
    }

    fn covers(&self, local_day: Weekday, time: NaiveTime) -> bool {
        self.days.contains(&local_day.num_days_from_monday())
            && self.start <= time
            && time < self.end
    }

    fn overlaps(&self, other: &Daypart) -> bool {
        self.days.intersection(&other.days).next().is_some()
            && self.start < other.end
            && other.start < self.end
    }
}

/// Which displays something is meant for.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Targets {
    pub displays: BTreeSet<Uuid>,
    pub groups: BTreeSet<Uuid>,
}

impl Targets {
    fn reach(&self, display: &DisplayContext) -> bool {
        self.displays.contains(&display.id) || display.groups().any(|g| self.groups.contains(&g))
    }

    fn intersect(&self, other: &Targets) -> bool {
        self.displays.intersection(&other.displays).next().is_some()
            || self.groups.intersection(&other.groups).next().is_some()
    }
}

/// What a signage schedule says (the `SignageSchedule` aggregate records
/// it): a playlist on some dayparts of a date range.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScheduleSpec {
    pub id: Uuid,
    pub name: String,
    pub priority: i32,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub dayparts: Vec<Daypart>,
    pub targets: Targets,
    pub playlist_id: Uuid,
}

impl ScheduleSpec {
    /// Refuses a schedule that overlaps one of `existing` with the same
    /// priority (same displays, dates and hours): which would win is
    /// undefined. The error names the schedule in the way.
    pub fn check_conflicts<'a>(
        &self,
        existing: impl IntoIterator<Item = &'a ScheduleSpec>,
    ) -> Result<(), DomainError> {
        for other in existing {
            if other.id != self.id
                && other.priority == self.priority
                && self.targets.intersect(&other.targets)
                && self.starts_on <= other.ends_on
                && other.starts_on <= self.ends_on
                && self
                    .dayparts
                    .iter()
                    .any(|a| other.dayparts.iter().any(|b| a.overlaps(b)))
            {
                return Err(DomainError::Conflict(format!(
                    "overlaps schedule \"{}\" ({}) with the same priority {}",
                    other.name, other.id, other.priority
                )));
            }
        }
        Ok(())
    }

    fn matches(&self, local: chrono::NaiveDateTime) -> bool {
        let day = local.date();
        self.starts_on <= day
            && day <= self.ends_on
            && self
                .dayparts
                .iter()
                .any(|d| d.covers(day.weekday(), local.time()))
    }
}

/// A notice's validity; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validity {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl Validity {
    pub fn parse(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Self, DomainError> {
        if let (Some(f), Some(t)) = (from, to)
            && t <= f
        {
            return Err(DomainError::invalid(
                "validTo",
                "the notice's validity ends before it starts",
            ));
        }
        Ok(Self { from, to })
    }

    fn holds(&self, at: DateTime<Utc>) -> bool {
        self.from.is_none_or(|f| f <= at) && self.to.is_none_or(|t| at < t)
    }
}

/// A notice as the player needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlayerNotice {
    pub id: Uuid,
    pub title: String,
    pub body: String,
    pub media_id: Option<Uuid>,
    pub validity: Validity,
    pub category_id: Option<Uuid>,
}

/// An entry of a playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlaylistItem {
    pub notice_id: Uuid,
    pub duration_seconds: u32,
}

/// An emergency override, until cleared.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActiveEmergency {
    pub id: Uuid,
    pub message: String,
    pub severity: String,
    /// Empty: every display of the tenant.
    pub groups: BTreeSet<Uuid>,
    pub media_id: Option<Uuid>,
    pub started_at: DateTime<Utc>,
}

/// The display being resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayContext {
    pub id: Uuid,
    pub group_id: Option<Uuid>,
    /// The group's parent (groups nest one level).
    pub parent_group_id: Option<Uuid>,
    pub time_zone: TimeZone,
}

impl DisplayContext {
    fn groups(&self) -> impl Iterator<Item = Uuid> + '_ {
        self.group_id.into_iter().chain(self.parent_group_id)
    }
}

/// Everything of a tenant the resolution looks at.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Signage {
    pub schedules: Vec<ScheduleSpec>,
    pub playlists: HashMap<Uuid, Vec<PlaylistItem>>,
    /// Deleted notices are simply absent.
    pub notices: HashMap<Uuid, PlayerNotice>,
    /// Default playlist per group.
    pub group_defaults: HashMap<Uuid, Uuid>,
    /// Active (not cleared) emergencies.
    pub emergencies: Vec<ActiveEmergency>,
    /// Category names.
    pub categories: HashMap<Uuid, String>,
}

/// Where the content came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Emergency(Uuid),
    Schedule(Uuid),
    GroupDefault(Uuid),
    Nothing,
}

/// A slide of the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slide {
    pub notice_id: Uuid,
    pub title: String,
    pub body: String,
    pub media_id: Option<Uuid>,
    pub category: Option<String>,
    pub duration_seconds: u32,
}

/// What a display shows at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub source: Source,
    /// The override, when `source` is an emergency.
    pub emergency: Option<ActiveEmergency>,
    pub slides: Vec<Slide>,
    /// The next instant at which the manifest may differ (a daypart, date
    /// range or notice validity boundary; an emergency only ends when
    /// cleared), looked for up to eight days ahead.
    pub next_change: Option<DateTime<Utc>>,
}

/// How far ahead `next_change` is looked for.
const HORIZON_DAYS: i64 = 8;

/// The manifest of `display` at `at`.
pub fn resolve(display: &DisplayContext, signage: &Signage, at: DateTime<Utc>) -> Manifest {
    let emergency = signage
        .emergencies
        .iter()
        .filter(|e| e.started_at <= at)
        .filter(|e| e.groups.is_empty() || display.groups().any(|g| e.groups.contains(&g)))
        .max_by_key(|e| e.started_at);
    if let Some(e) = emergency {
        return Manifest {
            source: Source::Emergency(e.id),
            emergency: Some(e.clone()),
            slides: Vec::new(),
            next_change: None,
        };
    }
    let (source, playlist) = choose(display, signage, at);
    let slides = playlist
        .and_then(|id| signage.playlists.get(&id))
        .map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    let notice = signage.notices.get(&item.notice_id)?;
                    notice.validity.holds(at).then(|| Slide {
                        notice_id: notice.id,
                        title: notice.title.clone(),
                        body: notice.body.clone(),
                        media_id: notice.media_id,
                        category: notice
                            .category_id
                            .and_then(|c| signage.categories.get(&c).cloned()),
                        duration_seconds: item.duration_seconds,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Manifest {
        source,
        emergency: None,
        slides,
        next_change: next_change(display, signage, at),
    }
}

/// The winning source and its playlist, emergencies aside.
fn choose(
    display: &DisplayContext,
    signage: &Signage,
    at: DateTime<Utc>,
) -> (Source, Option<Uuid>) {
    let local = at.with_timezone(&display.time_zone.tz()).naive_local();
    let scheduled = signage
        .schedules
        .iter()
        .filter(|s| s.targets.reach(display) && s.matches(local))
        // Equal priorities cannot overlap (refused when saved); the id
        // breaks a tie deterministically all the same.
        .max_by_key(|s| (s.priority, std::cmp::Reverse(s.id)));
    if let Some(s) = scheduled {
        return (Source::Schedule(s.id), Some(s.playlist_id));
    }
    for group in display.groups() {
        if let Some(playlist) = signage.group_defaults.get(&group) {
            return (Source::GroupDefault(group), Some(*playlist));
        }
    }
    (Source::Nothing, None)
}

/// The earliest boundary after `at` where the resolution may change.
fn next_change(
    display: &DisplayContext,
    signage: &Signage,
    at: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let zone = display.time_zone.tz();
    let today = at.with_timezone(&zone).date_naive();
    let local_instant = |day: NaiveDate, time: NaiveTime| {
        // A skipped local time (spring forward) starts at the next instant
        // that exists; an ambiguous one (fall back) at its first occurrence.
        let naive = day.and_time(time);
        (0..=120)
            .find_map(|m| {
                zone.from_local_datetime(&(naive + Duration::minutes(m)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
    };
    let mut candidates: Vec<DateTime<Utc>> = Vec::new();
    for s in signage
        .schedules
        .iter()
        .filter(|s| s.targets.reach(display))
    {
        for offset in 0..=HORIZON_DAYS {
            let day = today + Duration::days(offset);
            if day == s.starts_on || day == s.ends_on + Duration::days(1) {
                candidates.extend(local_instant(day, NaiveTime::MIN));
            }
            if day < s.starts_on || day > s.ends_on {
                continue;
            }
            for d in &s.dayparts {
                if d.days.contains(&day.weekday().num_days_from_monday()) {
                    candidates.extend(local_instant(day, d.start));
                    candidates.extend(local_instant(day, d.end));
                }
            }
        }
    }
    for notice in signage.notices.values() {
        candidates.extend(notice.validity.from);
        candidates.extend(notice.validity.to);
    }
    candidates.into_iter().filter(|t| *t > at).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn display(zone: &str) -> DisplayContext {
        DisplayContext {
            id: Uuid::from_u128(1),
            group_id: Some(Uuid::from_u128(10)),
            parent_group_id: Some(Uuid::from_u128(100)),
            time_zone: TimeZone::parse(zone).unwrap(),
        }
    }

    fn notice(n: u128, validity: Validity) -> PlayerNotice {
        PlayerNotice {
            id: Uuid::from_u128(n),
            title: format!("notice {n}"),
            body: String::new(),
            media_id: None,
            validity,
            category_id: None,
        }
    }

    fn schedule(id: u128, priority: i32, dayparts: Vec<Daypart>, playlist: u128) -> ScheduleSpec {
        ScheduleSpec {
            id: Uuid::from_u128(id),
            name: format!("schedule {id}"),
            priority,
            starts_on: date("2027-03-01"),
            ends_on: date("2027-03-31"),
            dayparts,
            targets: Targets {
                displays: BTreeSet::new(),
                groups: [Uuid::from_u128(10)].into(),
            },
            playlist_id: Uuid::from_u128(playlist),
        }
    }

    fn weekdays(start: NaiveTime, end: NaiveTime) -> Daypart {
        use Weekday::*;
        Daypart::parse("dayparts.0", &[Mon, Tue, Wed, Thu, Fri], start, end).unwrap()
    }

    /// Playlists 1000 (notice 1), 2000 (notice 2), 3000 (notice 3, the
    /// group default of the parent group).
    fn signage() -> Signage {
        let item = |n| PlaylistItem {
            notice_id: Uuid::from_u128(n),
            duration_seconds: 10,
        };
        Signage {
            schedules: vec![
                schedule(1, 1, vec![weekdays(t(8, 0), t(18, 0))], 1000),
                schedule(2, 5, vec![weekdays(t(12, 0), t(13, 0))], 2000),
            ],
            playlists: [
                (Uuid::from_u128(1000), vec![item(1)]),
                (Uuid::from_u128(2000), vec![item(2)]),
                (Uuid::from_u128(3000), vec![item(3)]),
            ]
            .into(),
            notices: (1..=3)
                .map(|n| (Uuid::from_u128(n), notice(n, Validity::default())))
                .collect(),
            group_defaults: [(Uuid::from_u128(100), Uuid::from_u128(3000))].into(),
            emergencies: Vec::new(),
            categories: HashMap::new(),
        }
    }

    fn shown(m: &Manifest) -> Vec<u128> {
        m.slides.iter().map(|s| s.notice_id.as_u128()).collect()
    }

    #[test]
    fn the_highest_priority_matching_schedule_wins_in_local_time() {
        let d = display("Europe/Berlin");
        // Tuesday 2027-03-02, 12:30 in Berlin is 11:30 UTC.
        let lunch = resolve(&d, &signage(), utc("2027-03-02T11:30:00Z"));
        assert_eq!(lunch.source, Source::Schedule(Uuid::from_u128(2)));
        assert_eq!(shown(&lunch), vec![2]);
        assert_eq!(
            lunch.next_change,
            Some(utc("2027-03-02T12:00:00Z")),
            "13:00 local"
        );
        let morning = resolve(&d, &signage(), utc("2027-03-02T07:30:00Z"));
        assert_eq!(shown(&morning), vec![1]);
        assert_eq!(morning.next_change, Some(utc("2027-03-02T11:00:00Z")));
    }

    #[test]
    fn outside_every_schedule_the_group_default_plays() {
        let d = display("Europe/Berlin");
        // Saturday, and a weekday evening.
        for at in ["2027-03-06T11:30:00Z", "2027-03-02T18:00:00Z"] {
            let m = resolve(&d, &signage(), utc(at));
            assert_eq!(m.source, Source::GroupDefault(Uuid::from_u128(100)), "{at}");
            assert_eq!(shown(&m), vec![3]);
        }
        // After the date range, too; a display without groups shows nothing.
        let m = resolve(&d, &signage(), utc("2027-04-01T09:00:00Z"));
        assert_eq!(m.source, Source::GroupDefault(Uuid::from_u128(100)));
        let lone = DisplayContext {
            group_id: None,
            parent_group_id: None,
            ..d
        };
        let m = resolve(&lone, &signage(), utc("2027-03-02T11:30:00Z"));
        assert_eq!((m.source, m.slides.len()), (Source::Nothing, 0));
    }

    #[test]
    fn an_emergency_beats_everything_until_cleared() {
        let d = display("Europe/Berlin");
        let mut s = signage();
        s.emergencies.push(ActiveEmergency {
            id: Uuid::from_u128(77),
            message: "Evacuate".into(),
            severity: "critical".into(),
            groups: [Uuid::from_u128(100)].into(),
            media_id: None,
            started_at: utc("2027-03-02T11:00:00Z"),
        });
        let m = resolve(&d, &s, utc("2027-03-02T11:30:00Z"));
        assert_eq!(m.source, Source::Emergency(Uuid::from_u128(77)));
        assert_eq!(m.emergency.as_ref().unwrap().message, "Evacuate");
        assert_eq!(m.next_change, None);
        // Not yet started, or for another group: the schedule plays.
        assert_eq!(
            resolve(&d, &s, utc("2027-03-02T10:59:00Z")).source,
            Source::Schedule(Uuid::from_u128(1))
        );
        s.emergencies[0].groups = [Uuid::from_u128(555)].into();
        assert_eq!(
            resolve(&d, &s, utc("2027-03-02T11:30:00Z")).source,
            Source::Schedule(Uuid::from_u128(2))
        );
        s.emergencies[0].groups.clear();
        assert!(matches!(
            resolve(&d, &s, utc("2027-03-02T11:30:00Z")).source,
            Source::Emergency(_)
        ));
    }

    #[test]
    fn invalid_and_deleted_notices_are_dropped_and_their_bounds_are_changes() {
        let d = display("UTC");
        let mut s = signage();
        s.playlists.insert(
            Uuid::from_u128(1000),
            (1..=3)
                .map(|n| PlaylistItem {
                    notice_id: Uuid::from_u128(n),
                    duration_seconds: 5,
                })
                .collect(),
        );
        let validity = Validity::parse(
            Some(utc("2027-03-02T09:15:00Z")),
            Some(utc("2027-03-02T09:45:00Z")),
        )
        .unwrap();
        s.notices.insert(Uuid::from_u128(2), notice(2, validity));
        s.notices.remove(&Uuid::from_u128(3));
        let before = resolve(&d, &s, utc("2027-03-02T09:00:00Z"));
        assert_eq!(shown(&before), vec![1]);
        assert_eq!(before.next_change, Some(utc("2027-03-02T09:15:00Z")));
        let during = resolve(&d, &s, utc("2027-03-02T09:15:00Z"));
        assert_eq!(shown(&during), vec![1, 2]);
        assert_eq!(during.next_change, Some(utc("2027-03-02T09:45:00Z")));
        assert_eq!(
            shown(&resolve(&d, &s, utc("2027-03-02T09:45:00Z"))),
            vec![1]
        );
    }

    #[test]
    fn dayparts_follow_daylight_saving_time() {
        // Berlin springs forward on 2027-03-28: 08:00 local is 07:00 UTC
        // on Friday the 26th and 06:00 UTC on Monday the 29th.
        let d = display("Europe/Berlin");
        let s = signage();
        let friday = resolve(&d, &s, utc("2027-03-26T06:59:00Z"));
        assert_eq!(friday.source, Source::GroupDefault(Uuid::from_u128(100)));
        assert_eq!(friday.next_change, Some(utc("2027-03-26T07:00:00Z")));
        let monday = resolve(&d, &s, utc("2027-03-29T06:00:00Z"));
        assert_eq!(monday.source, Source::Schedule(Uuid::from_u128(1)));
        let sunday = resolve(&d, &s, utc("2027-03-28T12:00:00Z"));
        assert_eq!(sunday.next_change, Some(utc("2027-03-29T06:00:00Z")));
    }

    #[test]
    fn a_daypart_starting_in_the_skipped_hour_starts_when_clocks_resume() {
        // 02:30 does not exist in Berlin on 2027-03-28: 03:00 CEST (01:00 UTC).
        let d = display("Europe/Berlin");
        let mut s = signage();
        s.schedules = vec![schedule(
            4,
            1,
            vec![Daypart::parse("d", &[Weekday::Sun], t(2, 30), t(4, 0)).unwrap()],
            1000,
        )];
        let m = resolve(&d, &s, utc("2027-03-28T00:00:00Z"));
        assert_eq!(m.source, Source::GroupDefault(Uuid::from_u128(100)));
        assert_eq!(m.next_change, Some(utc("2027-03-28T01:00:00Z")));
        let m = resolve(&d, &s, utc("2027-03-28T01:00:00Z"));
        assert_eq!(m.source, Source::Schedule(Uuid::from_u128(4)));
        assert_eq!(
            m.next_change,
            Some(utc("2027-03-28T02:00:00Z")),
            "04:00 CEST"
        );
    }

    #[test]
    fn a_daypart_must_end_after_it_starts_and_name_a_day() {
        let e = Daypart::parse("dayparts.1", &[Weekday::Mon], t(18, 0), t(8, 0)).unwrap_err();
        assert!(matches!(e, DomainError::Validation { field, .. } if field == "dayparts.1.end"));
        assert!(Daypart::parse("dayparts.1", &[Weekday::Mon], t(8, 0), t(8, 0)).is_err());
        let e = Daypart::parse("dayparts.0", &[], t(8, 0), t(9, 0)).unwrap_err();
        assert!(matches!(e, DomainError::Validation { field, .. } if field == "dayparts.0.days"));
    }

    #[test]
    fn a_notice_must_stop_being_valid_after_it_starts() {
        let e = Validity::parse(
            Some(utc("2027-03-02T10:00:00Z")),
            Some(utc("2027-03-02T09:00:00Z")),
        )
        .unwrap_err();
        assert!(matches!(e, DomainError::Validation { field, .. } if field == "validTo"));
        assert!(Validity::parse(None, Some(utc("2027-03-02T09:00:00Z"))).is_ok());
    }

    #[test]
    fn overlapping_schedules_with_equal_priority_are_refused_naming_the_other() {
        let existing = schedule(1, 1, vec![weekdays(t(8, 0), t(18, 0))], 1000);
        let clash = schedule(9, 1, vec![weekdays(t(17, 0), t(19, 0))], 2000);
        match clash.check_conflicts([&existing]) {
            Err(DomainError::Conflict(m)) => assert!(m.contains("schedule 1"), "{m}"),
            other => panic!("{other:?}"),
        }
        // Touching hours, another priority, other days, other dates, other
        // displays, or the schedule itself (an edit): no conflict.
        let ok = [
            schedule(9, 1, vec![weekdays(t(18, 0), t(19, 0))], 2000),
            schedule(9, 2, vec![weekdays(t(17, 0), t(19, 0))], 2000),
            schedule(
                9,
                1,
                vec![Daypart::parse("d", &[Weekday::Sat], t(8, 0), t(18, 0)).unwrap()],
                2000,
            ),
            ScheduleSpec {
                starts_on: date("2027-04-01"),
                ends_on: date("2027-04-30"),
                ..clash.clone()
            },
            ScheduleSpec {
                targets: Targets {
                    displays: [Uuid::from_u128(5)].into(),
                    groups: BTreeSet::new(),
                },
                ..clash.clone()
            },
            ScheduleSpec {
                id: existing.id,
                ..clash.clone()
            },
        ];
        for s in &ok {
            assert!(s.check_conflicts([&existing]).is_ok(), "{s:?}");
        }
    }
}
