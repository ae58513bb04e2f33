//! The size of a disko LV as the `lvcreate` call disko makes would read it.
//!
//! disko's `lvm_vg` passes `-l SIZE` when the size contains `%` (appending
//! `FREE` when it ends in `%`, so `"50%"` is `-l 50%FREE`) and `-L SIZE`
//! otherwise. lvm2 2.03.16 reads `-L` as a decimal number with an optional
//! unit letter (`kmgtpe` binary multiples, case-insensitive, `b` bytes, `s`
//! sectors; MiB without one) and rounds it up to whole extents; it reads `-l`
//! as an integer percentage of the free space (`%FREE`), of the VG (`%VG`) or
//! of the PVs (`%PVS`) and rounds down.

/// One LV size as lvcreate understands it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LvSize {
    /// `-L`: a size in 512-byte sectors, rounded up to extents.
    Sectors(u64),
    /// `-l N%KIND`.
    Percent { percent: u32, of: PercentOf },
}

/// What a percentage is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PercentOf {
    Free,
    Vg,
    Pvs,
}

impl LvSize {
    /// Read a disko `size` string the way disko + lvcreate read it.
    pub fn from_disko(size: &str) -> Result<Self, String> {
        if size.contains('%') {
            let arg = if size.ends_with('%') {
                format!("{size}FREE")
            } else {
                size.to_string()
            };
            parse_extents_percent(&arg)
        } else {
            parse_size_mb(size).map(LvSize::Sectors)
        }
    }

    /// Extents this size takes from a VG of `total` extents of which `free`
    /// are free, `extent_sectors` each: lvcreate's `_update_extents_params`.
    /// Percentages are allocated approximately (lvm's `approx_alloc`), so they
    /// never ask for more than is free.
    pub fn extents(&self, extent_sectors: u64, total: u64, free: u64) -> u64 {
        match *self {
            LvSize::Sectors(s) => s.div_ceil(extent_sectors),
            LvSize::Percent { percent, of } => {
                let base = match of {
                    PercentOf::Free => free,
                    PercentOf::Vg | PercentOf::Pvs => total,
                };
                (u64::from(percent) * base / 100).min(free)
            }
        }
    }
}

/// `-l N%KIND` (lvm's `_extents_arg` with a percent suffix).
fn parse_extents_percent(arg: &str) -> Result<LvSize, String> {
    let (number, kind) = arg
        .split_once('%')
        .ok_or_else(|| "missing '%'".to_string())?;
    if number.starts_with(['+', '-']) {
        return Err("extents may not be relative or signed".into());
    }
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{number:?} is not a whole number (lvcreate -l takes integer percentages)"
        ));
    }
    let percent: u64 = number
        .parse()
        .map_err(|_| format!("{number:?} is too big"))?;
    let percent = u32::try_from(percent)
        .ok()
        .filter(|&p| p < u32::MAX)
        .ok_or_else(|| format!("percentage {number} is too big"))?;
    let of = match kind.to_ascii_uppercase().as_str() {
        "F" | "FR" | "FREE" => PercentOf::Free,
        "V" | "VG" => PercentOf::Vg,
        "P" | "PV" | "PVS" => PercentOf::Pvs,
        "L" | "LV" | "O" | "OR" | "ORIGIN" => {
            return Err(format!(
                "%{kind} is for snapshots and resizing; use %FREE, %VG or %PVS"
            ))
        }
        _ => return Err(format!("%{kind} is unknown")),
    };
    Ok(LvSize::Percent { percent, of })
}

/// `-L SIZE` (lvm's `size_mb_arg`): sectors.
fn parse_size_mb(arg: &str) -> Result<u64, String> {
    if arg.starts_with(['+', '-']) {
        return Err("size may not be relative or signed".into());
    }
    if !arg.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return Err("size requires a number".into());
    }
    let end = arg
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(arg.len());
    let (number, rest) = arg.split_at(end);
    if rest.len() > 1
        && rest.starts_with(['e', 'E'])
        && rest[1..].starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-')
    {
        return Err("exponent notation is not supported".into());
    }
    let v: f64 = number
        .parse()
        .map_err(|_| format!("cannot parse the number {number:?}"))?;
    let sectors = match rest.chars().next().map(|c| c.to_ascii_lowercase()) {
        None => v * 2048.0,
        Some('s') => v,
        Some('b') => {
            let bytes = v as u64;
            if !bytes.is_multiple_of(512) {
                return Err(format!("{bytes} bytes is not a multiple of 512"));
            }
            v / 512.0
        }
        Some(c) => {
            let power = match c {
                'k' => 1,
                'm' => 2,
                'g' => 3,
                't' => 4,
                'p' => 5,
                'e' => 6,
                _ => return Err(format!("unknown unit {c:?}")),
            };
            v * 1024f64.powi(power - 1) * 2.0
        }
    };
    if sectors >= (u64::MAX >> 9) as f64 {
        return Err("size is too big (>= 16 EiB)".into());
    }
    Ok(sectors as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_sizes_are_binary_units_in_sectors() {
        assert_eq!(LvSize::from_disko("1M"), Ok(LvSize::Sectors(2048)));
        assert_eq!(LvSize::from_disko("100M"), Ok(LvSize::Sectors(204_800)));
        assert_eq!(LvSize::from_disko("100m"), Ok(LvSize::Sectors(204_800)));
        assert_eq!(LvSize::from_disko("2G"), Ok(LvSize::Sectors(4 << 20)));
        assert_eq!(LvSize::from_disko("1.5G"), Ok(LvSize::Sectors(3 << 20)));
        assert_eq!(LvSize::from_disko("512k"), Ok(LvSize::Sectors(1024)));
        assert_eq!(LvSize::from_disko("16"), Ok(LvSize::Sectors(16 * 2048)));
        assert_eq!(LvSize::from_disko("4096b"), Ok(LvSize::Sectors(8)));
        assert_eq!(LvSize::from_disko("8s"), Ok(LvSize::Sectors(8)));
    }

    #[test]
    fn percentages_follow_disko_flag_choice() {
        let free = |p| LvSize::Percent {
            percent: p,
            of: PercentOf::Free,
        };
        assert_eq!(LvSize::from_disko("100%FREE"), Ok(free(100)));
        assert_eq!(LvSize::from_disko("50%"), Ok(free(50)));
        assert_eq!(
            LvSize::from_disko("10%VG"),
            Ok(LvSize::Percent {
                percent: 10,
                of: PercentOf::Vg
            })
        );
    }

    #[test]
    fn sizes_lvcreate_refuses() {
        for bad in [
            "", "-1G", "+1G", "G", "1X", "1000b", "1.5%FREE", "10%LV", "10%BOGUS", "1e3",
        ] {
            assert!(LvSize::from_disko(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn extents_round_like_lvcreate() {
        let ext = 8192; // 4 MiB
        assert_eq!(LvSize::Sectors(2048).extents(ext, 100, 100), 1); // 1M -> 4M
        assert_eq!(LvSize::Sectors(204_800).extents(ext, 100, 100), 25);
        assert_eq!(LvSize::Sectors(204_801).extents(ext, 100, 100), 26);
        let half = LvSize::Percent {
            percent: 50,
            of: PercentOf::Free,
        };
        assert_eq!(half.extents(ext, 511, 485), 242); // floor(485 / 2)
        let vg = LvSize::Percent {
            percent: 80,
            of: PercentOf::Vg,
        };
        assert_eq!(vg.extents(ext, 100, 30), 30); // capped at free, as lvcreate does
    }
}
