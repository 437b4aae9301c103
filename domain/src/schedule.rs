//! Time zones and recurrence: IANA zone names and RFC 5545 RRULEs evaluated in
//! the campaign's zone, so "every Monday 09:00 Europe/Berlin" stays at 09:00
//! local time across daylight-saving changes.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::DomainError;

/// A valid IANA time zone name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    /// Validates an IANA name such as `Europe/Berlin`.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        chrono_tz::Tz::from_str(raw)
            .map(Self)
            .map_err(|_| DomainError::invalid("timeZone", format!("unknown time zone {raw:?}")))
    }

    /// The underlying zone.
    pub fn tz(self) -> chrono_tz::Tz {
        self.0
    }

    /// The IANA name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Today's date in this zone.
    pub fn today(self, now: DateTime<Utc>) -> chrono::NaiveDate {
        now.with_timezone(&self.0).date_naive()
    }
}

impl TryFrom<String> for TimeZone {
    type Error = DomainError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TimeZone> for String {
    fn from(value: TimeZone) -> Self {
        value.name().to_string()
    }
}

/// An RFC 5545 recurrence rule (the `RRULE` value, without `DTSTART`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Recurrence(String);

impl Recurrence {
    /// Validates `raw` (`FREQ=WEEKLY;BYDAY=MO`, optionally prefixed `RRULE:`)
    /// against the first occurrence `start` in `zone`. Sub-hourly frequencies
    /// are refused: nobody publishes a campaign post every minute.
    pub fn parse(raw: &str, start: DateTime<Utc>, zone: TimeZone) -> Result<Self, DomainError> {
        let rule = raw.trim();
        let rule = rule.strip_prefix("RRULE:").unwrap_or(rule).to_string();
        let invalid = |m: String| DomainError::invalid("recurrence", m);
        if rule.is_empty() || rule.contains('\n') || rule.to_ascii_uppercase().contains("DTSTART") {
            return Err(invalid(
                "expected a single RRULE such as FREQ=WEEKLY;BYDAY=MO".into(),
            ));
        }
        let parsed: rrule::RRule<rrule::Unvalidated> = rule
            .parse()
            .map_err(|e| invalid(format!("invalid RRULE: {e}")))?;
        if matches!(
            parsed.get_freq(),
            rrule::Frequency::Secondly | rrule::Frequency::Minutely
        ) {
            return Err(invalid("the shortest supported interval is hourly".into()));
        }
        let me = Self(rule);
        if me.set(start, zone)?.all(1).dates.is_empty() {
            return Err(invalid(
                "the rule never produces an occurrence after the first run".into(),
            ));
        }
        Ok(me)
    }

    /// The rule text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn set(&self, start: DateTime<Utc>, zone: TimeZone) -> Result<rrule::RRuleSet, DomainError> {
        let tz = rrule::Tz::Tz(zone.tz());
        let parsed: rrule::RRule<rrule::Unvalidated> = self
            .0
            .parse()
            .map_err(|e| DomainError::invalid("recurrence", format!("invalid RRULE: {e}")))?;
        parsed
            .build(start.with_timezone(&tz))
            .map_err(|e| DomainError::invalid("recurrence", format!("invalid RRULE: {e}")))
    }

