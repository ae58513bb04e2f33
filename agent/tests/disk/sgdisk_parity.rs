//! The planner's sector ranges, type GUIDs and names against real sgdisk run
//! exactly as disko runs it (`sgdisk --clear`, then per partition
//! `sgdisk --align-end [--set-alignment=A] --new=N:START:END --partition-guid=N:R
//! --change-name=N:LABEL --typecode=N:TYPE --attributes=N:=:0 DISK`), on image
//! files (512-byte sectors) and on loop devices with 4096-byte sectors.

use crate::common;

use common::*;
use landfall_proto::layout::{partition_ranges, typecode, Geometry, Layout};

/// Run disko's sgdisk commands for the layout's single disk on `dev`; returns
/// the ranges sgdisk made, stopping at the first partition sgdisk refuses.
fn disko_sgdisk(layout: &Layout, dev: &str) -> Vec<Result<(u64, u64), String>> {
    tool_ok("sgdisk", "gdisk", &["--clear", dev]);
    let mut out = Vec::new();
    for p in &layout.disks[0].partitions {
        let n = p.number;
        let mut args = vec!["--align-end".to_string()];
        if p.alignment != 0 {
            args.push(format!("--set-alignment={}", p.alignment));
        }
        args.push(format!("--new={n}:{}:{}", p.start, p.end));
        args.push(format!(
            "--partition-guid={n}:{}",
            p.uuid.clone().unwrap_or_else(|| "R".into())
        ));
        args.push(format!("--change-name={n}:{}", p.label));
        args.push(format!("--typecode={n}:{}", p.type_code));
        args.push(format!("--attributes={n}:=:0"));
        for b in &p.attributes {
            args.push(format!("--attributes={n}:set:{b}"));
        }
        args.push(dev.to_string());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = tool("sgdisk", "gdisk", &a);
        if !o.status.success() {
            out.push(Err(String::from_utf8_lossy(&o.stderr).into_owned()));
            return out;
        }
        let row = sgdisk_table(dev)
            .into_iter()
            .find(|r| r.0 == n)
            .expect("sgdisk made no row");
        out.push(Ok((row.1, row.2)));
    }
    out
}

fn check(json: &str, size: u64, ss: u32) {
    let layout = Layout::from_json(json).unwrap();
    let img = Image::new(size);
    let lo = (ss != 512).then(|| Loop::attach(&img.path, ss));
    let dev = lo
        .as_ref()
        .map(|l| l.dev.clone())
        .unwrap_or_else(|| img.p().to_string());
    let d = &layout.disks[0];
    let ours = partition_ranges(
        &d.key,
        &d.partitions,
        Geometry {
            size_bytes: size,
            logical_sector_size: ss,
        },
    );
    let theirs = disko_sgdisk(&layout, &dev);
    match ours {
        Ok(ranges) => {
            let theirs: Vec<(u64, u64)> = theirs
                .into_iter()
                .map(|r| {
                    r.unwrap_or_else(|e| {
                        panic!("sgdisk refused what we planned ({json}, {size}, {ss}): {e}")
                    })
                })
                .collect();
            assert_eq!(ranges, theirs, "{json} on {size} bytes, {ss}-byte sectors");
            for p in &d.partitions {
                let (type_guid, part_guid, attrs) = sgdisk_info(&dev, p.number);
                assert_eq!(type_guid, p.type_guid, "type of {}", p.key);
                if let Some(u) = &p.uuid {
                    assert_eq!(&part_guid, &u.to_ascii_uppercase());
                }
                let want: u64 = p.attributes.iter().fold(0, |a, b| a | (1 << b));
                assert_eq!(
                    u64::from_str_radix(&attrs, 16).unwrap(),
                    want,
                    "attributes of {}",
                    p.key
                );
            }
            let names: Vec<String> = sgdisk_table(&dev).into_iter().map(|r| r.4).collect();
            let labels: Vec<String> = d.partitions.iter().map(|p| p.label.clone()).collect();
            assert_eq!(names, labels);
            sgdisk_verify(&dev);
        }
        Err(e) => {
            let failed_at = theirs.iter().position(|r| r.is_err());
            assert!(
                failed_at.is_some(),
                "we refused ({e}) but sgdisk made {theirs:?} for {json}"
            );
            let failed_key = &d.partitions[failed_at.unwrap_or(0)].key;
            assert!(
                e.path.contains(&format!(".partitions.{failed_key}.")),
                "{e} vs sgdisk failing at {failed_key}"
            );
        }
    }
}

/// Run the checks in parallel: each sgdisk write sleeps a second after syncing.
fn check_all(cases: Vec<(String, u64, u32)>) {
    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|(json, size, ss)| s.spawn(move || check(json, *size, *ss)))
            .collect();
        let failures: Vec<_> = handles.into_iter().filter_map(|h| h.join().err()).collect();
        assert!(
            failures.is_empty(),
            "{} case(s) failed (see the panics above)",
            failures.len()
        );
    });
}

fn gpt(parts: &str) -> String {
    format!(
        r#"{{"disk":{{"d":{{"device":"/dev/x","content":{{"type":"gpt","partitions":{{{parts}}}}}}}}}}}"#
    )
}

#[test]
fn seed_layout_matches_sgdisk_512_and_4096() {
    let seed = std::fs::read_to_string(fixture("seed.evaluated.json")).unwrap();
    check_all(
        [
            (1u64 << 30, 512),
            (2 << 30, 512),
            (1 << 30, 4096),
            (600 << 20, 4096),
        ]
        .into_iter()
        .map(|(size, ss)| (seed.clone(), size, ss))
        .collect(),
    );
}

