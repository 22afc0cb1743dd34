//! UTC timestamps as caas prints and stamps them: manifests, messages, boot images.
//!
//! Times here are OpenPGP key and signature times or file times, never before 1970.

use std::time::SystemTime;

/// `2026-11-26T09:30:00Z` (UTC, whole seconds).
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// `2026-11-26` (UTC).
pub fn date(time: SystemTime) -> String {
    let mut text = rfc3339(time);
    text.truncate("YYYY-MM-DD".len());
    text
}

/// Midnight UTC of a calendar date, for fixed reference points and tests.
pub fn from_date(year: u16, month: u8, day: u8) -> SystemTime {
    let text = format!("{year:04}-{month:02}-{day:02}T00:00:00Z");
    humantime::parse_rfc3339(&text).unwrap_or_else(|err| panic!("{text}: {err}"))
}

/// `YYYYMMDDhhmmss00`, the form xorriso takes dates in (UTC, hundredths of a second).
pub fn xorriso(time: SystemTime) -> String {
    let mut digits: String = rfc3339(time).chars().filter(char::is_ascii_digit).collect();
    digits.push_str("00");
    digits
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_772_928_000 + 3661);
        assert_eq!(rfc3339(t), "2026-03-08T01:01:01Z");
        assert_eq!(date(t), "2026-03-08");
        assert_eq!(xorriso(t), "2026030801010100");
        assert_eq!(date(from_date(2000, 2, 29)), "2000-02-29");
        assert_eq!(
            from_date(2026, 3, 8),
            UNIX_EPOCH + Duration::from_secs(1_772_928_000)
        );
    }
}