    /// The first occurrence strictly after `after`, for a series that starts at
    /// `start` in `zone`; `None` when the series has ended.
    pub fn next_after(
        &self,
        start: DateTime<Utc>,
        zone: TimeZone,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let tz = rrule::Tz::Tz(zone.tz());
        let set = self.set(start, zone).ok()?;
        let after = after.with_timezone(&tz) + chrono::Duration::seconds(1);
        set.after(after)
            .all(1)
            .dates
            .first()
            .map(|d| d.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    fn berlin() -> TimeZone {
        TimeZone::parse("Europe/Berlin").unwrap()
    }

    #[test]
    fn unknown_time_zone_is_rejected() {
        assert!(TimeZone::parse("Mars/Olympus").is_err());
        assert!(TimeZone::parse("").is_err());
        assert_eq!(berlin().name(), "Europe/Berlin");
    }

    #[test]
    fn invalid_rrule_is_rejected() {
        let start = Utc::now();
        for bad in [
            "FREQ=FOO",
            "",
            "BYDAY=MO",
            "FREQ=MINUTELY",
            "DTSTART:20260101T000000Z",
            // February never has a 30th.
            "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
            "FREQ=DAILY;COUNT=0",
        ] {
            assert!(Recurrence::parse(bad, start, berlin()).is_err(), "{bad}");
        }
        assert!(Recurrence::parse("RRULE:FREQ=WEEKLY;BYDAY=MO", start, berlin()).is_ok());
    }

    #[test]
    fn weekly_rule_keeps_local_time_across_spring_forward() {
        // Monday 2026-03-23 09:00 CET (08:00 UTC); DST starts Sunday 2026-03-29.
        let start = Utc.with_ymd_and_hms(2026, 3, 23, 8, 0, 0).unwrap();
        let rule = Recurrence::parse("FREQ=WEEKLY;BYDAY=MO", start, berlin()).unwrap();
        let next = rule.next_after(start, berlin(), start).unwrap();
        // Monday 2026-03-30 09:00 CEST is 07:00 UTC.
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 3, 30, 7, 0, 0).unwrap());
    }

    #[test]
    fn weekly_rule_keeps_local_time_across_fall_back_in_berlin() {
        // Monday 2026-10-19 09:00 CEST (07:00 UTC); DST ends Sunday 2026-10-25.
        let start = Utc.with_ymd_and_hms(2026, 10, 19, 7, 0, 0).unwrap();
        let rule = Recurrence::parse("FREQ=WEEKLY;BYDAY=MO", start, berlin()).unwrap();
        let next = rule.next_after(start, berlin(), start).unwrap();
        // Monday 2026-10-26 09:00 CET is 08:00 UTC.
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 10, 26, 8, 0, 0).unwrap());
    }

    fn new_york() -> TimeZone {
        TimeZone::parse("America/New_York").unwrap()
    }

    #[test]
    fn daily_rule_keeps_local_time_across_spring_forward_in_new_york() {
        // 2027-03-13 09:00 EST (14:00 UTC); DST starts Sunday 2027-03-14.
        let start = Utc.with_ymd_and_hms(2027, 3, 13, 14, 0, 0).unwrap();
        let rule = Recurrence::parse("FREQ=DAILY", start, new_york()).unwrap();
        let next = rule.next_after(start, new_york(), start).unwrap();
        // 2027-03-14 09:00 EDT is 13:00 UTC: 23 hours later.
        assert_eq!(next, Utc.with_ymd_and_hms(2027, 3, 14, 13, 0, 0).unwrap());
    }

    #[test]
    fn daily_rule_keeps_local_time_across_fall_back_in_new_york() {
        // 2026-10-31 09:00 EDT (13:00 UTC); DST ends Sunday 2026-11-01.
        let start = Utc.with_ymd_and_hms(2026, 10, 31, 13, 0, 0).unwrap();
        let rule = Recurrence::parse("FREQ=DAILY", start, new_york()).unwrap();
        let next = rule.next_after(start, new_york(), start).unwrap();
        // 2026-11-01 09:00 EST is 14:00 UTC: 25 hours later.
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 1, 14, 0, 0).unwrap());
    }

    #[test]
    fn a_time_skipped_by_spring_forward_is_not_lost() {
        // 02:30 local does not exist in New York on 2027-03-14.
        let start = Utc.with_ymd_and_hms(2027, 3, 13, 7, 30, 0).unwrap(); // 02:30 EST
        let rule = Recurrence::parse("FREQ=DAILY", start, new_york()).unwrap();
        let next = rule.next_after(start, new_york(), start).unwrap();
        let following = rule.next_after(start, new_york(), next).unwrap();
        assert!(next > start && following > next, "{next} {following}");
        assert!(next - start <= chrono::Duration::hours(24));
    }

    #[test]
    fn monthly_on_the_31st_skips_short_months() {
        let start = Utc.with_ymd_and_hms(2027, 1, 31, 9, 0, 0).unwrap();
        let utc = TimeZone::parse("UTC").unwrap();
        let rule = Recurrence::parse("FREQ=MONTHLY;BYMONTHDAY=31", start, utc).unwrap();
        let next = rule.next_after(start, utc, start).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2027, 3, 31, 9, 0, 0).unwrap());
    }
}
