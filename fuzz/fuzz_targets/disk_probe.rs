//! What the agent reads back from a disk to decide "already partitioned /
//! already formatted" (the idempotence checks): the GPT (through the `gpt`
//! crate), ext2/3/4 superblocks, FAT boot sectors, swap headers and the other
//! signatures (`landfall_agent::disk::probe::{existing, filesystem_at}`,
//! `disk::signatures`, `disk::format::matches`) — the one detector the plan,
//! the idempotence checks and the inventory share — all on the input as an
//! in-memory disk image (a temporary file).
//!
//! A GPT is guarded by CRC32s the fuzzer cannot forge, so before writing the
//! image the target recomputes them for any header found at LBA 1 or at the
//! last LBA (`fix_gpt_crcs`): mutated partition entries then reach the `gpt`
//! crate's parser and our use of what it returns.
//!
//! Checks beyond "no panic": probing an image never fails (a corrupt disk
//! must still be plannable and wipeable), and partitions found are sane
//! ranges.

#![no_main]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use landfall_agent::disk::format::matches;
use landfall_agent::disk::probe::{existing, filesystem_at};
use landfall_agent::disk::signatures::{detect, far_magic_offsets};
use landfall_proto::layout::{Content, Geometry, Layout};
use libfuzzer_sys::fuzz_target;

/// Contents the idempotence check compares what it finds against.
const LAYOUT: &str = r#"{"disk":{"d":{"device":"/dev/vda","type":"disk","content":{"type":"gpt","partitions":{
 "ESP":{"size":"64M","type":"EF00","content":{"type":"filesystem","format":"vfat","mountpoint":"/boot","extraArgs":["-n","ESP"]}},
 "swap":{"size":"64M","content":{"type":"swap","extraArgs":["-L","swp"]}},
 "root":{"size":"100%","content":{"type":"filesystem","format":"ext4","mountpoint":"/","extraArgs":["-L","nixos","-U","01234567-89ab-cdef-0123-456789abcdef"]}}}}}}}"#;

struct Fixture {
    image: File,
    contents: Vec<Content>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let layout = Layout::from_json(LAYOUT).expect("the fixed layout parses");
        let contents = layout.disks[0]
            .partitions
            .iter()
            .filter_map(|p| p.content.clone())
            .collect();
        Fixture {
            image: tempfile::tempfile().expect("a temporary file"),
            contents,
        }
    })
}

/// CRC-32 (IEEE 802.3, reflected), as the GPT uses.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// Makes the CRCs of a GPT header at byte `at` (and of its entry array, if it
/// lies inside the image) right, so the parser looks past them.
fn fix_gpt_crcs(img: &mut [u8], at: usize, ss: usize) {
    if img.len() < at + 92 || &img[at..at + 8] != b"EFI PART" {
        return;
    }
    let entries_lba = u64::from_le_bytes(img[at + 72..at + 80].try_into().unwrap());
    let count = u64::from(le32(img, at + 80));
    let size = u64::from(le32(img, at + 84));
    let start = entries_lba.checked_mul(ss as u64);
    let len = count.checked_mul(size).filter(|&l| l <= 1 << 20);
    if let (Some(start), Some(len)) = (start, len) {
        if let Some(end) = start.checked_add(len).filter(|&e| e <= img.len() as u64) {
            let crc = crc32(&img[start as usize..end as usize]);
            img[at + 88..at + 92].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let header_len = le32(img, at + 12) as usize;
    if (92..=ss).contains(&header_len) && at + header_len <= img.len() {
        img[at + 16..at + 20].fill(0);
        let crc = crc32(&img[at..at + header_len]);
        img[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let dev = &f.image;
    for ss in [512u32, 4096] {
        let size = (data.len() as u64).div_ceil(u64::from(ss)) * u64::from(ss);
        let mut img = data.to_vec();
        img.resize(size as usize, 0);
        let s = ss as usize;
        fix_gpt_crcs(&mut img, s, s);
        if img.len() >= 2 * s {
            let last = img.len() - s;
            fix_gpt_crcs(&mut img, last, s);
        }
        dev.set_len(0).expect("truncate the image");
        dev.write_all_at(&img, 0).expect("write the image");
        dev.set_len(size).expect("size the image");
        let geo = Geometry {
            size_bytes: size,
            logical_sector_size: ss,
        };
        let found = existing(dev, geo).expect("probing an image never fails");
        for p in &found.partitions {
            assert!(
                p.first_lba <= p.last_lba,
                "partition {} ends before it starts",
                p.number
            );
        }
        for sig in detect(dev, 0, size, u64::from(ss)).expect("detect never fails") {
            for c in &f.contents {
                let _ = matches(c, &sig);
            }
        }
        let _ = far_magic_offsets(dev, 0, size).expect("far magics never fail");
        // The inventory's read of a partition not in a GPT: the node alone.
        let _ = filesystem_at(dev, 0, size, 512).expect("probing a partition never fails");
    }
});
