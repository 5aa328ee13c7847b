//! Quantities with units: durations, byte sizes and rate limits.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Implements `Deserialize` (from a string, or a number's text) and `Serialize` (as its
/// `Display` text) for a type with a `FromStr` whose error is a user-facing message.
macro_rules! deserialize_from_str {
    ($ty:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct FromStrVisitor;
                impl Visitor<'_> for FromStrVisitor {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                        self.visit_str(&v.to_string())
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        self.visit_str(&v.to_string())
                    }
                }
                deserializer.deserialize_str(FromStrVisitor)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }
    };
}

pub(crate) use deserialize_from_str;

/// Splits `text` into its leading decimal digits and the rest.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// A span of time written as a whole number and a unit: `250ms`, `2s`, `1m`, `1h`, `1d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// A duration of `n` seconds.
    pub const fn from_secs(n: u64) -> Self {
        Self(std::time::Duration::from_secs(n))
    }

    /// A duration of `n` milliseconds.
    pub const fn from_millis(n: u64) -> Self {
        Self(std::time::Duration::from_millis(n))
    }

    /// The standard-library value, for timers.
    pub const fn get(self) -> std::time::Duration {
        self.0
    }
}

impl FromStr for Duration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid duration `{text}`: expected a whole number and a unit (ms, s, m, h, d), e.g. `250ms` or `2s`"
            )
        };
        let (digits, unit) = split_number(text.trim());
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let per_unit_ms: u64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        let ms = n.checked_mul(per_unit_ms).ok_or_else(bad)?;
        Ok(Self::from_millis(ms))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let units: [(u128, &str); 4] = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ];
        for (size, unit) in units {
            if ms != 0 && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

deserialize_from_str!(
    Duration,
    "a duration such as `250ms`, `2s`, `1m`, `1h` or `1d`"
);

/// An amount of bytes: `512B`, `64KiB`, `10MiB`, `1GiB`, or `KB`/`MB`/`GB` as powers of 1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` kibibytes (1024 bytes each).
    pub const fn kib(n: u64) -> Self {
        Self(n * 1024)
    }

    /// `n` mebibytes (1024² bytes each).
    pub const fn mib(n: u64) -> Self {
        Self(n * 1024 * 1024)
    }

    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid size `{text}`: expected a whole number and a unit (B, KiB, MiB, GiB, KB, MB, GB), e.g. `64KiB` or `10MiB`"
            )
        };
        let (digits, unit) = split_number(text.trim());
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let multiplier: u64 = match unit {
            "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "KB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            _ => return Err(bad()),
        };
        n.checked_mul(multiplier).map(Self).ok_or_else(bad)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        for (size, unit) in units {
            if self.0 != 0 && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

deserialize_from_str!(ByteSize, "a size such as `512B`, `64KiB` or `10MiB`");

/// A rate limit `N/DURATION`: at most `count` requests per `per`, e.g. `100/1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    /// How many requests the window allows (at least 1).
    pub count: u64,
    /// The window length (more than zero).
    pub per: Duration,
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!("invalid rate limit `{text}`: {why}; expected `N/DURATION`, e.g. `100/1m`")
        };
        let (count, per) = text.split_once('/').ok_or_else(|| bad("missing `/`"))?;
        let count: u64 = count
            .trim()
            .parse()
            .map_err(|_| bad("N must be a whole number"))?;
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        let per: Duration = per
            .trim()
            .parse()
            .map_err(|_| bad("DURATION must look like `1s`, `1m`, `1h`"))?;
        if per.0.is_zero() {
            return Err(bad("DURATION must be more than zero"));
        }
        Ok(Self { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.count, self.per)
    }
}

deserialize_from_str!(Rate, "a rate limit such as `100/1m`");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!("250ms".parse(), Ok(Duration::from_millis(250)));
        assert_eq!("2s".parse(), Ok(Duration::from_secs(2)));
        assert_eq!("1m".parse(), Ok(Duration::from_secs(60)));
        assert_eq!("1h".parse(), Ok(Duration::from_secs(3600)));
        assert_eq!("1d".parse(), Ok(Duration::from_secs(86_400)));
        assert_eq!("0s".parse(), Ok(Duration::from_secs(0)));
    }

    #[test]
    fn durations_reject_other_forms() {
        for bad in ["", "2", "s", "1.5s", "2 sec", "-1s", "2S", "1w", "1m30s"] {
            let err = bad.parse::<Duration>().expect_err(bad);
            assert!(err.starts_with("invalid duration"), "{err}");
        }
    }

    #[test]
    fn durations_display_in_the_largest_exact_unit() {
        assert_eq!(Duration::from_secs(120).to_string(), "2m");
        assert_eq!(Duration::from_millis(1500).to_string(), "1500ms");
        assert_eq!(Duration::from_secs(0).to_string(), "0ms");
    }

    #[test]
    fn sizes_parse_binary_and_decimal_units() {
        assert_eq!("512B".parse(), Ok(ByteSize(512)));
        assert_eq!("64KiB".parse(), Ok(ByteSize(65_536)));
        assert_eq!("10MiB".parse(), Ok(ByteSize::mib(10)));
        assert_eq!("1GiB".parse(), Ok(ByteSize(1 << 30)));
        assert_eq!("2KB".parse(), Ok(ByteSize(2_000)));
        assert_eq!("3MB".parse(), Ok(ByteSize(3_000_000)));
        assert_eq!("1GB".parse(), Ok(ByteSize(1_000_000_000)));
    }

    #[test]
    fn sizes_reject_other_forms() {
        for bad in [
            "",
            "10",
            "10mb",
            "1.5MiB",
            "10 MiB",
            "1TB",
            "KiB",
            "99999999999999GiB",
        ] {
            let err = bad.parse::<ByteSize>().expect_err(bad);
            assert!(err.starts_with("invalid size"), "{err}");
        }
        assert_eq!(ByteSize::mib(10).to_string(), "10MiB");
    }

    #[test]
    fn rates_parse_and_reject() {
        let rate: Rate = "100/1m".parse().expect("valid");
        assert_eq!(rate.count, 100);
        assert_eq!(rate.per, Duration::from_secs(60));
        assert_eq!(rate.to_string(), "100/1m");
        assert!("0/1s".parse::<Rate>().is_err());
        assert!("10/0s".parse::<Rate>().is_err());
        assert!("10".parse::<Rate>().is_err());
        assert!("ten/1s".parse::<Rate>().is_err());
        assert!("10/1".parse::<Rate>().is_err());
    }
}
