//! GPT partition type: sgdisk's four-hex-digit codes and full GUIDs.
//!
//! The table holds the codes people use for Linux and UEFI systems (the GUIDs
//! are those of gptfdisk 1.0.9's `sgdisk -L`, checked against real sgdisk by the
//! agent's parity test). Any GUID may be given in full.

/// `(code, type GUID, sgdisk's name)`; codes upper case.
const CODES: &[(&str, &str, &str)] = &[
    (
        "0700",
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        "Microsoft basic data",
    ),
    (
        "0C01",
        "E3C9E316-0B5C-4DB8-817D-F92DF00215AE",
        "Microsoft reserved",
    ),
    ("2700", "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", "Windows RE"),
    ("8200", "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"),
    (
        "8300",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        "Linux filesystem",
    ),
    (
        "8301",
        "8DA63339-0007-60C0-C436-083AC8230908",
        "Linux reserved",
    ),
    (
        "8302",
        "933AC7E1-2EB4-4F13-B844-0E14E2AEF915",
        "Linux /home",
    ),
    (
        "8303",
        "44479540-F297-41B2-9AF7-D131D5F0458A",
        "Linux x86 root (/)",
    ),
    (
        "8304",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
        "Linux x86-64 root (/)",
    ),
    (
        "8305",
        "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
        "Linux ARM64 root (/)",
    ),
    ("8306", "3B8F8425-20E0-4F3B-907F-1A25A76F98E8", "Linux /srv"),
    (
        "8307",
        "69DAD710-2CE4-4E3C-B16C-21A1D49ABED3",
        "Linux ARM32 root (/)",
    ),
    (
        "8308",
        "7FFEC5C9-2D00-49B7-8941-3EA10A5586B7",
        "Linux dm-crypt",
    ),
    ("8309", "CA7D7CCB-63ED-4C53-861C-1742536059CC", "Linux LUKS"),
    ("8310", "4D21B016-B534-45C2-A9FB-5C16E091FD2D", "Linux /var"),
    (
        "8311",
        "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1",
        "Linux /var/tmp",
    ),
    (
        "8312",
        "773F91EF-66D4-49B5-BD83-D683BF40AD16",
        "Linux user's home",
    ),
    (
        "8313",
        "75250D76-8CC6-458E-BD66-BD47CC81A812",
        "Linux x86 /usr",
    ),
    (
        "8314",
        "8484680C-9521-48C6-9C11-B0720656F69E",
        "Linux x86-64 /usr",
    ),
    (
        "8315",
        "7D0359A3-02B3-4F0A-865C-654403E70625",
        "Linux ARM32 /usr",
    ),
    (
        "8316",
        "B0E01050-EE5F-4390-949A-9101B17104E9",
        "Linux ARM64 /usr",
    ),
    ("8E00", "E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"),
    (
        "A504",
        "516E7CBA-6ECF-11D6-8FF8-00022D09712B",
        "FreeBSD ZFS",
    ),
    (
        "BF01",
        "6A898CC3-1DD2-11B2-99A6-080020736631",
        "Solaris /usr & Mac ZFS",
    ),
    (
        "EA00",
        "BC13C2FF-59E6-4262-A352-B275FD6F7172",
        "XBOOTLDR partition",
    ),
    (
        "EF00",
        "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
        "EFI system partition",
    ),
    (
        "EF01",
        "024DEE41-33E7-11D3-9D69-0008C781F39F",
        "MBR partition scheme",
    ),
    (
        "EF02",
        "21686148-6449-6E6F-744E-656564454649",
        "BIOS boot partition",
    ),
    ("FD00", "A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID"),
];

/// All known `(code, GUID)` pairs, for tests and listings.
pub fn known_codes() -> impl Iterator<Item = (&'static str, &'static str)> {
    CODES.iter().map(|(c, g, _)| (*c, *g))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` is a GUID in the 8-4-4-4-12 hex form.
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| is_hex(p, n))
}

/// Whether `s` is syntactically a disko `type` (4 hex digits or a GUID).
pub fn is_type_syntax(s: &str) -> bool {
    is_hex(s, 4) || is_guid(s)
}

/// The type GUID (upper case) for an sgdisk code or a GUID; `None` for an
/// unknown code.
pub fn type_guid(s: &str) -> Option<String> {
    if is_guid(s) {
        return Some(s.to_ascii_uppercase());
    }
    let up = s.to_ascii_uppercase();
    CODES
        .iter()
        .find(|(c, _, _)| *c == up)
        .map(|(_, g, _)| g.to_string())
}

/// sgdisk's name for a type GUID, if it is one of ours.
pub fn type_name(guid: &str) -> Option<&'static str> {
    CODES
        .iter()
        .find(|(_, g, _)| g.eq_ignore_ascii_case(guid))
        .map(|(_, _, n)| *n)
}

/// Parse a GUID text into the 16 bytes of its on-disk (mixed-endian) form.
pub fn guid_to_bytes(s: &str) -> Option<[u8; 16]> {
    if !is_guid(s) {
        return None;
    }
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    for (i, out) in b.iter_mut().enumerate() {
        *out = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    Some(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_guids() {
        assert_eq!(
            type_guid("ef00").unwrap(),
            "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
        );
        assert_eq!(
            type_guid("EF02").unwrap(),
            "21686148-6449-6E6F-744E-656564454649"
        );
        assert_eq!(
            type_guid("0fc63daf-8483-4772-8e79-3d69d8477de4").unwrap(),
            "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
        );
        assert_eq!(type_guid("1234"), None);
        assert!(is_type_syntax("abcd") && !is_type_syntax("abc") && !is_type_syntax("EF00x"));
        assert_eq!(
            type_name("c12a7328-f81f-11d2-ba4b-00a0c93ec93b"),
            Some("EFI system partition")
        );
    }

    #[test]
    fn guid_bytes_are_mixed_endian() {
        let b = guid_to_bytes("C12A7328-F81F-11D2-BA4B-00A0C93EC93B").unwrap();
        assert_eq!(&b[..8], &[0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11]);
        assert_eq!(&b[8..], &[0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B]);
    }
}