#[test]
fn explicit_positions_and_units_match_sgdisk() {
    let cases = [
        gpt(
            r#""a":{"priority":1,"start":"1M","end":"+8M"},"b":{"priority":2,"start":"16M","end":"-8M"},"c":{"priority":3,"size":"4M","type":"8200"}"#,
        ),
        gpt(
            r#""a":{"start":"40s","end":"+100","priority":1},"b":{"size":"3M","priority":2},"c":{"size":"100%"}"#,
        ),
        gpt(r#""a":{"size":"1000K"},"b":{"size":"7"},"c":{"size":"2049"},"d":{"size":"100%"}"#),
        gpt(r#""a":{"size":"1M","type":"EF02"},"b":{"size":"0"}"#),
        gpt(
            r#""a":{"start":"+3M","end":"+1M","priority":1},"b":{"start":"0","end":"-100M","priority":2}"#,
        ),
        gpt(
            r#""a":{"size":"1G"},"b":{"size":"100%","uuid":"5a7e2c1d-0b3f-4e8a-9c6d-1f2e3a4b5c6d","attributes":[0,2,63]}"#,
        ),
        gpt(
            r#""a":{"size":"10M","type":"ea00"},"b":{"size":"10M","type":"0657fd6d-a4ab-43c4-84e5-0933c84b4f4f"},"c":{"size":"20M","type":"8304"}"#,
        ),
        gpt(r#""a":{"size":"60M"},"b":{"size":"10M"}"#),
        gpt(
            r#""a":{"start":"2M","end":"4M","priority":1},"b":{"start":"1M","end":"3M","priority":2}"#,
        ),
    ];
    let mut all = Vec::new();
    for json in &cases {
        for (size, ss) in [(64u64 << 20, 512), (64 << 20, 4096), (16 << 20, 512)] {
            all.push((json.clone(), size, ss));
        }
    }
    check_all(all);
}

/// Layouts made by a fixed pseudo-random generator, so many shapes are covered.
#[test]
fn generated_layouts_match_sgdisk() {
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let sizes = [
        "1M", "512K", "3M", "100M", "17M", "7", "2048", "10M", "1G", "5000",
    ];
    let starts = ["0", "0", "0", "1M", "+1M", "4M", "+100", "2048"];
    let ends = ["-1M", "-0", "+5M", "-12345"];
    let disks = [
        (16u64 << 20, 512u32),
        (64 << 20, 512),
        (256 << 20, 512),
        (2 << 30, 512),
        (64 << 20, 4096),
        (256 << 20, 4096),
        (2 << 30, 4096),
    ];
    let mut all = Vec::new();
    for _ in 0..60 {
        let n = 1 + next(4);
        let mut parts = Vec::new();
        for i in 0..n {
            let mut p = format!(r#""p{i}":{{"priority":{}"#, next(3));
            if next(3) == 0 {
                p.push_str(&format!(
                    r#","start":"{}","end":"{}""#,
                    starts[next(starts.len())],
                    ends[next(ends.len())]
                ));
            } else {
                p.push_str(&format!(
                    r#","start":"{}","size":"{}""#,
                    starts[next(starts.len())],
                    sizes[next(sizes.len())]
                ));
            }
            p.push('}');
            parts.push(p);
        }
        let (size, ss) = disks[next(disks.len())];
        all.push((gpt(&parts.join(",")), size, ss));
    }
    check_all(all);
}

#[test]
fn every_type_code_maps_to_sgdisks_guid() {
    let parts: Vec<String> = typecode::known_codes()
        .enumerate()
        .map(|(i, (code, _))| format!(r#""t{i:02}":{{"size":"1M","type":"{code}"}}"#))
        .collect();
    check(&gpt(&parts.join(",")), 64 << 20, 512);
}

#[test]
fn a_2_tib_sparse_disk_matches_sgdisk() {
    let seed = std::fs::read_to_string(fixture("seed.json")).unwrap();
    check_all(vec![
        (seed, 2 << 40, 512),
        (
            gpt(r#""a":{"size":"1T"},"b":{"size":"100%"}"#),
            2 << 40,
            512,
        ),
    ]);
}

/// Layouts as people write them (start 0, sizes, one 100%), generated: these
/// must all fit and match sgdisk sector for sector.
#[test]
fn generated_typical_layouts_match_sgdisk() {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let sizes = ["1M", "2M", "512K", "3M", "5M", "1000K", "4096", "333", "8M"];
    let types = ["8300", "EF00", "EF02", "8200", "8304"];
    let mut all = Vec::new();
    for _ in 0..40 {
        let n = 1 + next(5);
        let mut parts: Vec<String> = (0..n)
            .map(|i| {
                let (size, ty) = (sizes[next(sizes.len())], types[next(types.len())]);
                format!(r#""p{i}":{{"size":"{size}","type":"{ty}"}}"#)
            })
            .collect();
        if next(2) == 0 {
            parts.push(r#""rest":{"size":"100%"}"#.to_string());
        }
        let ss = [512u32, 4096][next(2)];
        all.push((gpt(&parts.join(",")), 64u64 << 20, ss));
    }
    for (json, size, ss) in &all {
        let l = Layout::from_json(json).unwrap();
        let geo = Geometry {
            size_bytes: *size,
            logical_sector_size: *ss,
        };
        let r = partition_ranges("d", &l.disks[0].partitions, geo);
        assert!(r.is_ok(), "{json}: {r:?}");
    }
    check_all(all);
}
