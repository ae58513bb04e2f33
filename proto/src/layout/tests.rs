//! Unit tests of the layout model against the seed's fixtures and disko's rules.

use std::collections::BTreeMap;

use super::*;

const SEED_EVALUATED: &str = include_str!("../../../tests/fixtures/layouts/seed.evaluated.json");
const SEED_HAND: &str = include_str!("../../../tests/fixtures/layouts/seed.json");

fn facts(size: u64, ss: u32) -> DiskFacts {
    DiskFacts {
        path: "/dev/test".into(),
        geometry: Geometry {
            size_bytes: size,
            logical_sector_size: ss,
        },
        existing: ExistingDisk::default(),
    }
}

fn one_disk(layout: &Layout, size: u64, ss: u32) -> Result<Plan, LayoutError> {
    let mut m = BTreeMap::new();
    for d in &layout.disks {
        let f = DiskFacts {
            path: format!("/dev/{}", d.key),
            ..facts(size, ss)
        };
        m.insert(d.key.clone(), f);
    }
    plan(layout, &m)
}

#[test]
fn seed_both_forms_parse_to_the_same_layout() {
    let a = Layout::from_json(SEED_EVALUATED).unwrap();
    let b = Layout::from_json(SEED_HAND).unwrap();
    assert_eq!(a, b);
    let d = &a.disks[0];
    let got: Vec<_> = d
        .partitions
        .iter()
        .map(|p| (p.number, p.key.as_str(), p.label.as_str(), p.priority))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "boot", "disk-main-boot", 100),
            (2, "ESP", "disk-main-ESP", 1000),
            (3, "root", "disk-main-root", 9001)
        ]
    );
    assert_eq!(
        d.partitions[2].type_guid,
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    );
    assert_eq!(d.partitions[1].end, "+512M");
    assert_eq!(d.partitions[2].end, "-0");
}

#[test]
fn seed_plan_on_2_gib() {
    let l = Layout::from_json(SEED_HAND).unwrap();
    let p = one_disk(&l, 2 << 30, 512).unwrap();
    let r: Vec<_> = p.disks[0]
        .partitions
        .iter()
        .map(|p| (p.first_lba, p.last_lba))
        .collect();
    // 4194304 sectors: last usable 4194270, aligned end 4192255.
    assert_eq!(r, vec![(2048, 4095), (4096, 1052671), (1052672, 4192255)]);
    let mps: Vec<_> = p.mounts.iter().map(|m| m.mountpoint.as_str()).collect();
    assert_eq!(mps, vec!["/", "/boot"]);
    assert!(p.is_destructive());
    let text = render(&p, "/mnt");
    assert!(
        text.contains("disk-main-ESP") && text.contains("now: blank"),
        "{text}"
    );
}

#[test]
fn ties_sort_by_name_bytes_and_long_labels_hash() {
    let l = Layout::from_json(
        r#"{"disk":{"averyveryverylongdiskname":{"device":"/dev/x","content":{"type":"gpt","partitions":{
            "b":{"size":"1M"},"a":{"size":"1M"},"Z":{"size":"1M"},"partition-with-long-name":{"size":"1M","priority":5}}}}}}"#,
    )
    .unwrap();
    let keys: Vec<_> = l.disks[0]
        .partitions
        .iter()
        .map(|p| p.key.as_str())
        .collect();
    assert_eq!(keys, vec!["partition-with-long-name", "Z", "a", "b"]);
    // "disk-averyveryverylongdiskname-partition-with-long-name" is > 36 bytes.
    let label = &l.disks[0].partitions[0].label;
    assert_eq!(label.len(), 36);
    assert_eq!(
        label,
        &default_label("averyveryverylongdiskname", "partition-with-long-name")
    );
    // sha256("disk-averyveryverylongdiskname-partition-with-long-name"), as `nix eval` of builtins.hashString gives it.
    assert_eq!(label, "0fcfc82f675cfda295135e41a298537dbe36");
    assert_eq!(
        l.disks[0].partitions[1].label,
        "disk-averyveryverylongdiskname-Z"
    );
}

#[test]
fn swap_defaults_to_8200_and_100_percent_beats_ef02() {
    let l = Layout::from_json(
        r#"{"disk":{"d":{"device":"/dev/x","content":{"type":"gpt","partitions":{
            "s":{"size":"1M","content":{"type":"swap"}},"g":{"size":"100%","type":"EF02"}}}}}}"#,
    )
    .unwrap();
    let p = &l.disks[0].partitions;
    assert_eq!((p[0].key.as_str(), p[0].type_code.as_str()), ("s", "8200"));
    assert_eq!(p[1].priority, 9001);
}

