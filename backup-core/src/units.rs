//! Sizes, durations and ranges as users write them (`"1 KiB"`, `"26h"`),
//! checked for sense. A leaf module: the settings of every other module use
//! it, and it uses none of them.

use serde::Deserialize;

/// `value` within `range`, or a message naming `what` and the range.
pub fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    what: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> std::result::Result<T, String> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{what} must be between {} and {}",
            range.start(),
            range.end()
        ))
    }
}

/// Compression threads: 1 to 256.
pub const MAX_THREADS: u32 = 256;

/// A size in bytes, written as a number or as `"512"`, `"1 KiB"`, `"5MB"`, `"2 GiB"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parse `"1 KiB"`, `"5MB"`, `"1024"`.
    ///
    /// # Errors
    /// A message naming the accepted units.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| {
            "not a size: expected bytes or like \"1 KiB\", \"5MB\", \"2 GiB\"".to_string()
        })?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1024,
            "m" | "mb" => 1000 * 1000,
            "mib" => 1024 * 1024,
            "g" | "gb" => 1000 * 1000 * 1000,
            "gib" => 1024 * 1024 * 1024,
            _ => {
                return Err(
                    "not a size: unknown unit (use B, KB, KiB, MB, MiB, GB, GiB)".to_string(),
                );
            }
        };
        let bytes = n * mult as f64;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err("too large a size".to_string());
        }
        Ok(ByteSize(bytes as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a size: a number of bytes or a string like \"1 KiB\"",
            )
        })? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// The longest duration any setting takes: 100 years. Longer ones are
/// mistakes, and would overflow date arithmetic.
pub const MAX_DURATION_SECS: u64 = 100 * 365 * 86400;

/// Parse a duration: `"90s"`, `"5m"`, `"26h"`, `"7d"`, or a number of seconds,
/// at most [`MAX_DURATION_SECS`].
///
/// # Errors
/// A message naming the accepted units, or the limit.
pub fn parse_duration_secs(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let too_long = || "too long: at most 100 years (\"36500d\")".to_string();
    let n: u64 = match num.parse() {
        Ok(n) => n,
        Err(e) if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) => {
            return Err(too_long());
        }
        Err(_) => {
            return Err(
                "not a duration: expected like \"90s\", \"5m\", \"26h\" or \"7d\"".to_string(),
            );
        }
    };
    let mult = match unit.trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err("not a duration: use s, m, h or d (\"26h\")".to_string()),
    };
    check_duration(n.checked_mul(mult).ok_or_else(too_long)?)
}

/// A number of seconds within [`MAX_DURATION_SECS`].
///
/// # Errors
/// The limit, when exceeded.
pub fn check_duration(secs: u64) -> std::result::Result<u64, String> {
    if secs > MAX_DURATION_SECS {
        Err("too long: at most 100 years (\"36500d\")".to_string())
    } else {
        Ok(secs)
    }
}

/// serde helper: an optional duration written as `"5m"` or seconds.
pub(crate) mod opt_duration {
    use serde::Deserialize;

    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::N(n)) => super::check_duration(n)
                .map(Some)
                .map_err(serde::de::Error::custom),
            Some(Raw::S(s)) => super::parse_duration_secs(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }
}
