//! /proc/self/mountinfo and /proc/swaps, parsed once for everyone (inventory,
//! the disk engine's is-done checks, the status reply).

use std::path::PathBuf;

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the mounted device.
    pub major_minor: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub source: String,
    /// The per-mount options (field 6).
    pub options: String,
}

/// Undoes the kernel's octal escapes (`\040` for a space).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(MountEntry {
                major_minor: pre.get(2)?.to_string(),
                mount_point: PathBuf::from(unescape(pre.get(4)?)),
                options: pre.get(5)?.to_string(),
                fs_type: post.first()?.to_string(),
                source: unescape(post.get(1).unwrap_or(&"")),
            })
        })
        .collect()
}

/// This process's mounts.
pub fn read() -> std::io::Result<Vec<MountEntry>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

/// The devices in /proc/swaps text, unescaped.
pub fn parse_swaps(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(unescape))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_escapes() {
        let text = "36 35 259:2 / /mnt rw,relatime shared:1 - ext4 /dev/nvme0n1p3 rw\n\
                    37 36 259:1 / /mnt/boot\\040x rw - vfat /dev/nvme0n1p2 rw,fmask=0022\n\
                    garbage\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].major_minor, "259:2");
        assert_eq!(m[0].fs_type, "ext4");
        assert_eq!(m[1].mount_point, PathBuf::from("/mnt/boot x"));
        assert_eq!(m[1].source, "/dev/nvme0n1p2");
        assert_eq!(m[1].options, "rw");
    }

    #[test]
    fn swaps() {
        let t = "Filename Type Size Used Priority\n/dev/nvme0n1p4 partition 1 0 -2\n";
        assert_eq!(parse_swaps(t), vec!["/dev/nvme0n1p4"]);
    }
}
