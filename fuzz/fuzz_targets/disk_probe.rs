//! What the agent reads back from a disk to decide "already partitioned /
//! already formatted" (the idempotence checks): the GPT (through the `gpt`
//! crate), ext2/3/4 superblocks, FAT boot sectors, swap headers and the other
//! signatures (`landfall_agent::disk::probe::existing`, `disk::signatures`,
//! `disk::format::matches`), plus the inventory probe (`landfall_agent::probe`),
//! all on the input as an in-memory disk image (a temporary file).
//!
//! Checks beyond "no panic": probing an image never fails (a corrupt disk
//! must still be plannable and wipeable), and partitions found are sane
//! ranges.

#![no_main]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use landfall_agent::disk::format::matches;
use landfall_agent::disk::probe::existing;
use landfall_agent::disk::signatures::{detect, far_magic_offsets};
use landfall_agent::probe::{partition_table, probe_signatures};
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

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let dev = &f.image;
    for ss in [512u32, 4096] {
        let size = (data.len() as u64).div_ceil(u64::from(ss)) * u64::from(ss);
        dev.set_len(0).expect("truncate the image");
        dev.write_all_at(data, 0).expect("write the image");
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
        for p in &found.partitions {
            let start = p.first_lba.saturating_mul(u64::from(ss));
            let len = (p.last_lba - p.first_lba + 1).saturating_mul(u64::from(ss));
            for sig in detect(dev, start, len, u64::from(ss)).expect("detect never fails") {
                for c in &f.contents {
                    let _ = matches(c, &sig);
                }
            }
        }
        let _ = far_magic_offsets(dev, 0, size).expect("far magics never fail");
        let _ = probe_signatures(dev, size);
        let _ = partition_table(dev, ss);
    }
});
