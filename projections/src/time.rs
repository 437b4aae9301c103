//! The time unit of every read-model column: microseconds since the Unix
//! epoch, in a `bigint` both databases store alike.

/// Microseconds since the Unix epoch, the time unit of every read-model column.
pub fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// Inverse of [`micros`].
pub fn from_micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}
