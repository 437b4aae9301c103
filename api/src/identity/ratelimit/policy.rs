//! [`Policy`]: how often a kind of attempt may be made and how failures
//! are punished, the presets for the guarded operations, and the lock-out
//! arithmetic that the store's SQL mirrors.

use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// How often a kind of attempt may be made and how failures are punished.
/// Plain data: the presets below cover the guarded operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Stable name; the prefix of every key of this policy in the table.
    pub name: &'static str,
    /// Attempts allowed per window and key.
    pub max_hits: u32,
    /// Length of the fixed window.
    pub window: Duration,
    /// Consecutive failures that lock the key; 0 disables the lock-out.
    pub lockout_after: u32,
    /// The first lock-out; each further failure doubles it.
    pub lockout_base: Duration,
    /// The longest lock-out.
    pub lockout_max: Duration,
    /// Failures are forgotten after this long without another one. Longer
    /// than `lockout_max`, so that waiting out the longest lock-out does not
    /// also wipe the count that earned it.
    pub forget_after: Duration,
}

impl Policy {
    /// `POST /display/v1/register` per client IP; `max_hits` comes from
    /// configuration. No lock-out: nothing is guessed here.
    pub const DISPLAY_REGISTER: Policy = Policy {
        name: "display_register",
        max_hits: 10,
        window: Duration::from_secs(60),
        lockout_after: 0,
        lockout_base: Duration::from_secs(60),
        lockout_max: Duration::from_secs(60),
        forget_after: Duration::from_secs(120),
    };

    /// `logIn` per client IP (see [`ip_subject`](super::keys::ip_subject)).
    /// Generous, because offices share an address; its lock-out stops
    /// spraying many accounts from one host. Call only `hit` and `failure` for it: a success must not reset
    /// it, or one valid account would launder an attacker's failures.
    pub const LOGIN_PER_IP: Policy = Policy {
        name: "login_ip",
        max_hits: 30,
        window: Duration::from_secs(5 * 60),
        lockout_after: 50,
        lockout_base: Duration::from_secs(5 * 60),
        lockout_max: HOUR,
        forget_after: Duration::from_secs(2 * 3600),
    };

    /// `logIn` per account (the normalised e-mail address, whether or not
    /// such a user exists, so that a lock-out reveals nothing). 5 wrong
    /// passwords lock for 30 s, then 1, 2, 4, 8 and at most 15 minutes.
    pub const LOGIN_PER_ACCOUNT: Policy = Policy {
        name: "login_account",
        max_hits: 10,
        window: Duration::from_secs(5 * 60),
        lockout_after: 5,
        lockout_base: Duration::from_secs(30),
        lockout_max: Duration::from_secs(15 * 60),
        forget_after: HOUR,
    };

    /// `signUp` per client IP; `max_hits` comes from configuration
    /// (`identity.sign_ups_per_hour`). Each sign-up creates an organisation,
    /// so this caps how many one host can create; nothing is guessed, so
    /// there is no lock-out. An office behind one address rarely creates
    /// more than a few organisations in an hour.
    pub const SIGN_UP_PER_IP: Policy = Policy {
        name: "signup_ip",
        max_hits: 10,
        window: HOUR,
        lockout_after: 0,
        lockout_base: Duration::ZERO,
        lockout_max: Duration::ZERO,
        forget_after: HOUR,
    };

    /// `refreshSession` per client IP. Refresh tokens cannot be guessed, so
    /// this only caps floods; many invalid tokens from one host lock it.
    pub const REFRESH_PER_IP: Policy = Policy {
        name: "refresh_ip",
        max_hits: 60,
        window: MINUTE,
        lockout_after: 30,
        lockout_base: MINUTE,
        lockout_max: Duration::from_secs(15 * 60),
        forget_after: HOUR,
    };

    /// Password-reset requests and token redemptions per client IP; invalid
    /// reset tokens count as failures.
    pub const PASSWORD_RESET_PER_IP: Policy = Policy {
        name: "reset_ip",
        max_hits: 10,
        window: HOUR,
        lockout_after: 10,
        lockout_base: Duration::from_secs(5 * 60),
        lockout_max: HOUR,
        forget_after: Duration::from_secs(24 * 3600),
    };

    /// Password-reset requests per account (the e-mail address), so nobody
    /// can flood someone's inbox. No lock-out: a wrong token names no account.
    pub const PASSWORD_RESET_PER_ACCOUNT: Policy = Policy {
        name: "reset_account",
        max_hits: 3,
        window: HOUR,
        lockout_after: 0,
        lockout_base: Duration::ZERO,
        lockout_max: Duration::ZERO,
        forget_after: HOUR,
    };

