//! The disko layout parser, validation and planner
//! (`landfall_proto::layout`) on arbitrary text.
//!
//! Each accepted layout is planned against blank disks of several sizes and
//! sector sizes (tiny, ordinary, huge, and an unsupported sector size), then
//! rendered and sent through the JSON form the agent sends the controller.
//! Checks beyond "no panic": planned partitions lie inside the usable area
//! and do not overlap, the plan survives a JSON round trip, and re-planning
//! against a disk that already holds exactly the plan says "already applied"
//! (the idempotence check).

#![no_main]

use std::collections::BTreeMap;

use landfall_proto::layout::{
    plan, render, DiskFacts, ExistingDisk, ExistingPartition, Geometry, Layout, Plan,
};
use libfuzzer_sys::fuzz_target;

const GEOMETRIES: [(u64, u32); 5] = [
    (20 << 20, 512),
    (16 << 30, 512),
    (1 << 40, 4096),
    (u64::MAX, 512),
    (8 << 30, 520),
];

fn facts(
    layout: &Layout,
    geo: Geometry,
    existing: impl Fn(&str) -> ExistingDisk,
) -> BTreeMap<String, DiskFacts> {
    layout
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (
                d.key.clone(),
                DiskFacts {
                    path: format!("/dev/fuzz{i}"),
                    geometry: geo,
                    existing: existing(&d.key),
                },
            )
        })
        .collect()
}

/// What the agent's probe would find on a disk after applying `plan`.
fn as_found(plan: &Plan, key: &str) -> ExistingDisk {
    let Some(d) = plan.disks.iter().find(|d| d.key == key) else {
        return ExistingDisk::default();
    };
    if !d.gpt {
        return ExistingDisk::default();
    }
    ExistingDisk {
        table: Some("gpt".into()),
        partitions: d
            .partitions
            .iter()
            .map(|p| ExistingPartition {
                number: p.number,
                first_lba: p.first_lba,
                last_lba: p.last_lba,
                type_guid: p.type_guid.clone(),
                label: p.label.clone(),
                part_uuid: p
                    .part_uuid
                    .clone()
                    .unwrap_or_else(|| "00000000-0000-0000-0000-000000000001".into()),
                fs_type: p.fs_type().map(str::to_string),
                fs_label: None,
                fs_uuid: None,
            })
            .collect(),
        signatures: Vec::new(),
        disk_guid: d.disk_guid.clone(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(layout) = Layout::from_json(text) else {
        return;
    };
    for (size_bytes, logical_sector_size) in GEOMETRIES {
        let geo = Geometry {
            size_bytes,
            logical_sector_size,
        };
        let Ok(p) = plan(&layout, &facts(&layout, geo, |_| ExistingDisk::default())) else {
            continue;
        };
        let _ = render(&p, "/mnt");
        for d in &p.disks {
            let mut ranges: Vec<(u64, u64)> = d
                .partitions
                .iter()
                .map(|p| (p.first_lba, p.last_lba))
                .collect();
            ranges.sort();
            for (a, b) in ranges.iter().zip(ranges.iter().skip(1)) {
                assert!(a.1 < b.0, "partitions overlap: {a:?} {b:?}");
            }
            for &(first, last) in &ranges {
                assert!(first <= last, "empty range {first}-{last}");
                assert!(first >= geo.first_usable(), "starts in the table: {first}");
                assert!(
                    Some(last) <= geo.last_usable(),
                    "ends in the backup table: {last}"
                );
            }
        }
        let json = serde_json::to_string(&p).expect("a plan serialises");
        let back: Plan = serde_json::from_str(&json).expect("a plan deserialises");
        assert_eq!(back, p, "JSON round trip changed the plan");
        let again = plan(&layout, &facts(&layout, geo, |k| as_found(&p, k)))
            .expect("re-planning over the applied layout");
        for d in &again.disks {
            assert!(
                d.already_applied,
                "disk {} not seen as already applied",
                d.key
            );
        }
    }
});
