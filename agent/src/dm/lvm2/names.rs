//! lvm2's name rules (lvm-string.c of 2.03.16) and the device-mapper names of
//! LVs: `VG-LV` with every `-` inside either name doubled, and the uuid
//! `LVM-<vg id><lv id>` (both ids without dashes).

use std::fmt;

use super::id::LvmId;

/// lvm's `NAME_LEN`: a name plus its terminating NUL fits 128 bytes.
const NAME_LEN: usize = 128;
/// The kernel's `DM_NAME_LEN`, NUL included.
const DM_NAME_LEN: usize = 128;

/// LV names may not start with these (lvm's reserved prefixes).
const RESERVED_PREFIXES: [&str; 2] = ["pvmove", "snapshot"];
/// LV names may not contain these (the component and internal suffixes).
const RESERVED_STRINGS: [&str; 17] = [
    "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_wcorig", "_mimage", "_mlog", "_rimage",
    "_rmeta", "_tdata", "_tmeta", "_vdata", "_imeta", "_iorig", "_pmspare", "_vorigin",
];

/// Why lvm refuses a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    StartsWithHyphen,
    Dots,
    Character(char),
    TooLong(usize),
    ReservedPrefix(&'static str),
    ReservedString(&'static str),
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("it is empty"),
            Self::StartsWithHyphen => f.write_str("it starts with '-'"),
            Self::Dots => f.write_str("\".\" and \"..\" are not names"),
            Self::Character(c) => write!(
                f,
                "{c:?} is not allowed (only letters, digits, '.', '_', '-' and '+')"
            ),
            Self::TooLong(len) => write!(f, "{len} bytes is longer than 127"),
            Self::ReservedPrefix(p) => write!(f, "names starting {p:?} are reserved by lvm"),
            Self::ReservedString(s) => write!(f, "names including {s:?} are reserved by lvm"),
        }
    }
}

/// lvm's `validate_name`, which VG and LV names both pass.
pub fn check_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.starts_with('-') {
        return Err(NameProblem::StartsWithHyphen);
    }
    if name == "." || name == ".." {
        return Err(NameProblem::Dots);
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+')))
    {
        return Err(NameProblem::Character(c));
    }
    if name.len() + 1 > NAME_LEN {
        return Err(NameProblem::TooLong(name.len()));
    }
    Ok(())
}

/// A VG name `vgcreate` accepts.
pub fn check_vg_name(name: &str) -> Result<(), NameProblem> {
    check_name(name)
}

/// An LV name `lvcreate -n` accepts: `validate_name` plus the reserved
/// prefixes and strings (`apply_lvname_restrictions`).
pub fn check_lv_name(name: &str) -> Result<(), NameProblem> {
    check_name(name)?;
    if let Some(p) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
        return Err(NameProblem::ReservedPrefix(p));
    }
    if let Some(s) = RESERVED_STRINGS.iter().find(|s| name.contains(*s)) {
        return Err(NameProblem::ReservedString(s));
    }
    Ok(())
}

/// The device-mapper name lvm gives `vg/lv`: `/dev/mapper/<this>`.
pub fn dm_name(vg: &str, lv: &str) -> String {
    format!("{}-{}", vg.replace('-', "--"), lv.replace('-', "--"))
}

/// Whether `dm_name(vg, lv)` fits the kernel's name field.
pub fn dm_name_fits(vg: &str, lv: &str) -> bool {
    dm_name(vg, lv).len() < DM_NAME_LEN
}

/// The device-mapper uuid lvm gives an LV.
pub fn dm_uuid(vg: &LvmId, lv: &LvmId) -> String {
    format!("LVM-{}{}", vg.compact_str(), lv.compact_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for name in ["root", "pool", "my-vg", "lv_1", "a.b+c", "x"] {
            assert_eq!(check_lv_name(name), Ok(()), "{name}");
        }
        assert_eq!(check_lv_name(&"a".repeat(127)), Ok(()));
    }

    #[test]
    fn lvm_refuses_what_lvm_refuses() {
        assert_eq!(check_lv_name(""), Err(NameProblem::Empty));
        assert_eq!(check_lv_name("-x"), Err(NameProblem::StartsWithHyphen));
        assert_eq!(check_lv_name("."), Err(NameProblem::Dots));
        assert_eq!(check_lv_name(".."), Err(NameProblem::Dots));
        assert_eq!(check_lv_name("..."), Ok(()));
        assert_eq!(check_lv_name("a/b"), Err(NameProblem::Character('/')));
        assert_eq!(check_lv_name("é"), Err(NameProblem::Character('é')));
        assert_eq!(
            check_lv_name(&"a".repeat(128)),
            Err(NameProblem::TooLong(128))
        );
        assert_eq!(
            check_lv_name("snapshot1"),
            Err(NameProblem::ReservedPrefix("snapshot"))
        );
        assert_eq!(
            check_lv_name("pvmove0"),
            Err(NameProblem::ReservedPrefix("pvmove"))
        );
        assert_eq!(
            check_lv_name("data_mlog"),
            Err(NameProblem::ReservedString("_mlog"))
        );
        assert_eq!(
            check_lv_name("x_tmeta_y"),
            Err(NameProblem::ReservedString("_tmeta"))
        );
        // Reserved LV words are fine as VG names.
        assert_eq!(check_vg_name("snapshot"), Ok(()));
    }

    #[test]
    fn dm_names_double_hyphens() {
        assert_eq!(dm_name("pool", "root"), "pool-root");
        assert_eq!(dm_name("my-vg", "lv-1"), "my--vg-lv--1");
        assert!(dm_name_fits("pool", "root"));
        assert!(!dm_name_fits(&"v".repeat(64), &"l".repeat(63)));
    }

    #[test]
    fn dm_uuid_is_both_ids_without_dashes() {
        let vg = LvmId::parse("bD4PcY-s67j-U9Gx-iag1-cWH1-8GQx-e6qIYQ").unwrap();
        let lv = LvmId::parse("RqTa2L-EeQf-aQCr-1Lv0-H6kW-ZKSp-1Er5eX").unwrap();
        assert_eq!(
            dm_uuid(&vg, &lv),
            "LVM-bD4PcYs67jU9Gxiag1cWH18GQxe6qIYQRqTa2LEeQfaQCr1Lv0H6kWZKSp1Er5eX"
        );
    }
}