    /// TOTP and backup-code attempts per account (at sign-in, enrolment
    /// confirmation and `disableTotp`). 5 wrong codes lock for 1 minute,
    /// doubling up to 1 hour, which keeps a 6-digit code out of reach.
    pub const TOTP_PER_ACCOUNT: Policy = Policy {
        name: "totp_account",
        max_hits: 10,
        window: Duration::from_secs(5 * 60),
        lockout_after: 5,
        lockout_base: MINUTE,
        lockout_max: HOUR,
        forget_after: Duration::from_secs(24 * 3600),
    };

    /// Every preset, for documentation and tests.
    pub const PRESETS: [Policy; 7] = [
        Self::SIGN_UP_PER_IP,
        Self::LOGIN_PER_IP,
        Self::LOGIN_PER_ACCOUNT,
        Self::REFRESH_PER_IP,
        Self::PASSWORD_RESET_PER_IP,
        Self::PASSWORD_RESET_PER_ACCOUNT,
        Self::TOTP_PER_ACCOUNT,
    ];

    /// How long `failures` consecutive failures lock a key:
    /// `lockout_base · 2^(failures − lockout_after)`, at most `lockout_max`;
    /// `None` below the threshold or when the lock-out is disabled.
    pub fn lockout(&self, failures: u32) -> Option<Duration> {
        if self.lockout_after == 0 || failures < self.lockout_after {
            return None;
        }
        let exponent = (failures - self.lockout_after).min(self.max_exponent());
        let us = (micros_of(self.lockout_base) << exponent).min(micros_of(self.lockout_max));
        Some(Duration::from_micros(us as u64))
    }

    /// The smallest exponent at which the doubling reaches `lockout_max`.
    /// Capping the shift there keeps `base << exponent` below twice the
    /// maximum, so it cannot overflow, in Rust or in SQL.
    pub(super) fn max_exponent(&self) -> u32 {
        let (base, max) = (micros_of(self.lockout_base), micros_of(self.lockout_max));
        let mut exponent = 0;
        while base > 0 && (base << exponent) < max && exponent < 62 {
            exponent += 1;
        }
        exponent
    }
}

/// A duration in microseconds, saturated so that doubling it up to
/// [`Policy::max_exponent`] times stays within `i64`.
pub(super) fn micros_of(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).map_or(i64::MAX / 4, |us| us.min(i64::MAX / 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_doubles_from_the_threshold_and_caps() {
        let p = Policy::LOGIN_PER_ACCOUNT;
        let secs = |n| p.lockout(n).map(|d| d.as_secs());
        assert_eq!(secs(0), None);
        assert_eq!(secs(4), None);
        assert_eq!(secs(5), Some(30));
        assert_eq!(secs(6), Some(60));
        assert_eq!(secs(7), Some(120));
        assert_eq!(secs(9), Some(480));
        assert_eq!(secs(10), Some(900));
        assert_eq!(secs(11), Some(900));
        assert_eq!(secs(u32::MAX), Some(900));
    }

    #[test]
    fn lockout_disabled_never_locks() {
        let p = Policy::PASSWORD_RESET_PER_ACCOUNT;
        assert_eq!(p.lockout(1), None);
        assert_eq!(p.lockout(u32::MAX), None);
    }

    #[test]
    fn lockout_survives_extreme_durations() {
        let p = Policy {
            lockout_after: 1,
            lockout_base: Duration::from_secs(1),
            lockout_max: Duration::MAX,
            ..Policy::LOGIN_PER_ACCOUNT
        };
        let longest = p.lockout(u32::MAX).unwrap();
        assert!(longest >= p.lockout(40).unwrap());
        assert_eq!(p.lockout(1), Some(Duration::from_secs(1)));
        let zero_base = Policy {
            lockout_base: Duration::ZERO,
            ..p
        };
        assert_eq!(zero_base.lockout(9), Some(Duration::ZERO));
    }

    #[test]
    fn exponent_cap_is_where_doubling_reaches_the_max() {
        let p = Policy::LOGIN_PER_ACCOUNT; // 30 s → 900 s: 30·2^5 = 960 ≥ 900
        assert_eq!(p.max_exponent(), 5);
        assert_eq!(Policy::PASSWORD_RESET_PER_ACCOUNT.max_exponent(), 0);
    }

    #[test]
    fn presets_are_sane() {
        let mut names: Vec<_> = Policy::PRESETS.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Policy::PRESETS.len(), "names are unique");
        for p in Policy::PRESETS {
            assert!(p.max_hits > 0 && !p.window.is_zero(), "{}", p.name);
            assert!(p.forget_after >= p.lockout_max, "{}", p.name);
            assert!(p.lockout_base <= p.lockout_max, "{}", p.name);
            assert!(!p.name.contains(':'), "{}", p.name);
        }
    }
}
