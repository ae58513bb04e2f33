//! Unit tests of the btrfs content: disko's btrfs examples as disko evaluates
//! them, the plan's mounts and swapfiles, and each refusal naming its field.

use super::*;

const SUBVOLUMES: &str =
    include_str!("../../../tests/fixtures/layouts/disko-btrfs-subvolumes.json");
const ONLY_ROOT: &str =
    include_str!("../../../tests/fixtures/layouts/disko-btrfs-only-root-subvolume.json");
const LUKS_SUBVOLUMES: &str =
    include_str!("../../../tests/fixtures/layouts/disko-luks-btrfs-subvolumes.json");
const LUKS_RAID: &str = include_str!("../../../tests/fixtures/layouts/disko-luks-btrfs-raid.json");

/// The plan of `layout` with every disk blank and `size` bytes (the dm tests use it too).
pub(super) fn plan_on(layout: &Layout, size: u64) -> Result<Plan, LayoutError> {
    plan(layout, &blank_disk_facts(layout, size))
}

fn btrfs_of(layout: &Layout) -> &Btrfs {
    layout.disks[0]
        .partitions
        .iter()
        .find_map(|p| match &p.content {
            Some(Content::Btrfs(b)) => Some(b),
            _ => None,
        })
        .expect("a btrfs partition")
}

#[test]
fn disko_btrfs_subvolumes_parses_as_disko_evaluates_it() {
    let l = Layout::from_json(SUBVOLUMES).unwrap();
    let b = btrfs_of(&l);
    // `-f` only forces mkfs.btrfs; no label, checksum or profile asked.
    assert_eq!(
        (b.label.as_deref(), b.csum, b.metadata, b.data),
        (None, None, None, None)
    );
    assert_eq!(b.mountpoint.as_deref(), Some("/partition-root"));
    let subs: Vec<(&str, &str, Option<&str>)> = b
        .subvolumes
        .iter()
        .map(|s| (s.name.as_str(), s.path.as_str(), s.mountpoint.as_deref()))
        .collect();
    assert_eq!(
        subs,
        vec![
            ("/home", "home", Some("/home")),
            ("/home/user", "home/user", None),
            ("/nix", "nix", Some("/nix")),
            ("/rootfs", "rootfs", Some("/")),
            ("/swap", "swap", Some("/.swapvol")),
            ("/test", "test", None),
        ]
    );
    let top: Vec<(&str, u64)> = b
        .swap
        .iter()
        .map(|f| (f.path.as_str(), f.size_bytes))
        .collect();
    assert_eq!(top, vec![("swapfile", 20 << 20), ("swapfile1", 20 << 20)]);
    let in_swap: Vec<&str> = b.subvolumes[4]
        .swap
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(in_swap, vec!["swapfile", "rel-path"]);
}

#[test]
fn disko_btrfs_subvolumes_plans_mounts_in_order_with_subvol_options() {
    let l = Layout::from_json(SUBVOLUMES).unwrap();
    let p = plan_on(&l, 2 << 30).unwrap();
    let root = p.disks[0]
        .partitions
        .iter()
        .find(|q| q.key == "root")
        .unwrap();
    assert_eq!(root.fs_type(), Some("btrfs"));
    let mounts: Vec<(&str, &str, String)> = p
        .mounts
        .iter()
        .map(|m| {
            (
                m.mountpoint.as_str(),
                m.fs_type.as_str(),
                m.options.join(","),
            )
        })
        .collect();
    assert_eq!(
        mounts,
        vec![
            ("/", "btrfs", "defaults,subvol=/rootfs".to_string()),
            ("/.swapvol", "btrfs", "defaults,subvol=/swap".to_string()),
            ("/boot", "vfat", "umask=0077".to_string()),
            ("/home", "btrfs", "compress=zstd,subvol=/home".to_string()),
            (
                "/nix",
                "btrfs",
                "compress=zstd,noatime,subvol=/nix".to_string()
            ),
            ("/partition-root", "btrfs", "defaults".to_string()),
        ]
    );
    let files: Vec<(Option<&str>, &str, &str)> = p
        .swapfiles
        .iter()
        .map(|s| (s.subvolume.as_deref(), s.file.as_str(), s.location.as_str()))
        .collect();
    assert_eq!(
        files,
        vec![
            (None, "swapfile", "/partition-root/swapfile"),
            (None, "swapfile1", "/partition-root/swapfile1"),
            (Some("swap"), "swapfile", "/.swapvol/swapfile"),
            (Some("swap"), "rel-path", "/.swapvol/rel-path"),
        ]
    );
    assert!(p
        .swapfiles
        .iter()
        .all(|s| s.label == "disk-main-root" && s.number == 2));
    let text = render(&p, "/mnt");
    assert!(
        text.contains("subvolumes home home/user nix rootfs swap test"),
        "{text}"
    );
    assert!(
        text.contains("swapfile: /mnt/.swapvol/rel-path (20.0 MiB"),
        "{text}"
    );
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<Plan>(&json).unwrap(), p);
}