#[test]
fn fixtures_parse_and_plan() {
    for (name, text) in [
        (
            "two-disks-swap",
            include_str!("../../../tests/fixtures/layouts/two-disks-swap.json"),
        ),
        (
            "tmpfs-root",
            include_str!("../../../tests/fixtures/layouts/tmpfs-root.json"),
        ),
        (
            "explicit-start-end",
            include_str!("../../../tests/fixtures/layouts/explicit-start-end.json"),
        ),
    ] {
        let l = Layout::from_json(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        one_disk(&l, 256 << 20, 512).unwrap_or_else(|e| panic!("{name}: {e}"));
        one_disk(&l, 256 << 20, 4096).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Each invalid layout gives an error naming the field.
#[test]
fn invalid_layouts_name_the_field() {
    let gpt = |parts: &str| {
        format!(
            r#"{{"disk":{{"main":{{"device":"/dev/x","content":{{"type":"gpt","partitions":{{{parts}}}}}}}}}}}"#
        )
    };
    let cases: Vec<(String, &str, &str)> = vec![
        (gpt(r#""ESP":{"size":"512MB"}"#), "disk.main.content.partitions.ESP.size", "not a size"),
        (gpt(r#""a":{"size":"100%"},"b":{"size":"100%"}"#), "disk.main.content.partitions.b.size", "second 100%"),
        (gpt(r#""a":{"size":"1M","type":"ZZ00"}"#), "disk.main.content.partitions.a.type", "not a type"),
        (gpt(r#""a":{"size":"1M","type":"1234"}"#), "disk.main.content.partitions.a.type", "unknown partition type"),
        (
            gpt(r#""a":{"size":"1M","content":{"type":"filesystem","format":"xfs"}}"#),
            "disk.main.content.partitions.a.content.format",
            "\"xfs\" is not supported",
        ),
        (
            gpt(r#""a":{"size":"1M","content":{"type":"luks","name":"a","content":{"type":"luks","name":"b"}}}"#),
            "disk.main.content.partitions.a.content.content.type",
            "LUKS inside LUKS",
        ),
        (
            gpt(r#""a":{"size":"1M","content":{"type":"filesystem","format":"ext4","mountpoint":"boot"}}"#),
            "disk.main.content.partitions.a.content.mountpoint",
            "does not start with /",
        ),
        (
            gpt(r#""a":{"size":"1M","content":{"type":"filesystem","format":"ext4","mountpoint":"/x"}},"b":{"size":"1M","content":{"type":"filesystem","format":"ext4","mountpoint":"/x"}}"#),
            "disk.main.content.partitions.b.content.mountpoint",
            "duplicate mountpoint",
        ),
        (gpt(r#""a":{"size":"1M","label":"same"},"b":{"size":"1M","label":"same"}"#), "disk.main.content.partitions.b.label", "duplicate label"),
        (
            gpt(r#""a":{"size":"1M","content":{"type":"filesystem","format":"ext4","extraArgs":["-O","^has_journal"]}}"#),
            "disk.main.content.partitions.a.content.extraArgs.0",
            "unsupported mkfs argument \"-O\"",
        ),
        (
            gpt(r#""a":{"size":"1M","content":{"type":"filesystem","format":"ext4","postMountHook":"touch /x"}}"#),
            "disk.main.content.partitions.a.content.postMountHook",
            "hooks",
        ),
        (gpt(r#""a":{"size":"1M","start":"1.5M"}"#), "disk.main.content.partitions.a.start", "not an sgdisk position"),
        (gpt(r#""a":{"size":"1M","uuid":"nope"}"#), "disk.main.content.partitions.a.uuid", "not a GUID"),
        (r#"{"disk":{"main":{"device":"/dev/x","content":{"type":"table","format":"gpt","partitions":[]}}}}"#.into(), "disk.main.content.type", "legacy \"table\""),
        (r#"{"disk":{"main":{"device":"/dev/x","content":{"type":"zfs","pool":"z"}}}}"#.into(), "disk.main.content.type", "\"zfs\" directly on a disk"),
        (r#"{"disk":{"main":{"content":null}}}"#.into(), "disk.main.device", "missing"),
        (r#"{"zpool":{"z":{"type":"zpool"}}}"#.into(), "zpool", "ZFS pools are not supported"),
        (r#"{"mdadm":{"r":{"type":"mdadm"}}}"#.into(), "mdadm", "mdadm arrays"),
        (r#"{"lvm_vg":{"pool":{"type":"lvm_vg"}}}"#.into(), "lvm_vg.pool", "has no physical volume"),
        (r#"{"nodev":{"/":{"fsType":"proc"}}}"#.into(), "nodev./.fsType", "\"proc\" is not supported"),
        (gpt(r#""a":{"size":"1M","content":{"type":"zfs","pool":"z"}}"#), "disk.main.content.partitions.a.content.type", "\"zfs\" is not supported"),
        (gpt(r#""a":{"size":"1M","content":{"type":"mdraid","name":"r"}}"#), "disk.main.content.partitions.a.content.type", "\"mdraid\" is not supported"),
        (gpt(r#""a":{"size":"1M","content":{"type":"lvm_pv","vg":"v"}}"#), "disk.main.content.partitions.a.content.vg", "does not define"),
        ("[1,2]".into(), "", "expected an attribute set"),
    ];
    for (json, path, msg) in cases {
        let e = Layout::from_json(&json).expect_err(&json);
        assert_eq!(e.path, path, "{json}: {e}");
        assert!(e.message.contains(msg), "{json}: {e}");
    }
}

#[test]
fn planning_errors_name_the_field() {
    let l = Layout::from_json(SEED_HAND).unwrap();
    let e = one_disk(&l, 256 << 20, 512).unwrap_err();
    assert_eq!(e.path, "disk.main.content.partitions.ESP.size");
    assert!(e.message.contains("does not fit"), "{e}");
    let l = Layout::from_json(
        r#"{"disk":{"m":{"device":"/dev/x","content":{"type":"gpt","partitions":{"a":{"start":"1M","end":"+4M"},"b":{"start":"2M","end":"+1M"}}}}}}"#,
    )
    .unwrap();
    let e = one_disk(&l, 64 << 20, 512).unwrap_err();
    assert_eq!(e.path, "disk.m.content.partitions.b.start", "{e}");
    let e = one_disk(&l, 16 << 10, 512).unwrap_err();
    assert_eq!(e.path, "disk.m", "{e}");
    let l = Layout::from_json(
        r#"{"disk":{"m":{"device":"/dev/x","content":{"type":"gpt","partitions":{"a":{"size":"4M","content":{"type":"filesystem","format":"ext4"}}}}}}}"#,
    )
    .unwrap();
    let e = one_disk(&l, 64 << 20, 512).unwrap_err();
    assert_eq!(e.path, "disk.m.content.partitions.a.size", "{e}");
    assert!(e.message.contains("too small for ext4"), "{e}");
}

#[test]
fn plan_recognises_an_applied_disk() {
    let l = Layout::from_json(SEED_HAND).unwrap();
    let p = one_disk(&l, 2 << 30, 512).unwrap();
    let existing = ExistingDisk {
        table: Some("gpt".into()),
        partitions: p.disks[0]
            .partitions
            .iter()
            .map(|q| ExistingPartition {
                number: q.number,
                first_lba: q.first_lba,
                last_lba: q.last_lba,
                type_guid: q.type_guid.to_ascii_lowercase(),
                label: q.label.clone(),
                part_uuid: "00000000-0000-0000-0000-000000000001".into(),
                fs_type: q.fs_type().map(str::to_string),
                fs_label: None,
                fs_uuid: None,
            })
            .collect(),
        signatures: vec![],
        disk_guid: None,
    };
    let mut m = BTreeMap::new();
    m.insert(
        "main".to_string(),
        DiskFacts {
            existing: existing.clone(),
            ..facts(2 << 30, 512)
        },
    );
    let p2 = plan(&l, &m).unwrap();
    assert!(p2.already_applied());
    assert!(render(&p2, "/mnt").contains("already applied"));
    let mut changed = existing;
    changed.partitions[2].fs_type = None;
    m.insert(
        "main".to_string(),
        DiskFacts {
            existing: changed,
            ..facts(2 << 30, 512)
        },
    );
    assert!(!plan(&l, &m).unwrap().already_applied());
}

#[test]
fn random_encryption_swap_is_neither_formatted_nor_activated() {
    let l = Layout::from_json(
        r#"{"disk":{"d":{"device":"/dev/x","content":{"type":"gpt","partitions":{
            "s":{"size":"16M","content":{"type":"swap","randomEncryption":true}},
            "t":{"size":"16M","content":{"type":"swap","priority":3,"discardPolicy":"once"}}}}}}}"#,
    )
    .unwrap();
    let p = one_disk(&l, 64 << 20, 512).unwrap();
    let d = &p.disks[0];
    assert_eq!(d.partitions[0].fs_type(), None);
    assert_eq!(
        d.partitions[0].type_guid,
        "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
    );
    assert_eq!(d.partitions[1].fs_type(), Some("swap"));
    assert_eq!(p.swaps.len(), 1);
    assert_eq!(
        (p.swaps[0].priority, p.swaps[0].discard_policy.as_deref()),
        (Some(3), Some("once"))
    );
}

#[test]
fn a_disk_without_content_is_only_wiped() {
    let l = Layout::from_json(r#"{"disk":{"spare":{"device":"/dev/sdb"}}}"#).unwrap();
    assert!(!l.disks[0].gpt);
    let p = one_disk(&l, 64 << 20, 512).unwrap();
    assert!(
        p.already_applied(),
        "a blank disk already is what the layout asks"
    );
    assert!(render(&p, "/mnt").contains("only wiped"));
    let mut m = BTreeMap::new();
    let mut f = facts(64 << 20, 512);
    f.existing.signatures = vec!["ext4".into()];
    m.insert("spare".to_string(), f);
    assert!(!plan(&l, &m).unwrap().already_applied());
}

#[test]
fn plan_serialises() {
    let l = Layout::from_json(SEED_EVALUATED).unwrap();
    let p = one_disk(&l, 2 << 30, 4096).unwrap();
    let json = serde_json::to_string(&p).unwrap();
    let back: Plan = serde_json::from_str(&json).unwrap();
    assert_eq!(p, back);
}

/// Found by `fuzz/run.sh layout_plan`: an end far beyond the disk ("30E")
/// overflowed the size in the "does not fit" message.
#[test]
fn an_end_beyond_any_disk_is_an_error_not_an_overflow() {
    let l = Layout::from_json(
        r#"{"disk":{"main":{"device":"/dev/sda","content":{"type":"gpt","partitions":{"first":{"start":"1M","end":"30E","content":{"type":"filesystem","format":"ext4"}}}}}}}"#,
    )
    .unwrap();
    for (size, ss) in [(16 << 30, 512), (u64::MAX, 512), (1 << 40, 4096)] {
        let e = one_disk(&l, size, ss).unwrap_err();
        assert_eq!(e.path, "disk.main.content.partitions.first.end", "{e}");
        assert!(e.message.contains("does not fit"), "{e}");
    }
}

/// A corrupt GPT on the target may list a partition ending at the last
/// possible LBA; the plan text must still render.
#[test]
fn render_survives_an_existing_partition_at_the_last_lba() {
    let l = Layout::from_json(SEED_HAND).unwrap();
    let mut f = facts(2 << 30, 512);
    f.existing.table = Some("gpt".into());
    f.existing.partitions.push(ExistingPartition {
        number: 1,
        first_lba: 0,
        last_lba: u64::MAX,
        type_guid: "0FC63DAF-8483-4772-8E79-3D69D8477DE4".into(),
        label: "x".into(),
        part_uuid: "00000000-0000-0000-0000-000000000001".into(),
        fs_type: None,
        fs_label: None,
        fs_uuid: None,
    });
    let mut m = BTreeMap::new();
    m.insert(l.disks[0].key.clone(), f);
    let p = plan(&l, &m).unwrap();
    assert!(render(&p, "/mnt").contains("WILL BE DESTROYED"));
}

/// A disk as probed after `disk` was applied to it (GPT, the planned
/// partitions with their filesystem types, GUID `disk_guid`).
pub(super) fn existing_as_planned(disk: &DiskPlan, disk_guid: Option<String>) -> ExistingDisk {
    ExistingDisk {
        table: Some("gpt".into()),
        partitions: disk
            .partitions
            .iter()
            .map(|q| ExistingPartition {
                number: q.number,
                first_lba: q.first_lba,
                last_lba: q.last_lba,
                type_guid: q.type_guid.clone(),
                label: q.label.clone(),
                part_uuid: "00000000-0000-0000-0000-000000000001".into(),
                fs_type: q.fs_type().map(str::to_string),
                fs_label: None,
                fs_uuid: None,
            })
            .collect(),
        signatures: vec![],
        disk_guid,
    }
}

/// The seed layout on a 2 GiB disk that holds it already, its GPT carrying
/// `disk_guid`: the facts the agent would probe.
fn seed_found_with_guid(disk_guid: Option<String>) -> (Layout, BTreeMap<String, DiskFacts>) {
    let l = Layout::from_json(SEED_HAND).unwrap();
    let p = one_disk(&l, 2 << 30, 512).unwrap();
    let existing = existing_as_planned(&p.disks[0], disk_guid);
    let mut m = BTreeMap::new();
    m.insert(
        "main".to_string(),
        DiskFacts {
            existing,
            ..facts(2 << 30, 512)
        },
    );
    (l, m)
}

#[test]
fn a_disk_formatted_by_this_install_is_kept() {
    let (l, m) = seed_found_with_guid(Some(install_disk_guid("this", "main")));
    let p = plan_with(&l, &m, &PlanOptions::install("this", false)).unwrap();
    assert!(p.already_applied(), "{p:?}");
    assert!(!p.is_destructive());
    assert!(!p.disks[0].foreign_layout);
    assert_eq!(
        p.disks[0].disk_guid.as_deref(),
        Some(install_disk_guid("this", "main").as_str())
    );
    let text = render(&p, "/mnt");
    assert!(text.contains("already applied"), "{text}");
    assert!(!text.contains(FOREIGN_LAYOUT), "{text}");
}

#[test]
fn the_same_layout_from_another_install_is_destroyed_and_recreated() {
    for found in [Some(install_disk_guid("old", "main")), None] {
        let (l, m) = seed_found_with_guid(found.clone());
        let p = plan_with(&l, &m, &PlanOptions::install("this", false)).unwrap();
        assert!(p.is_destructive(), "{found:?}");
        let d = &p.disks[0];
        assert!(!d.already_applied && d.foreign_layout, "{d:?}");
        // The new table gets this install's GUID.
        assert_eq!(d.disk_guid, Some(install_disk_guid("this", "main")));
        let text = render(&p, "/mnt");
        assert!(text.contains(FOREIGN_LAYOUT), "{text}");
        assert!(text.contains("WILL BE DESTROYED"), "{text}");
        assert!(text.contains("will create GPT"), "{text}");
    }
    // No install ID at all trusts nothing either.
    let (l, m) = seed_found_with_guid(Some(install_disk_guid("old", "main")));
    let p = plan_with(&l, &m, &PlanOptions::install("", false)).unwrap();
    assert!(p.is_destructive() && p.disks[0].foreign_layout);
    assert_eq!(p.disks[0].disk_guid, None);
}

#[test]
fn keep_existing_keeps_the_layout_whoever_formatted_it() {
    let (l, m) = seed_found_with_guid(Some(install_disk_guid("old", "main")));
    let p = plan_with(&l, &m, &PlanOptions::install("this", true)).unwrap();
    assert!(p.already_applied(), "{p:?}");
    assert!(!p.disks[0].foreign_layout);
    let text = render(&p, "/mnt");
    assert!(text.contains("kept with --keep-existing"), "{text}");
    // The what-if planner keeps it as well.
    assert!(plan(&l, &m).unwrap().already_applied());
}

#[test]
fn a_different_layout_is_destroyed_whatever_its_guid() {
    let (l, mut m) = seed_found_with_guid(Some(install_disk_guid("this", "main")));
    m.get_mut("main").unwrap().existing.partitions[2].fs_type = None;
    for keep in [false, true] {
        let p = plan_with(&l, &m, &PlanOptions::install("this", keep)).unwrap();
        assert!(p.is_destructive(), "keep={keep}");
        assert!(!p.disks[0].foreign_layout, "not the layout: not 'foreign'");
    }
}

#[test]
fn destroy_false_refuses_a_foreign_copy_of_the_layout() {
    let json = SEED_HAND.replacen(
        "\"type\": \"disk\"",
        "\"type\": \"disk\", \"destroy\": false",
        1,
    );
    let (_, m) = seed_found_with_guid(Some(install_disk_guid("old", "main")));
    let Ok(l) = Layout::from_json(&json) else {
        panic!("{json}")
    };
    assert!(
        !l.disks[0].destroy,
        "the fixture's disk entry was not changed: {json}"
    );
    let e = plan_with(&l, &m, &PlanOptions::install("this", false)).unwrap_err();
    assert_eq!(e.path, "disk.main.destroy", "{e}");
    assert!(e.message.contains("not formatted by this install"), "{e}");
    assert!(plan_with(&l, &m, &PlanOptions::install("this", true))
        .unwrap()
        .already_applied());
}

#[test]
fn the_same_plan_twice_has_one_digest_and_a_change_another() {
    let layout = Layout::from_json(
        r#"{"disk":{"main":{"device":"/dev/vda","content":{"type":"gpt","partitions":{
            "root":{"size":"100%","content":{"type":"filesystem","format":"ext4","mountpoint":"/"}}}}}}}"#,
    )
    .unwrap();
    let facts = blank_disk_facts(&layout, 1 << 30);
    let a = plan(&layout, &facts).unwrap();
    let b = plan(&layout, &facts).unwrap();
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.digest().len(), 64);
    let bigger = blank_disk_facts(&layout, 2 << 30);
    let c = plan(&layout, &bigger).unwrap();
    assert_ne!(a.digest(), c.digest());
}
