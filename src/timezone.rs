//! The offset from UTC that reports show times at: a campaign's `utc_offset`, by default
//! China Standard Time (`+08:00`; Asia/Shanghai has had no daylight saving since 1991).
//!
//! A fixed offset, not a zone name: a report's times are written with it
//! (`2026-12-02T11:38:23.042+08:00`), so every row says what it means on its own, and a
//! reader needs no time-zone database.

use std::fmt;
use std::time::{Duration, SystemTime};

/// A fixed offset from UTC, whole minutes, within ±18 hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcOffset {
    minutes: i32,
}

impl Default for UtcOffset {
    fn default() -> Self {
        Self::CHINA
    }
}

impl UtcOffset {
    /// China Standard Time, where WeChat's users are.
    pub const CHINA: UtcOffset = UtcOffset { minutes: 8 * 60 };

    /// `+08:00`, `-05:30`, `+00:00` (or `Z`).
    pub fn parse(s: &str) -> Option<Self> {
        if s == "Z" {
            return Some(UtcOffset { minutes: 0 });
        }
        let (sign, rest) = match s.as_bytes().first()? {
            b'+' => (1, &s[1..]),
            b'-' => (-1, &s[1..]),
            _ => return None,
        };
        let (h, m) = rest.split_once(':')?;
        let digits = |d: &str| d.len() == 2 && d.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || !digits(m) {
            return None;
        }
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 18 && m < 60 && h * 60 + m <= 18 * 60).then_some(UtcOffset {
            minutes: sign * (h * 60 + m),
        })
    }

    /// `t` as RFC 3339 at this offset, to the millisecond: `2026-12-02T11:38:23.042+08:00`.
    pub fn rfc3339_millis(self, t: SystemTime) -> String {
        let local = humantime::format_rfc3339_millis(self.local(t)).to_string();
        format!("{}{self}", local.trim_end_matches('Z'))
    }

    /// `t` for people, to the second: `2026-12-02 11:38:23 +08:00`.
    pub fn readable(self, t: SystemTime) -> String {
        let local = humantime::format_rfc3339_seconds(self.local(t)).to_string();
        format!("{} {self}", local.trim_end_matches('Z').replace('T', " "))
    }

    /// `t` moved by this offset (`back`: the other way, local to UTC).
    fn shift(self, t: SystemTime, back: bool) -> Option<SystemTime> {
        let by = Duration::from_secs(u64::from(self.minutes.unsigned_abs()) * 60);
        match (self.minutes >= 0) != back {
            true => t.checked_add(by),
            false => t.checked_sub(by),
        }
    }

    fn local(self, t: SystemTime) -> SystemTime {
        self.shift(t, false).unwrap_or(t)
    }
}

impl fmt::Display for UtcOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.minutes < 0 { '-' } else { '+' };
        let m = self.minutes.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", m / 60, m % 60)
    }
}

/// Reads an RFC 3339 time as [`UtcOffset::rfc3339_millis`] writes it, or with `Z` as reports
/// before `utc_offset` did. The offset is `None` for `Z`: such a report did not say where it
/// was read.
pub fn parse(s: &str) -> Option<(SystemTime, Option<UtcOffset>)> {
    if s.ends_with('Z') {
        return Some((humantime::parse_rfc3339_weak(s).ok()?, None));
    }
    let cut = s.len().checked_sub(6)?;
    let offset = UtcOffset::parse(s.get(cut..)?)?;
    let local = humantime::parse_rfc3339_weak(&format!("{}Z", &s[..cut])).ok()?;
    Some((offset.shift(local, true)?, Some(offset)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip() {
        let t = humantime::parse_rfc3339("2026-12-02T03:38:23.042Z").unwrap();
        let china = UtcOffset::CHINA;
        assert_eq!(china.rfc3339_millis(t), "2026-12-02T11:38:23.042+08:00");
        assert_eq!(china.readable(t), "2026-12-02 11:38:23 +08:00");
        assert_eq!(
            parse("2026-12-02T11:38:23.042+08:00"),
            Some((t, Some(china)))
        );
        let india = UtcOffset::parse("+05:30").unwrap();
        assert_eq!(india.to_string(), "+05:30");
        let ny = UtcOffset::parse("-05:00").unwrap();
        assert_eq!(ny.rfc3339_millis(t), "2026-12-01T22:38:23.042-05:00");
        assert_eq!(parse(&ny.rfc3339_millis(t)), Some((t, Some(ny))));
        assert_eq!(parse("2026-12-02T03:38:23.042Z"), Some((t, None)));
        assert_eq!(UtcOffset::parse("Z").unwrap().to_string(), "+00:00");
        for bad in [
            "Asia/Shanghai",
            "8",
            "+8:00",
            "+08",
            "+19:00",
            "+08:60",
            "",
            "08:00",
        ] {
            assert_eq!(UtcOffset::parse(bad), None, "{bad}");
        }
        assert_eq!(parse("yesterday"), None);
        assert_eq!(parse(""), None);
    }
}
