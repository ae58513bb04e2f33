//! Unit tests of the device-mapper contents: disko's LUKS and LVM examples as
//! disko evaluates them (exact structures, LV order, mounts and their
//! sources), nixos-anywhere's quick-start layout, and each refusal naming its
//! field.

use super::tests_btrfs::plan_on;
use super::*;

const LUKS_LVM: &str = include_str!("../../../tests/fixtures/layouts/disko-luks-lvm.json");
const LUKS_LOGIN: &str =
    include_str!("../../../tests/fixtures/layouts/disko-luks-interactive-login.json");
const LVM_SORT: &str = include_str!("../../../tests/fixtures/layouts/disko-lvm-sizes-sort.json");
const LUKS_BTRFS: &str =
    include_str!("../../../tests/fixtures/layouts/disko-luks-btrfs-subvolumes.json");
const LVM_THIN: &str = include_str!("../../../tests/fixtures/layouts/disko-lvm-thin.json");
const LUKS_MDADM: &str = include_str!("../../../tests/fixtures/layouts/disko-luks-on-mdadm.json");
const LVM_RAID: &str = include_str!("../../../tests/fixtures/layouts/disko-lvm-raid.json");

/// nixos-anywhere's quick-start `disk-config.nix`, written by hand as JSON
/// (defaults left out): BIOS boot, ESP, an lvm_pv partition, VG `pool` with
/// an ext4 `root` LV of `100%FREE` at `/`.
const QUICK_START: &str = r#"{"disko":{"devices":{
  "disk":{"main":{"type":"disk","device":"/dev/sda","content":{"type":"gpt","partitions":{
    "boot":{"size":"1M","type":"EF02"},
    "ESP":{"size":"500M","type":"EF00","content":{"type":"filesystem","format":"vfat","mountpoint":"/boot","mountOptions":["umask=0077"]}},
    "root":{"size":"100%","content":{"type":"lvm_pv","vg":"pool"}}}}}},
  "lvm_vg":{"pool":{"type":"lvm_vg","lvs":{
    "root":{"size":"100%FREE","content":{"type":"filesystem","format":"ext4","mountpoint":"/","mountOptions":["defaults"]}}}}}}}}"#;

fn ext4(mountpoint: &str) -> Content {
    Content::Filesystem(Filesystem {
        format: FsFormat::Ext4,
        mountpoint: Some(mountpoint.to_string()),
        mount_options: vec!["defaults".to_string()],
        label: None,
        uuid: None,
    })
}

fn luks_of(layout: &Layout) -> &Luks {
    layout.disks[0]
        .partitions
        .iter()
        .find_map(|p| match &p.content {
            Some(Content::Luks(l)) => Some(l),
            _ => None,
        })
        .expect("a luks partition")
}

fn lvm(vg: &str, lv: &str) -> MountSource {
    MountSource::Mapper {
        path: format!("/dev/{vg}/{lv}"),
        via: MapperVia::Lvm {
            vg: vg.to_string(),
            lv: lv.to_string(),
        },
    }
}

fn crypted() -> MountSource {
    MountSource::Mapper {
        path: "/dev/mapper/crypted".to_string(),
        via: MapperVia::Luks {
            name: "crypted".to_string(),
        },
    }
}

fn mounts(p: &Plan) -> Vec<(&str, &MountSource, &str)> {
    p.mounts
        .iter()
        .map(|m| (m.mountpoint.as_str(), &m.source, m.fs_type.as_str()))
        .collect()
}

