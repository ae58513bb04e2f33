//! Sizes and positions in the notations disko passes to sgdisk.
//!
//! `size` is `100%` or `[0-9]+[KMGTP]?`; disko pastes it into the end `+SIZE`,
//! so a bare number counts sectors, as sgdisk reads it. `start`/`end` are sgdisk
//! positions: an optional `+`/`-`, a decimal number and an optional unit
//! (`K M G T P E`, any case, powers of 1024 bytes; `s` or none = sectors).
//! [`Position::resolve`] mirrors sgdisk's `IeeeToInt` exactly, quirks included
//! (a value of 0 means "the default", a `+` end counts its own first sector).

use serde::{Deserialize, Serialize};

/// The `size` option of a disko partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Size {
    /// `100%`: up to the end of the disk (end `-0`).
    Rest,
    /// A number with an optional unit, kept as written (`512M`, `0`).
    Fixed(String),
}

impl Size {
    /// Parse `100%` or `[0-9]+[KMGTP]?`; `None` when it is neither.
    pub fn parse(s: &str) -> Option<Size> {
        if s == "100%" {
            return Some(Size::Rest);
        }
        let digits = s.trim_end_matches(['K', 'M', 'G', 'T', 'P']);
        let unit_len = s.len() - digits.len();
        if digits.is_empty() || unit_len > 1 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Size::Fixed(s.to_string()))
    }

    /// The text as written in the layout.
    pub fn as_str(&self) -> &str {
        match self {
            Size::Rest => "100%",
            Size::Fixed(s) => s,
        }
    }

    /// The default `end` disko derives from the size: `-0` or `+SIZE`.
    pub fn default_end(&self) -> String {
        match self {
            Size::Rest => "-0".to_string(),
            Size::Fixed(s) => format!("+{s}"),
        }
    }
}

/// Sign of an sgdisk position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sign {
    /// Absolute sector (or byte amount converted to sectors).
    Absolute,
    /// `+N`: relative to the default (start) or to the start (end).
    Plus,
    /// `-N`: back from the highest allowed sector.
    Minus,
}

/// A parsed sgdisk position (`0`, `2048`, `1M`, `+512M`, `-0`, `-100M`, `34s`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    pub sign: Sign,
    pub value: u64,
    /// Power-of-1024 exponent of the unit (1 = K … 6 = E); `None` for sectors.
    pub unit_exp: Option<u32>,
    /// Whether the text ended in `s` (disko then sets the alignment to 1).
    pub sector_suffix: bool,
}

impl Position {
    /// Parse a position; `None` if it is not `[+-]?[0-9]+[KMGTPEkmgtpes]?`.
    pub fn parse(s: &str) -> Option<Position> {
        let (sign, rest) = match s.as_bytes().first()? {
            b'+' => (Sign::Plus, &s[1..]),
            b'-' => (Sign::Minus, &s[1..]),
            _ => (Sign::Absolute, s),
        };
        let digits_end = rest
            .bytes()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits_end == 0 {
            return None;
        }
        let value: u64 = rest[..digits_end].parse().ok()?;
        let suffix = &rest[digits_end..];
        let (unit_exp, sector_suffix) = match suffix {
            "" => (None, false),
            "s" | "S" => (None, true),
            u if u.len() == 1 => {
                let idx = "KMGTPE".find(u.to_ascii_uppercase().as_str())?;
                (Some(idx as u32 + 1), false)
            }
            _ => return None,
        };
        Some(Position {
            sign,
            value,
            unit_exp,
            sector_suffix,
        })
    }

    /// Resolve to a sector number as sgdisk's `IeeeToInt(value, sector_size,
    /// low, high, alignment, default)` does. `None` is sgdisk's "bad input"
    /// (which it turns into sector 0, a request that then fails).
    pub fn resolve(
        &self,
        sector_size: u64,
        low: u64,
        high: u64,
        alignment: u64,
        default: u64,
    ) -> Option<u64> {
        let (mut response, sign, unit) = if self.value == 0 {
            (default, Sign::Absolute, None)
        } else {
            (self.value, self.sign, self.unit_exp)
        };
        if let Some(exp) = unit {
            let bytes_per_unit = 1u64 << (10 * exp);
            let mult = bytes_per_unit / sector_size;
            let divide = sector_size / bytes_per_unit;
            if mult > 1 {
                response = response.checked_mul(mult)?;
            } else if divide > 1 {
                response /= divide;
            }
        }
        match sign {
            Sign::Absolute => Some(response),
            Sign::Plus => {
                if high.wrapping_sub(default) < alignment {
                    response = response.saturating_sub(1);
                    response.checked_add(low)
                } else {
                    response.checked_add(default)
                }
            }
            Sign::Minus => high.checked_sub(response),
        }
    }
}

/// Human size with a binary unit: `512.0 MiB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(Size::parse("100%"), Some(Size::Rest));
        assert_eq!(Size::parse("512M"), Some(Size::Fixed("512M".into())));
        assert_eq!(Size::parse("0"), Some(Size::Fixed("0".into())));
        for bad in ["", "M", "1.5G", "10MB", "50%", "-1M", "1m"] {
            assert_eq!(Size::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn positions() {
        let p = Position::parse("+512M").unwrap();
        assert_eq!((p.sign, p.value, p.unit_exp), (Sign::Plus, 512, Some(2)));
        assert_eq!(Position::parse("-0").unwrap().sign, Sign::Minus);
        assert!(Position::parse("2048s").unwrap().sector_suffix);
        assert_eq!(Position::parse("1k").unwrap().unit_exp, Some(1));
        for bad in ["", "+", "M", "1.5M", "1MB", "--1", "0x10"] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn resolve_like_ieee_to_int() {
        // end "+1M" after start 2048 on a 512-byte disk, default = high
        let p = Position::parse("+1M").unwrap();
        assert_eq!(p.resolve(512, 2048, 129023, 2048, 129023), Some(4095));
        // "-0" is the default (high)
        assert_eq!(
            Position::parse("-0")
                .unwrap()
                .resolve(512, 2048, 129023, 2048, 129023),
            Some(129023)
        );
        assert_eq!(
            Position::parse("-1M")
                .unwrap()
                .resolve(512, 2048, 129023, 2048, 129023),
            Some(126975)
        );
        // 4096-byte sectors: 1M = 256 sectors, 1K = 0 sectors
        assert_eq!(
            Position::parse("1M")
                .unwrap()
                .resolve(4096, 256, 1000, 256, 256),
            Some(256)
        );
        assert_eq!(
            Position::parse("+1K")
                .unwrap()
                .resolve(4096, 256, 1000, 256, 1000),
            Some(256)
        );
    }
}
