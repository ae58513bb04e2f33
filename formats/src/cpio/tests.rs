//! Round-trip, alignment and robustness tests of the writer and reader.

use super::*;

fn sample_entries() -> Vec<Entry> {
    vec![
        Entry::new("bin", 0o755, EntryKind::Directory),
        Entry::new(
            "bin/tool",
            0o755,
            EntryKind::File(b"#!/bin/sh\necho hi\n".to_vec()),
        ),
        Entry::new("dev", 0o755, EntryKind::Directory),
        Entry::new(
            "dev/console",
            0o600,
            EntryKind::CharDevice { major: 5, minor: 1 },
        ),
        Entry::new(
            "dev/sda",
            0o660,
            EntryKind::BlockDevice { major: 8, minor: 0 },
        ),
        Entry::new("empty", 0o644, EntryKind::File(Vec::new())),
        Entry::new("link", 0o777, EntryKind::Symlink("bin/tool".into())),
        Entry::new("odd-name-12345", 0o4755, EntryKind::File(vec![7; 13])),
        Entry::new("pipe", 0o644, EntryKind::Fifo),
    ]
}

fn write_all(entries: &[Entry]) -> Vec<u8> {
    let mut writer = NewcWriter::new(Vec::new());
    for entry in entries {
        writer.write_entry(entry).unwrap();
    }
    writer.finish().unwrap()
}

#[test]
fn round_trip_preserves_every_entry() {
    let entries = sample_entries();
    let bytes = write_all(&entries);
    assert_eq!(read_archive(&bytes).unwrap(), entries);
}

#[test]
fn output_is_deterministic() {
    assert_eq!(write_all(&sample_entries()), write_all(&sample_entries()));
}

#[test]
fn every_header_starts_on_four_byte_boundary() {
    let bytes = write_all(&sample_entries());
    assert_eq!(bytes.len() % 4, 0);
    let mut count = 0;
    for (pos, window) in bytes.windows(6).enumerate() {
        if window == b"070701" {
            assert_eq!(pos % 4, 0, "header at unaligned offset {pos}");
            count += 1;
        }
    }
    assert_eq!(count, sample_entries().len() + 1, "entries + trailer");
}

#[test]
fn inodes_are_sequential_and_mtime_zero() {
    let bytes = write_all(&sample_entries());
    let mut offset = 0;
    let mut inos = Vec::new();
    while let Some(pos) = bytes[offset..].windows(6).position(|w| w == b"070701") {
        let start = offset + pos;
        let ino = u32::from_str_radix(
            std::str::from_utf8(&bytes[start + 6..start + 14]).unwrap(),
            16,
        )
        .unwrap();
        let mtime = u32::from_str_radix(
            std::str::from_utf8(&bytes[start + 46..start + 54]).unwrap(),
            16,
        )
        .unwrap();
        assert_eq!(mtime, 0);
        inos.push(ino);
        offset = start + 110;
    }
    let expected: Vec<u32> = (1..=sample_entries().len() as u32).chain([0]).collect();
    assert_eq!(inos, expected);
}

#[test]
fn trailer_ends_the_archive_and_prefix_reports_its_end() {
    let mut bytes = write_all(&sample_entries());
    let len = bytes.len();
    bytes.extend_from_slice(&[0; 12]);
    let (entries, end) = read_archive_prefix(&bytes).unwrap();
    assert_eq!(entries.len(), sample_entries().len());
    assert_eq!(end, len);
}

#[test]
fn leading_slash_and_dots_are_normalised() {
    let mut writer = NewcWriter::new(Vec::new());
    writer.file("/etc/./hostname", 0o644, b"x").unwrap();
    let entries = read_archive(&writer.finish().unwrap()).unwrap();
    assert_eq!(entries[0].path, "etc/hostname");
}