#[test]
fn luks_lvm_parses_as_disko_evaluates_it() {
    let l = Layout::from_json(LUKS_LVM).unwrap();
    assert_eq!(
        luks_of(&l),
        &Luks {
            name: "crypted".into(),
            key_file: Some("/tmp/secret.key".into()),
            password_file: None,
            ask_password: false,
            additional_key_files: vec!["/tmp/additionalSecret.key".into()],
            allow_discards: true,
            no_read_workqueue: false,
            no_write_workqueue: false,
            format_args: LuksArgs::default(),
            open_args: LuksArgs::default(),
            initrd_unlock: true,
            content: Some(Box::new(Content::LvmPv(LvmPv { vg: "pool".into() }))),
        }
    );
    assert_eq!(l.lvm_vgs.len(), 1);
    let vg = &l.lvm_vgs[0];
    assert_eq!((vg.key.as_str(), vg.name.as_str()), ("pool", "pool"));
    let lvs: Vec<(&str, &str, LvSize, i64)> = vg
        .lvs
        .iter()
        .map(|lv| (lv.name.as_str(), lv.size.as_str(), lv.request, lv.priority))
        .collect();
    assert_eq!(
        lvs,
        vec![
            ("home", "10M", LvSize::Sectors(20_480), 1000),
            ("raw", "10M", LvSize::Sectors(20_480), 1000),
            ("root", "100%", LvSize::PercentFree(100), 1251),
        ]
    );
    assert_eq!(vg.lvs[0].content, Some(ext4("/home")));
    assert_eq!(vg.lvs[1].content, None);
    assert_eq!(vg.lvs[2].content, Some(ext4("/")));

    let p = plan_on(&l, 2 << 30).unwrap();
    let parts = &p.disks[0].partitions;
    assert_eq!(parts[0].fs_type(), Some("vfat"));
    assert_eq!(parts[1].fs_type(), Some("crypto_LUKS"));
    // Parents first across sources: / (an LV), /boot (a partition), /home (an LV).
    let boot = MountSource::Partition {
        disk: "main".into(),
        number: 1,
        label: "disk-main-ESP".into(),
    };
    assert_eq!(
        mounts(&p),
        vec![
            ("/", &lvm("pool", "root"), "ext4"),
            ("/boot", &boot, "vfat"),
            ("/home", &lvm("pool", "home"), "ext4"),
        ]
    );
    assert_eq!(
        p.luks,
        vec![LuksPlan {
            name: "crypted".into(),
            device: "/dev/disk/by-partlabel/disk-main-luks".into(),
            key_source: "key file /tmp/secret.key".into(),
            additional_key_files: vec!["/tmp/additionalSecret.key".into()],
            inner: Some("LVM2_member".into()),
        }]
    );
    assert_eq!(p.volume_groups.len(), 1);
    let vgp = &p.volume_groups[0];
    assert_eq!(vgp.name, "pool");
    assert_eq!(vgp.pvs, vec!["/dev/mapper/crypted".to_string()]);
    let lvs: Vec<(&str, &str, &str, Option<&str>)> = vgp
        .lvs
        .iter()
        .map(|lv| {
            (
                lv.name.as_str(),
                lv.size.as_str(),
                lv.path.as_str(),
                lv.inner.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        lvs,
        vec![
            ("home", "10M", "/dev/pool/home", Some("ext4")),
            ("raw", "10M", "/dev/pool/raw", None),
            ("root", "100%", "/dev/pool/root", Some("ext4")),
        ]
    );
    // The plan crosses the wire as JSON: it must come back the same.
    let back: Plan = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}

#[test]
fn luks_interactive_login_mounts_root_from_the_mapper() {
    let l = Layout::from_json(LUKS_LOGIN).unwrap();
    let luks = luks_of(&l);
    assert_eq!(luks.name, "crypted");
    assert_eq!(luks.key_file, None);
    assert_eq!(luks.password_file.as_deref(), Some("/tmp/secret.key"));
    assert!(!luks.ask_password);
    assert!(luks.allow_discards);
    assert_eq!(luks.content.as_deref(), Some(&ext4("/")));
    assert!(l.lvm_vgs.is_empty());
    let p = plan_on(&l, 2 << 30).unwrap();
    assert_eq!(mounts(&p)[0], ("/", &crypted(), "ext4"));
    assert_eq!(p.mounts[1].mountpoint, "/boot");
    assert_eq!(p.luks[0].key_source, "password file /tmp/secret.key");
    assert_eq!(p.luks[0].inner.as_deref(), Some("ext4"));
    assert!(p.volume_groups.is_empty());
}

#[test]
fn lvm_sizes_sort_creates_lvs_in_disko_order() {
    let l = Layout::from_json(LVM_SORT).unwrap();
    let order: Vec<(&str, LvSize)> = l.lvm_vgs[0]
        .lvs
        .iter()
        .map(|lv| (lv.name.as_str(), lv.request))
        .collect();
    // priority 1000 by name, then home (100%FREE, 1251).
    assert_eq!(
        order,
        vec![
            ("aaa", LvSize::Sectors(2048)),
            ("root", LvSize::Sectors(204_800)),
            ("zzz", LvSize::Sectors(2048)),
            ("home", LvSize::PercentFree(100)),
        ]
    );
    let p = plan_on(&l, 2 << 30).unwrap();
    assert_eq!(p.disks[0].partitions[1].fs_type(), Some("LVM2_member"));
    assert_eq!(
        p.volume_groups[0].pvs,
        vec!["/dev/disk/by-partlabel/disk-one-primary".to_string()]
    );
    let names: Vec<&str> = p.volume_groups[0]
        .lvs
        .iter()
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(names, ["aaa", "root", "zzz", "home"]);
    assert_eq!(
        mounts(&p),
        vec![
            ("/", &lvm("pool", "root"), "ext4"),
            ("/boot", &p.mounts[1].source, "vfat"),
            ("/home", &lvm("pool", "home"), "ext4"),
        ]
    );
    assert!(matches!(
        p.mounts[1].source,
        MountSource::Partition { number: 1, .. }
    ));
}

#[test]
fn luks_btrfs_subvolumes_mount_and_swap_from_the_mapper() {
    let l = Layout::from_json(LUKS_BTRFS).unwrap();
    let luks = luks_of(&l);
    assert_eq!(luks.key_file.as_deref(), Some("/tmp/secret.key"));
    let Some(Content::Btrfs(b)) = luks.content.as_deref() else {
        panic!("btrfs inside luks: {:?}", luks.content);
    };
    let subs: Vec<&str> = b.subvolumes.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(subs, ["home", "nix", "root", "swap"]);
    let p = plan_on(&l, 2 << 30).unwrap();
    assert_eq!(p.disks[0].partitions[1].fs_type(), Some("crypto_LUKS"));
    let got: Vec<(&str, &MountSource, String)> = p
        .mounts
        .iter()
        .map(|m| (m.mountpoint.as_str(), &m.source, m.options.join(",")))
        .collect();
    let c = crypted();
    assert_eq!(
        got,
        vec![
            ("/", &c, "compress=zstd,noatime,subvol=/root".to_string()),
            ("/.swapvol", &c, "defaults,subvol=/swap".to_string()),
            ("/boot", &p.mounts[2].source, "umask=0077".to_string()),
            (
                "/home",
                &c,
                "compress=zstd,noatime,subvol=/home".to_string()
            ),
            ("/nix", &c, "compress=zstd,noatime,subvol=/nix".to_string()),
        ]
    );
    assert_eq!(p.swapfiles.len(), 1);
    assert_eq!(p.swapfiles[0].location, "/.swapvol/swapfile");
    assert_eq!(
        p.swapfiles[0].mapper.as_deref(),
        Some("/dev/mapper/crypted")
    );
    assert_eq!(p.swapfiles[0].size_bytes, 20 << 20);
}

#[test]
fn nixos_anywhere_quick_start_parses_and_plans() {
    let l = Layout::from_json(QUICK_START).unwrap();
    let parts = &l.disks[0].partitions;
    let keys: Vec<&str> = parts.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["boot", "ESP", "root"]);
    assert_eq!(
        parts[2].content,
        Some(Content::LvmPv(LvmPv { vg: "pool".into() }))
    );
    assert_eq!(
        l.lvm_vgs,
        vec![VolumeGroup {
            key: "pool".into(),
            name: "pool".into(),
            lvs: vec![LogicalVolume {
                key: "root".into(),
                name: "root".into(),
                size: "100%FREE".into(),
                request: LvSize::PercentFree(100),
                priority: 1251,
                content: Some(ext4("/")),
            }],
        }]
    );
    let p = plan_on(&l, 4 << 30).unwrap();
    assert_eq!(mounts(&p)[0], ("/", &lvm("pool", "root"), "ext4"));
    assert_eq!(
        p.volume_groups[0].pvs,
        ["/dev/disk/by-partlabel/disk-main-root"]
    );
    let text = render(&p, "/mnt");
    assert!(text.contains("LVM PV of pool"), "{text}");
    assert!(
        text.contains("volume group pool on /dev/disk/by-partlabel/disk-main-root ("),
        "{text}"
    );
    assert!(
        text.contains("root") && text.contains("100%FREE") && text.contains("/dev/pool/root"),
        "{text}"
    );
    assert!(text.contains("/dev/pool/root"), "{text}");
}

#[test]
fn render_shows_luks_and_lvs_for_a_person() {
    let l = Layout::from_json(LUKS_LVM).unwrap();
    let text = render(&plan_on(&l, 2 << 30).unwrap(), "/mnt");
    assert!(text.contains("LUKS2 → /dev/mapper/crypted"), "{text}");
    assert!(
        text.contains("LUKS2 crypted on /dev/disk/by-partlabel/disk-main-luks → /dev/mapper/crypted (LVM2_member, key from key file /tmp/secret.key, more keys: /tmp/additionalSecret.key)"),
        "{text}"
    );
    assert!(
        text.contains("volume group pool on /dev/mapper/crypted (1.5 GiB in 4 MiB extents):"),
        "{text}"
    );
    let lv_lines: Vec<&str> = text.lines().filter(|l| l.contains("/dev/pool/")).collect();
    assert_eq!(lv_lines.len(), 5, "{text}"); // 3 LVs + 2 mounts
    assert!(
        lv_lines[0].contains("home") && lv_lines[0].contains("10M   12.0 MiB"),
        "{text}"
    );
    assert!(
        lv_lines[2].contains("root") && lv_lines[2].contains("100%"),
        "{text}"
    );
}

#[test]
fn hand_written_defaults_follow_disko() {
    // No key given: disko's askPassword default is true; LVs without priority
    // get 1000 (+251 with 100%), so "a" (100%) comes after "b".
    let l = Layout::from_json(
        r#"{"disk":{"d":{"device":"/dev/x","content":{"type":"gpt","partitions":{
            "c":{"size":"100%","content":{"type":"luks","name":"c","content":{"type":"lvm_pv","vg":"v"}}}}}}},
           "lvm_vg":{"v":{"lvs":{"a":{"size":"100%"},"b":{"size":"1G","content":{"type":"swap"}}}}}}"#,
    )
    .unwrap();
    let luks = luks_of(&l);
    assert!(luks.ask_password);
    assert!(luks.initrd_unlock);
    let names: Vec<(&str, i64)> = l.lvm_vgs[0]
        .lvs
        .iter()
        .map(|lv| (lv.name.as_str(), lv.priority))
        .collect();
    assert_eq!(names, [("b", 1000), ("a", 1251)]);
    let p = plan_on(&l, 4 << 30).unwrap();
    assert_eq!(
        p.luks[0].key_source,
        "a passphrase asked for on the terminal"
    );
    assert_eq!(p.mapper_swaps.len(), 1);
    assert_eq!(p.mapper_swaps[0].path, "/dev/v/b");
    assert!(p.swaps.is_empty());
}