#[test]
fn disko_btrfs_only_root_mounts_the_top_level_without_subvol() {
    let l = Layout::from_json(ONLY_ROOT).unwrap();
    let b = btrfs_of(&l);
    assert!(b.subvolumes.is_empty() && b.swap.is_empty());
    let p = plan_on(&l, 2 << 30).unwrap();
    let root = &p.mounts[0];
    assert_eq!(
        (
            root.mountpoint.as_str(),
            root.fs_type.as_str(),
            root.options.clone()
        ),
        (
            "/",
            "btrfs",
            vec!["compress=zstd".to_string(), "noatime".to_string()]
        )
    );
    assert!(p.swapfiles.is_empty());
}

#[test]
fn disko_luks_btrfs_raid_is_refused_on_its_raid_profile() {
    // luks-btrfs-subvolumes parses since LUKS is modelled (tests_dm); the
    // raid example still asks for a two-device profile.
    assert!(Layout::from_json(LUKS_SUBVOLUMES).is_ok());
    let e = Layout::from_json(LUKS_RAID).unwrap_err();
    assert_eq!(
        e.path, "disk.disk2.content.partitions.crypt_p2.content.content.extraArgs.0",
        "{e}"
    );
    assert!(e.message.contains("raid1"), "{e}");
}

#[test]
fn extra_args_become_mkfs_options() {
    let l = Layout::from_json(&one(
        r#""extraArgs":["-f","-L","nixos","--csum","xxhash","-m","dup","--data=single"]"#,
    ))
    .unwrap();
    let b = btrfs_of(&l);
    assert_eq!(b.label.as_deref(), Some("nixos"));
    assert_eq!(b.csum, Some(BtrfsCsum::Xxhash));
    assert_eq!(b.metadata, Some(BtrfsProfile::Dup));
    assert_eq!(b.data, Some(BtrfsProfile::Single));
    let l = Layout::from_json(&one(
        r#""extraArgs":["--label","x","--checksum","blake2","-d","DUP"]"#,
    ))
    .unwrap();
    let b = btrfs_of(&l);
    assert_eq!(
        (b.label.as_deref(), b.csum, b.data),
        (Some("x"), Some(BtrfsCsum::Blake2), Some(BtrfsProfile::Dup))
    );
}

#[test]
fn names_with_and_without_a_slash_and_nested_ones_sort_parents_first() {
    let l = Layout::from_json(&one(
        r#""subvolumes":{"@nix":{"mountpoint":"/nix"},"a/b/c":{},"a":{"name":"/a"},"z":{"name":"a/b"}}"#,
    ))
    .unwrap();
    let paths: Vec<&str> = btrfs_of(&l)
        .subvolumes
        .iter()
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(paths, vec!["@nix", "a", "a/b", "a/b/c"]);
    assert_eq!(
        subvolume_path_for_test("/home/user"),
        Ok("home/user".to_string())
    );
}

fn subvolume_path_for_test(name: &str) -> Result<String, String> {
    super::btrfs::subvolume_path(name)
}

/// A one-partition layout whose 100% partition is btrfs with `fields`.
fn one(fields: &str) -> String {
    let sep = if fields.is_empty() { "" } else { "," };
    format!(
        r#"{{"disk":{{"main":{{"device":"/dev/x","content":{{"type":"gpt","partitions":{{"root":{{"size":"100%","content":{{"type":"btrfs"{sep}{fields}}}}}}}}}}}}}}}"#
    )
}

