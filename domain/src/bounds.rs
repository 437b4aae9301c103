//! The range of instants an input may name. Nothing Herald schedules,
//! reports or filters lies before 2000 or from 2100 on; an instant outside
//! (a display whose clock reset to 1970, a year −9999 or 275760) is a
//! mistake or a probe, and far-off years break date arithmetic and some
//! databases' timestamp types.

use chrono::{DateTime, TimeZone, Utc};

use crate::DomainError;

/// The earliest instant accepted: 2000-01-01T00:00:00Z.
pub fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap()
}

/// The first instant no longer accepted: 2100-01-01T00:00:00Z.
pub fn end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2100, 1, 1, 0, 0, 0).unwrap()
}

/// Refuses an instant outside [`earliest`]..[`end`]; `field` names it.
pub fn check_instant(at: DateTime<Utc>, field: &str) -> Result<(), DomainError> {
    if (earliest()..end()).contains(&at) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            "must lie in the years 2000 to 2099 (UTC)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_years_2000_to_2099_are_accepted_and_nothing_else() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        for ok in [
            "2000-01-01T00:00:00Z",
            "2026-06-01T12:00:00+02:00",
            "2099-12-31T23:59:59.999Z",
        ] {
            assert!(check_instant(at(ok), "at").is_ok(), "{ok}");
        }
        for bad in [
            "1999-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "2100-01-01T00:00:00Z",
            "-9999-01-01T00:00:00Z",
        ] {
            assert_eq!(
                check_instant(at(bad), "playedAt"),
                Err(DomainError::invalid(
                    "playedAt",
                    "must lie in the years 2000 to 2099 (UTC)"
                )),
                "{bad}"
            );
        }
    }
}