#[test]
fn luks_arguments_and_settings_are_honoured() {
    let l = Layout::from_json(
        r#"{"disk":{"d":{"device":"/dev/x","content":{"type":"gpt","partitions":{
            "c":{"size":"100%","content":{"type":"luks","name":"cr","passwordFile":"/tmp/p",
              "settings":{"bypassWorkqueues":true,"crypttabExtraOpts":["tpm2-device=auto"],"preLVM":true},
              "extraFormatArgs":["--label","root-crypt","--pbkdf-memory=65536","-i","1000","--type","luks2","--pbkdf-force-iterations","5"],
              "extraOpenArgs":["--allow-discards"]}}}}}}}"#,
    )
    .unwrap();
    let luks = luks_of(&l);
    assert_eq!(
        luks.format_args,
        LuksArgs {
            label: Some("root-crypt".into()),
            pbkdf_memory_kib: Some(65536),
            iter_time_ms: Some(1000),
            force_iterations: Some(5),
            ..LuksArgs::default()
        }
    );
    assert!(luks.open_args.allow_discards);
    assert!(luks.allow_discards && luks.no_read_workqueue && luks.no_write_workqueue);
}

#[test]
fn each_refusal_names_its_field() {
    let luks = |inner: &str| {
        format!(
            r#"{{"disk":{{"d":{{"device":"/dev/x","content":{{"type":"gpt","partitions":{{"c":{{"size":"100%","content":{{"type":"luks","name":"cr",{inner}}}}}}}}}}}}}}}"#
        )
    };
    let pv_and = |vgs: &str| {
        format!(
            r#"{{"disk":{{"d":{{"device":"/dev/x","content":{{"type":"gpt","partitions":{{"c":{{"size":"100%","content":{{"type":"lvm_pv","vg":"pool"}}}}}}}}}}}},"lvm_vg":{{{vgs}}}}}"#
        )
    };
    let p = "disk.d.content.partitions.c.content";
    let cases: Vec<(String, String, &str)> = vec![
        (luks(r#""extraFormatArgs":["--cipher","aes-cbc-essiv:sha256"]"#), format!("{p}.extraFormatArgs.0"), "unsupported cryptsetup argument \"--cipher\""),
        (luks(r#""extraOpenArgs":["--hash=sha512"]"#), format!("{p}.extraOpenArgs.0"), "\"--hash=sha512\""),
        (luks(r#""extraFormatArgs":["--type","luks1"]"#), format!("{p}.extraFormatArgs.0"), "\"--type luks1\""),
        (luks(r#""extraFormatArgs":["--label"]"#), format!("{p}.extraFormatArgs.0"), "needs a value"),
        (luks(r#""extraFormatArgs":["--pbkdf-memory","lots"]"#), format!("{p}.extraFormatArgs.0"), "--pbkdf-memory"),
        (luks(&format!(r#""extraFormatArgs":["--label","{}"]"#, "x".repeat(48))), format!("{p}.extraFormatArgs.0"), "longer than 47"),
        (luks(r#""settings":{"keyFileSize":64}"#), format!("{p}.settings.keyFileSize"), "\"keyFileSize\""),
        (luks(r#""settings":{"header":"/h"}"#), format!("{p}.settings.header"), "not supported"),
        (luks(r#""settings":{"fido2":{"credential":"x"}}"#), format!("{p}.settings.fido2"), "\"fido2\""),
        (luks(r#""settings":{"keyFile":"secret.key"}"#), format!("{p}.settings.keyFile"), "not an absolute path"),
        (luks(r#""keyFile":"/a","settings":{"keyFile":"/b"}"#), format!("{p}.keyFile"), "differs from settings.keyFile"),
        (luks(r#""askPassword":false"#), format!("{p}.askPassword"), "neither settings.keyFile nor passwordFile"),
        (luks(r#""additionalKeyFiles":["/k","rel"]"#), format!("{p}.additionalKeyFiles.1"), "not an absolute path"),
        (luks(r#""content":{"type":"luks","name":"inner"}"#), format!("{p}.content.type"), "LUKS inside LUKS"),
        (luks(r#""content":{"type":"filesystem","format":"ext4","mountpoint":"x"}"#), format!("{p}.content.mountpoint"), "does not start with /"),
        (luks(r#""preCreateHook":"echo""#), format!("{p}.preCreateHook"), "hooks"),
        (r#"{"disk":{"d":{"device":"/dev/x","content":{"type":"gpt","partitions":{"c":{"size":"100%","content":{"type":"luks","name":"a/b"}}}}}}}"#.into(), format!("{p}.name"), "no '/'"),
        (r#"{"disk":{"d":{"device":"/dev/x","content":{"type":"gpt","partitions":{"c":{"size":"100%","content":{"type":"luks"}}}}}}}"#.into(), format!("{p}.name"), "missing"),
        (
            r#"{"disk":{"d":{"device":"/dev/x","content":{"type":"gpt","partitions":{"a":{"size":"1G","content":{"type":"luks","name":"same"}},"b":{"size":"1G","content":{"type":"luks","name":"same"}}}}}}}"#.into(),
            "disk.d.content.partitions.b.content.name".into(),
            "device-mapper name \"same\" is also disk.d.content.partitions.a.content.name",
        ),
        (pv_and(r#""other":{"lvs":{}}"#), format!("{p}.vg"), "names volume group \"pool\", which the layout does not define"),
        (pv_and(r#""pool":{"lvs":{}},"second":{"lvs":{}}"#), "lvm_vg.second".into(), "has no physical volume"),
        (pv_and(r#""pool":{"lvs":{}},"zz":{"name":"pool","lvs":{}}"#), "lvm_vg.zz.name".into(), "two volume groups are named \"pool\""),
        (pv_and(r#""pool":{"name":"bad name"}"#), "lvm_vg.pool.name".into(), "' ' is not allowed"),
        (pv_and(r#""pool":{"lvs":{"snapshot1":{"size":"1G"}}}"#), "lvm_vg.pool.lvs.snapshot1.name".into(), "reserved by lvm"),
        (pv_and(r#""pool":{"lvs":{"x_tmeta":{"size":"1G"}}}"#), "lvm_vg.pool.lvs.x_tmeta.name".into(), "\"_tmeta\" are reserved"),
        (pv_and(r#""pool":{"lvs":{"-x":{"size":"1G"}}}"#), "lvm_vg.pool.lvs.-x.name".into(), "starts with '-'"),
        (pv_and(r#""pool":{"lvs":{"a":{"size":"1G","name":"x"},"b":{"size":"1G","name":"x"}}}"#), "lvm_vg.pool.lvs.b.name".into(), "named twice"),
        (pv_and(r#""pool":{"lvs":{"a":{"size":"1.5%"}}}"#), "lvm_vg.pool.lvs.a.size".into(), "whole percentage"),
        (pv_and(r#""pool":{"lvs":{"a":{"size":"10%ORIGIN"}}}"#), "lvm_vg.pool.lvs.a.size".into(), "%ORIGIN"),
        (pv_and(r#""pool":{"lvs":{"a":{"size":"10X"}}}"#), "lvm_vg.pool.lvs.a.size".into(), "unknown unit"),
        (pv_and(r#""pool":{"lvs":{"a":{}}}"#), "lvm_vg.pool.lvs.a.size".into(), "missing"),
        (pv_and(r#""pool":{"lvs":{"a":{"size":"1G","lvm_type":"raid1"}}}"#), "lvm_vg.pool.lvs.a.lvm_type".into(), "only linear LVs"),
        (pv_and(r#""pool":{"lvs":{"a":{"size":"1G","lvm_type":"mirror"}}}"#), "lvm_vg.pool.lvs.a.lvm_type".into(), "lvm_type \"mirror\""),
        (pv_and(r#""pool":{"lvs":{"a":{"size":"1G","lvm_type":"thin-pool"}}}"#), "lvm_vg.pool.lvs.a.lvm_type".into(), "thin pools"),
        (pv_and(r#""pool":{"lvs":{"a":{"size":"1G","extraArgs":["--stripes","2"]}}}"#), "lvm_vg.pool.lvs.a.extraArgs.0".into(), "\"--stripes\""),
        (pv_and(r#""pool":{"lvs":{"a":{"size":"1G","content":{"type":"lvm_pv","vg":"pool"}}}}"#), "lvm_vg.pool.lvs.a.content.type".into(), "a PV inside an LV"),
        (
            pv_and(r#""pool":{"lvs":{"a":{"size":"1G","content":{"type":"luks","name":"x","content":{"type":"lvm_pv","vg":"pool"}}}}}"#),
            "lvm_vg.pool.lvs.a.content.content.type".into(),
            "a PV inside an LV",
        ),
        (
            pv_and(r#""pool":{"lvs":{"a":{"size":"1G","content":{"type":"filesystem","format":"ext4","mountpoint":"/x"}},"b":{"size":"1G","content":{"type":"filesystem","format":"ext4","mountpoint":"/x"}}}}"#),
            "lvm_vg.pool.lvs.b.content.mountpoint".into(),
            "duplicate mountpoint \"/x\" (also lvm_vg.pool.lvs.a.content.mountpoint)",
        ),
        (
            r#"{"disk":{"d":{"device":"/dev/x","content":{"type":"gpt","partitions":{"a":{"size":"1G","content":{"type":"filesystem","format":"ext4","mountpoint":"/"}},"c":{"size":"100%","content":{"type":"luks","name":"c","content":{"type":"btrfs","subvolumes":{"r":{"mountpoint":"/"}}}}}}}}}}"#.into(),
            format!("{p}.content.subvolumes.r.mountpoint"),
            "duplicate mountpoint \"/\" (also disk.d.content.partitions.a.content.mountpoint)",
        ),
        (
            r#"{"disk":{"d":{"device":"/dev/x","content":{"type":"gpt","partitions":{"c":{"size":"100%","content":{"type":"luks","name":"pool-root","content":{"type":"lvm_pv","vg":"pool"}}}}}}},"lvm_vg":{"pool":{"lvs":{"root":{"size":"1G"}}}}}"#.into(),
            format!("{p}.name"),
            "device-mapper name \"pool-root\" is also lvm_vg.pool.lvs.root.name",
        ),
    ];
    for (json, path, msg) in cases {
        let e = Layout::from_json(&json).expect_err(&json);
        assert_eq!(e.path, path, "{json}: {e}");
        assert!(e.message.contains(msg), "{json}: {e}");
    }
}

#[test]
fn disko_examples_landfall_cannot_honour_are_refused_clearly() {
    let e = Layout::from_json(LVM_THIN).unwrap_err();
    assert_eq!(e.path, "lvm_vg.mainpool.lvs.home.lvm_type", "{e}");
    assert!(
        e.message
            .contains("thin pools and thin volumes are not supported"),
        "{e}"
    );
    for text in [LUKS_MDADM, LVM_RAID] {
        let e = Layout::from_json(text).unwrap_err();
        assert_eq!(e.path, "mdadm", "{e}");
        assert!(e.message.contains("mdadm arrays are not supported"), "{e}");
    }
    // lvm-raid's VG on a plain PV (no md arrays) still fails on its raid LVs.
    let mut v: serde_json::Value = serde_json::from_str(LVM_RAID).unwrap();
    let quick: serde_json::Value = serde_json::from_str(QUICK_START).unwrap();
    v["mdadm"] = serde_json::json!({});
    v["disk"] = quick["disko"]["devices"]["disk"].clone();
    let e = Layout::from_value(&v).unwrap_err();
    assert_eq!(e.path, "lvm_vg.pool.lvs.home.lvm_type", "{e}");
    assert!(
        e.message.contains("lvm_type \"raid0\": only linear LVs"),
        "{e}"
    );
}

#[test]
fn lv_sizes_read_as_lvcreate_reads_them() {
    for (s, want) in [
        ("10M", LvSize::Sectors(20_480)),
        ("1.5G", LvSize::Sectors(3 << 20)),
        ("512k", LvSize::Sectors(1024)),
        ("16", LvSize::Sectors(16 * 2048)),
        ("4096b", LvSize::Sectors(8)),
        ("8s", LvSize::Sectors(8)),
        ("100%", LvSize::PercentFree(100)),
        ("50%FREE", LvSize::PercentFree(50)),
        ("20%VG", LvSize::PercentVg(20)),
        ("30%pvs", LvSize::PercentPvs(30)),
    ] {
        assert_eq!(LvSize::parse(s), Ok(want), "{s}");
    }
    for s in [
        "", "-1G", "+1G", "G", "1X", "1000b", "1.5%FREE", "10%LV", "0",
    ] {
        assert!(LvSize::parse(s).is_err(), "{s}");
    }
}

#[test]
fn lv_extents_follow_lvcreate_on_fresh_pvs() {
    // luks-lvm on 2 GiB: the LUKS partition is sectors 1026048-4192255
    // (1546 MiB); opened it is 16 MiB smaller (1530 MiB); the PV's extents
    // start at 1 MiB: 1529 MiB / 4 MiB = 382 extents. 10M rounds up to 3
    // extents; 100% takes the 376 left.
    let l = Layout::from_json(LUKS_LVM).unwrap();
    let p = plan_on(&l, 2 << 30).unwrap();
    let luks = &p.disks[0].partitions[1];
    assert_eq!((luks.first_lba, luks.last_lba), (1_026_048, 4_192_255));
    let vg = &p.volume_groups[0];
    assert_eq!(vg.extent_count, 382);
    let ext: Vec<u64> = vg.lvs.iter().map(|l| l.extents).collect();
    assert_eq!(ext, [3, 3, 376]);
    // lvm-sizes-sort: the PV is the partition itself, 1545 MiB after 1 MiB:
    // 386 extents; 1M → 1, 100M → 25, 1M → 1, 100%FREE → 359.
    let l = Layout::from_json(LVM_SORT).unwrap();
    let p = plan_on(&l, 2 << 30).unwrap();
    let vg = &p.volume_groups[0];
    assert_eq!(vg.extent_count, 386);
    let ext: Vec<u64> = vg.lvs.iter().map(|l| l.extents).collect();
    assert_eq!(ext, [1, 25, 1, 359]);
    let text = render(&p, "/mnt");
    assert!(
        text.contains("(1.5 GiB in 4 MiB extents)") || text.contains("in 4 MiB extents"),
        "{text}"
    );
}

#[test]
fn lvs_larger_than_the_vg_are_refused_at_plan_time() {
    let layout = |lvs: &str| {
        Layout::from_json(&format!(
            r#"{{"disk":{{"d":{{"device":"/dev/x","content":{{"type":"gpt","partitions":{{"c":{{"size":"100%","content":{{"type":"lvm_pv","vg":"pool"}}}}}}}}}}}},"lvm_vg":{{"pool":{{"lvs":{{{lvs}}}}}}}}}"#
        ))
        .unwrap()
    };
    // 64 MiB disk: the partition is 62 MiB, 61 MiB after pe_start: 15 extents.
    let ok = plan_on(&layout(r#""a":{"size":"60M"}"#), 64 << 20).unwrap();
    assert_eq!(ok.volume_groups[0].extent_count, 15);
    assert_eq!(ok.volume_groups[0].lvs[0].extents, 15);
    let e = plan_on(&layout(r#""a":{"size":"61M"}"#), 64 << 20).unwrap_err();
    assert_eq!(e.path, "lvm_vg.pool.lvs.a.size", "{e}");
    assert!(
        e.message
            .contains("does not fit: volume group pool has 60.0 MiB free of 60.0 MiB"),
        "{e}"
    );
    let e = plan_on(
        &layout(r#""a":{"size":"40M"},"b":{"size":"40M"}"#),
        64 << 20,
    )
    .unwrap_err();
    assert_eq!(e.path, "lvm_vg.pool.lvs.b.size", "{e}");
    assert!(e.message.contains("has 20.0 MiB free of 60.0 MiB"), "{e}");
    let e = plan_on(
        &layout(r#""a":{"size":"60M"},"b":{"size":"100%FREE"}"#),
        64 << 20,
    )
    .unwrap_err();
    assert_eq!(e.path, "lvm_vg.pool.lvs.b.size", "{e}");
    assert!(e.message.contains("gives no extents"), "{e}");
}

#[test]
fn contents_on_device_mapper_devices_must_fit() {
    let pv = |lvs: &str| {
        Layout::from_json(&format!(
            r#"{{"disk":{{"d":{{"device":"/dev/x","content":{{"type":"gpt","partitions":{{"c":{{"size":"100%","content":{{"type":"lvm_pv","vg":"pool"}}}}}}}}}}}},"lvm_vg":{{"pool":{{"lvs":{{{lvs}}}}}}}}}"#
        ))
        .unwrap()
    };
    // ext4 needs 8 MiB: a 4M LV (one extent) is refused, an 8M one fits.
    let e = plan_on(
        &pv(r#""a":{"size":"4M","content":{"type":"filesystem","format":"ext4"}}"#),
        64 << 20,
    )
    .unwrap_err();
    assert_eq!(e.path, "lvm_vg.pool.lvs.a.size", "{e}");
    assert!(
        e.message
            .contains("4.0 MiB is too small for ext4 (at least 8.0 MiB)"),
        "{e}"
    );
    plan_on(
        &pv(r#""a":{"size":"8M","content":{"type":"filesystem","format":"ext4"}}"#),
        64 << 20,
    )
    .unwrap();
    // A LUKS partition of 20 MiB leaves 4 MiB inside: too small for ext4.
    let luks = Layout::from_json(
        r#"{"disk":{"d":{"device":"/dev/x","content":{"type":"gpt","partitions":{"c":{"size":"20M","content":{"type":"luks","name":"c","content":{"type":"filesystem","format":"ext4"}}}}}}}}"#,
    )
    .unwrap();
    let e = plan_on(&luks, 64 << 20).unwrap_err();
    assert_eq!(e.path, "disk.d.content.partitions.c.size", "{e}");
    assert!(e.message.contains("4.0 MiB is too small for ext4"), "{e}");
    // And 16 MiB holds no LUKS2 at all.
    let luks = Layout::from_json(
        r#"{"disk":{"d":{"device":"/dev/x","content":{"type":"gpt","partitions":{"c":{"size":"16M","content":{"type":"luks","name":"c"}}}}}}}"#,
    )
    .unwrap();
    let e = plan_on(&luks, 64 << 20).unwrap_err();
    assert_eq!(e.path, "disk.d.content.partitions.c.size", "{e}");
    assert!(e.message.contains("too small for LUKS2"), "{e}");
}