/// Each refused btrfs layout names the field.
#[test]
fn invalid_btrfs_names_the_field() {
    let c = "disk.main.content.partitions.root.content";
    let cases: Vec<(String, String, &str)> = vec![
        (
            one(r#""extraArgs":["-O","quota"]"#),
            format!("{c}.extraArgs.0"),
            "unsupported mkfs.btrfs argument \"-O\"",
        ),
        (
            one(r#""extraArgs":["-f","--mixed"]"#),
            format!("{c}.extraArgs.1"),
            "unsupported mkfs.btrfs argument \"--mixed\"",
        ),
        (
            one(r#""extraArgs":["-d","raid1"]"#),
            format!("{c}.extraArgs.0"),
            "\"raid1\" is not supported on one device",
        ),
        (
            one(r#""extraArgs":["--csum","md5"]"#),
            format!("{c}.extraArgs.0"),
            "unknown btrfs checksum \"md5\"",
        ),
        (
            one(r#""extraArgs":["-L"]"#),
            format!("{c}.extraArgs.0"),
            "needs a value",
        ),
        (
            one(r#""subvolumes":{"/a/../b":{}}"#),
            format!("{c}.subvolumes./a/../b"),
            "must not contain . or ..",
        ),
        (
            one(r#""subvolumes":{"x":{"name":"/a//b"}}"#),
            format!("{c}.subvolumes.x.name"),
            "empty path component",
        ),
        (
            one(r#""subvolumes":{"x":{"name":"a/"}}"#),
            format!("{c}.subvolumes.x.name"),
            "empty path component",
        ),
        (
            one(r#""subvolumes":{"/":{}}"#),
            format!("{c}.subvolumes./"),
            "names the top level",
        ),
        (
            one(r#""subvolumes":{"/nix":{},"nix":{}}"#),
            format!("{c}.subvolumes.nix.name"),
            "named twice",
        ),
        (
            one(r#""subvolumes":{"a":{"mountpoint":"/x"},"b":{"mountpoint":"/x"}}"#),
            format!("{c}.subvolumes.b.mountpoint"),
            "duplicate mountpoint \"/x\"",
        ),
        (
            one(r#""mountpoint":"/","subvolumes":{"a":{"mountpoint":"/"}}"#),
            format!("{c}.subvolumes.a.mountpoint"),
            "duplicate mountpoint \"/\"",
        ),
        (
            one(r#""subvolumes":{"a":{"extraArgs":["-i","1/0"]}}"#),
            format!("{c}.subvolumes.a.extraArgs.0"),
            "\"-i\"",
        ),
        (
            one(r#""subvolumes":{"a":{"mountpoint":"/a","swap":{"s":{"size":"1.5G"}}}}"#),
            format!("{c}.subvolumes.a.swap.s.size"),
            "\"1.5G\" is not a size",
        ),
        (
            one(r#""subvolumes":{"a":{"mountpoint":"/a","swap":{"s":{"size":"512"}}}}"#),
            format!("{c}.subvolumes.a.swap.s.size"),
            "not a size",
        ),
        (
            one(r#""subvolumes":{"a":{"mountpoint":"/a","swap":{"s":{"size":""}}}}"#),
            format!("{c}.subvolumes.a.swap.s.size"),
            "not a size",
        ),
        (
            one(r#""subvolumes":{"a":{"mountpoint":"/a","swap":{"s":{"size":"4K"}}}}"#),
            format!("{c}.subvolumes.a.swap.s.size"),
            "ten pages",
        ),
        (
            one(r#""subvolumes":{"a":{"swap":{"s":{"size":"1M"}}}}"#),
            format!("{c}.subvolumes.a.swap.s"),
            "needs a mountpoint",
        ),
        (
            one(r#""mountpoint":"/t","swap":{"s":{"size":"1M","path":"d/s"}}"#),
            format!("{c}.swap.s.path"),
            "not a file name",
        ),
        (
            one(r#""mountpoint":"/t","swap":{"s":{"size":"1M","options":["discard"]}}"#),
            format!("{c}.swap.s.options.0"),
            "\"discard\" is not supported",
        ),
        (
            one(r#""mountpoint":"/t","swap":{"s":{"size":"1M","priority":-2}}"#),
            format!("{c}.swap.s.priority"),
            "not a swap priority",
        ),
        (
            one(
                r#""mountpoint":"/t","swap":{"a":{"size":"1M","path":"f"},"b":{"size":"1M","path":"f"}}"#,
            ),
            format!("{c}.swap.b.path"),
            "also swap.a",
        ),
        (
            one(r#""extraArgs":["-d","dup"],"mountpoint":"/t","swap":{"s":{"size":"1M"}}"#),
            format!("{c}.swap.s"),
            "single data profile",
        ),
        (
            one(r#""mountOptions":["a,b"]"#),
            format!("{c}.mountOptions.0"),
            "no comma",
        ),
        (
            one(r#""postMountHook":"x""#),
            format!("{c}.postMountHook"),
            "hooks",
        ),
    ];
    for (json, path, msg) in cases {
        let e = Layout::from_json(&json).expect_err(&json);
        assert_eq!(e.path, path, "{json}: {e}");
        assert!(e.message.contains(msg), "{json}: {e}");
    }
}

#[test]
fn a_swapfile_bigger_than_the_partition_is_refused_when_planning() {
    let l = Layout::from_json(&one(
        r#""mountpoint":"/","swap":{"a":{"size":"150M"}},"subvolumes":{"s":{"mountpoint":"/s","swap":{"b":{"size":"120M"}}}}"#,
    ))
    .unwrap();
    // 256 MiB disk: the partition holds a little under 255 MiB; 150M fits, 150M+120M does not.
    let e = plan_on(&l, 256 << 20).unwrap_err();
    assert_eq!(
        e.path,
        "disk.main.content.partitions.root.content.subvolumes.s.swap.b.size"
    );
    assert!(e.message.contains("does not fit"), "{e}");
    assert!(plan_on(&l, 512 << 20).is_ok());
    // Below mkfs.btrfs's minimum device size the partition itself is refused.
    let e = plan_on(&l, 100 << 20).unwrap_err();
    assert_eq!(e.path, "disk.main.content.partitions.root.size");
    assert!(e.message.contains("too small for btrfs"), "{e}");
}

#[test]
fn an_applied_btrfs_disk_is_recognised() {
    let l = Layout::from_json(ONLY_ROOT).unwrap();
    let p = plan_on(&l, 2 << 30).unwrap();
    let existing = super::tests::existing_as_planned(&p.disks[0], None);
    assert!(matches_existing(&p.disks[0].partitions, &existing));
    let mut ext4 = existing.clone();
    ext4.partitions[1].fs_type = Some("ext4".into());
    assert!(!matches_existing(&p.disks[0].partitions, &ext4));
}
