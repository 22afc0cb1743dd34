//! UTC timestamps for manifests and messages, without a calendar dependency.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-11-26T09:30:00Z` (UTC, whole seconds).
pub fn rfc3339(time: SystemTime) -> String {
    let (days, secs) = split(time);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `2026-11-26` (UTC).
pub fn date(time: SystemTime) -> String {
    let (y, m, d) = civil_from_days(split(time).0);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A UTC calendar date as a time (midnight), for tests and fixed reference points.
pub fn from_date(year: i64, month: u32, day: u32) -> SystemTime {
    let days = days_from_civil(year, month, day);
    if days >= 0 {
        UNIX_EPOCH + Duration::from_secs(days as u64 * 86_400)
    } else {
        UNIX_EPOCH - Duration::from_secs(days.unsigned_abs() * 86_400)
    }
}

fn split(time: SystemTime) -> (i64, u64) {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs() as i64,
        Err(before) => -(before.duration().as_secs() as i64),
    };
    (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u64)
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (the well-known era-based conversion).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_772_928_000 + 3661);
        assert_eq!(rfc3339(t), "2026-03-08T01:01:01Z");
        assert_eq!(date(from_date(2000, 2, 29)), "2000-02-29");
        assert_eq!(date(from_date(1969, 12, 31)), "1969-12-31");
    }

    #[test]
    fn dates_round_trip() {
        for days in (-800_000i64..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