#[test]
fn invalid_paths_and_modes_are_refused() {
    let mut writer = NewcWriter::new(Vec::new());
    for bad in ["", "/", "a/../b", "a\0b", "TRAILER!!!"] {
        assert!(
            matches!(
                writer.file(bad, 0o644, b""),
                Err(CpioWriteError::InvalidPath(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        writer.file("a", 0o100644, b""),
        Err(CpioWriteError::InvalidPerm { .. })
    ));
}

#[test]
fn tree_creates_parents_before_children() {
    let mut tree = ArchiveTree::new();
    tree.file("lib/modules/6.1/kernel/fs/ext4.ko", 0o644, vec![1, 2, 3])
        .unwrap();
    tree.char_device("dev/console", 0o600, 5, 1).unwrap();
    tree.directory("lib", 0o700).unwrap();
    let entries = read_archive(&tree.to_bytes().unwrap()).unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "dev",
            "dev/console",
            "lib",
            "lib/modules",
            "lib/modules/6.1",
            "lib/modules/6.1/kernel",
            "lib/modules/6.1/kernel/fs",
            "lib/modules/6.1/kernel/fs/ext4.ko"
        ]
    );
    assert_eq!(
        entries[2].perm, 0o700,
        "explicit directory replaces implicit one"
    );
    assert_eq!(entries[3].perm, 0o755);
}

#[test]
fn tree_refuses_file_under_file_and_file_over_directory() {
    let mut tree = ArchiveTree::new();
    tree.file("a", 0o644, vec![]).unwrap();
    assert!(tree.file("a/b", 0o644, vec![]).is_err());
    tree.file("d/x", 0o644, vec![]).unwrap();
    assert!(tree.file("d", 0o644, vec![]).is_err());
}

#[test]
fn reader_rejects_specific_corruptions() {
    let good = write_all(&sample_entries());
    assert!(matches!(
        read_archive(&[]),
        Err(CpioReadError::MissingTrailer { offset: 0 })
    ));
    assert!(matches!(
        read_archive(&good[..50]),
        Err(CpioReadError::Truncated { what: "header", .. })
    ));
    let mut bad_magic = good.clone();
    bad_magic[5] = b'7';
    assert!(matches!(
        read_archive(&bad_magic),
        Err(CpioReadError::BadMagic { offset: 0 })
    ));
    let mut bad_hex = good.clone();
    bad_hex[20] = b'z';
    assert!(matches!(
        read_archive(&bad_hex),
        Err(CpioReadError::BadField { field: "mode", .. })
    ));
    let no_trailer = write_all(&sample_entries()[..2]);
    let cut = no_trailer.len() - 124;
    assert!(matches!(
        read_archive(&no_trailer[..cut]),
        Err(CpioReadError::MissingTrailer { .. })
    ));
    let mut huge_size = good.clone();
    huge_size[54..62].copy_from_slice(b"FFFFFFFF");
    assert!(matches!(
        read_archive(&huge_size),
        Err(CpioReadError::Truncated { what: "data", .. })
    ));
    let mut zero_name = good;
    zero_name[94..102].copy_from_slice(b"00000000");
    assert!(matches!(
        read_archive(&zero_name),
        Err(CpioReadError::BadName { .. })
    ));
}

#[test]
fn reader_checks_crc_format_sums() {
    let mut bytes = write_all(&[Entry::new("f", 0o644, EntryKind::File(vec![1, 2, 3]))]);
    bytes[..6].copy_from_slice(b"070702");
    bytes[102..110].copy_from_slice(b"00000006");
    assert_eq!(read_archive(&bytes).unwrap().len(), 1);
    bytes[102..110].copy_from_slice(b"00000007");
    assert!(matches!(
        read_archive(&bytes),
        Err(CpioReadError::BadChecksum { .. })
    ));
}

/// A small deterministic generator so the garbage test needs no extra crate.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn reader_never_panics_on_mutated_or_random_input() {
    let good = write_all(&sample_entries());
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for round in 0..20_000 {
        let mut data = if round % 4 == 0 {
            let len = (rng.next() % 600) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            good.clone()
        };
        let flips = 1 + rng.next() % 8;
        for _ in 0..flips {
            if data.is_empty() {
                break;
            }
            let pos = (rng.next() as usize) % data.len();
            data[pos] = match rng.next() % 3 {
                0 => rng.next() as u8,
                1 => b"0123456789ABCDEF"[(rng.next() % 16) as usize],
                _ => b'F',
            };
        }
        if rng.next().is_multiple_of(5) {
            let cut = (rng.next() as usize) % (data.len() + 1);
            data.truncate(cut);
        }
        let _ = read_archive(&data);
    }
}
