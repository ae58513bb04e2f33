//! Invalid layouts are refused before anything is written: each error names
//! the field, and the disk image is byte-identical afterwards.

use crate::common;

use common::*;

fn gpt(parts: &str) -> String {
    format!(
        r#"{{"disk":{{"main":{{"device":"/dev/x","content":{{"type":"gpt","partitions":{{{parts}}}}}}}}}}}"#
    )
}

fn seed_like(extra: &str) -> String {
    gpt(&format!(
        r#""boot":{{"size":"1M","type":"EF02"}},"ESP":{{"size":"32M","type":"EF00","content":{{"type":"filesystem","format":"vfat","mountpoint":"/boot"}}}}{extra}"#
    ))
}

#[test]
fn invalid_layouts_are_refused_and_the_disk_is_untouched() {
    let cases: Vec<(String, &str, &str)> = vec![
        (gpt(r#""ESP":{"size":"2G"}"#), "disk.main.content.partitions.ESP.size", "does not fit"),
        (gpt(r#""ESP":{"size":"512MB"}"#), "disk.main.content.partitions.ESP.size", "is not a size"),
        (seed_like(r#","a":{"size":"100%"},"b":{"size":"100%"}"#), "disk.main.content.partitions.b.size", "second 100%"),
        (
            gpt(r#""a":{"priority":1,"start":"1M","end":"+8M"},"b":{"priority":2,"start":"4M","end":"+1M"}"#),
            "disk.main.content.partitions.b.start",
            "not free",
        ),
        (gpt(r#""a":{"size":"1M","label":"x"},"b":{"size":"1M","label":"x"}"#), "disk.main.content.partitions.b.label", "duplicate label"),
        (
            seed_like(r#","root":{"size":"1M","content":{"type":"filesystem","format":"ext4","mountpoint":"/boot"}}"#),
            "disk.main.content.partitions.root.content.mountpoint",
            "duplicate mountpoint",
        ),
        (
            gpt(r#""root":{"size":"4M","content":{"type":"filesystem","format":"ext4","mountpoint":"root"}}"#),
            "disk.main.content.partitions.root.content.mountpoint",
            "does not start with /",
        ),
        (
            gpt(r#""root":{"size":"4M","content":{"type":"filesystem","format":"xfs"}}"#),
            "disk.main.content.partitions.root.content.format",
            "\"xfs\" is not supported",
        ),
        (gpt(r#""root":{"size":"4M","type":"ZZZZ"}"#), "disk.main.content.partitions.root.type", "is not a type"),
        (gpt(r#""root":{"size":"4M","type":"FFFF"}"#), "disk.main.content.partitions.root.type", "unknown partition type code"),
        (
            gpt(r#""crypt":{"size":"4M","content":{"type":"luks","name":"c","extraFormatArgs":["--cipher","aes-cbc-plain"]}}"#),
            "disk.main.content.partitions.crypt.content.extraFormatArgs.0",
            "unsupported cryptsetup argument \"--cipher\"",
        ),
        (gpt(r#""pv":{"size":"4M","content":{"type":"lvm_pv","vg":"v"}}"#), "disk.main.content.partitions.pv.content.vg", "which the layout does not define"),
        (
            gpt(r#""crypt":{"size":"16M","content":{"type":"luks","name":"c"}}"#),
            "disk.main.content.partitions.crypt.size",
            "too small for LUKS2",
        ),
        (
            r#"{"disk":{"main":{"device":"/dev/x","content":{"type":"gpt","partitions":{"pv":{"size":"8M","content":{"type":"lvm_pv","vg":"v"}}}}}},"lvm_vg":{"v":{"lvs":{"root":{"size":"8M"}}}}}"#.into(),
            "lvm_vg.v.lvs.root.size",
            "does not fit: volume group v has 4.0 MiB free of 4.0 MiB",
        ),
        (
            r#"{"disk":{"main":{"device":"/dev/x","content":{"type":"gpt","partitions":{"pv":{"size":"8M","content":{"type":"lvm_pv","vg":"v"}}}}}},"lvm_vg":{"v":{"lvs":{"pvmove0":{"size":"1M"}}}}}"#.into(),
            "lvm_vg.v.lvs.pvmove0.name",
            "reserved by lvm",
        ),
        (
            r#"{"disk":{"main":{"device":"/dev/x","content":{"type":"gpt","partitions":{"a":{"size":"8M","content":{"type":"lvm_pv","vg":"a"}},"b":{"size":"8M","content":{"type":"lvm_pv","vg":"b"}}}}}},"lvm_vg":{"a":{"name":"pool","lvs":{"r":{"size":"4M"}}},"b":{"name":"pool","lvs":{"s":{"size":"4M"}}}}}"#.into(),
            "",
            "two volume groups are named \"pool\"",
        ),
        (gpt(r#""r":{"size":"4M","content":{"type":"mdraid","name":"md"}}"#), "disk.main.content.partitions.r.content.type", "\"mdraid\""),
        (
            gpt(r#""b":{"size":"4M","content":{"type":"btrfs","extraArgs":["-O","quota"]}}"#),
            "disk.main.content.partitions.b.content.extraArgs.0",
            "unsupported mkfs.btrfs argument \"-O\"",
        ),
        (
            gpt(r#""b":{"size":"4M","content":{"type":"btrfs","subvolumes":{"/a/../b":{}}}}"#),
            "disk.main.content.partitions.b.content.subvolumes./a/../b",
            "must not contain . or ..",
        ),
        (gpt(r#""z":{"size":"4M","content":{"type":"zfs","pool":"tank"}}"#), "disk.main.content.partitions.z.content.type", "\"zfs\""),
        (r#"{"disk":{"main":{"device":"/dev/x","content":{"type":"table","format":"gpt","partitions":[]}}}}"#.into(), "disk.main.content.type", "legacy"),
        (
            r#"{"disk":{"main":{"device":"/dev/x","content":null}},"zpool":{"tank":{"type":"zpool"}}}"#.into(),
            "zpool",
            "ZFS pools are not supported",
        ),
        (
            r#"{"disk":{"main":{"device":"/dev/x","content":null}},"lvm_vg":{"vg":{"type":"lvm_vg"}}}"#.into(),
            "lvm_vg.vg",
            "has no physical volume",
        ),
        (
            gpt(r#""root":{"size":"4M","content":{"type":"filesystem","format":"ext4","extraArgs":["-O","^metadata_csum"]}}"#),
            "disk.main.content.partitions.root.content.extraArgs.0",
            "unsupported mkfs argument \"-O\"",
        ),
        (
            gpt(r#""root":{"size":"4M","content":{"type":"filesystem","format":"ext4","postCreateHook":"echo hi"}}"#),
            "disk.main.content.partitions.root.content.postCreateHook",
            "hooks",
        ),
        (gpt(r#""a":{"size":"1M","uuid":"not-a-guid"}"#), "disk.main.content.partitions.a.uuid", "not a GUID"),
        (gpt(r#""a":{"start":"1M","end":"+2M","priority":1},"b":{"start":"1.5M","end":"-0"}"#), "disk.main.content.partitions.b.start", "not an sgdisk position"),
        (
            gpt(r#""root":{"size":"4M","content":{"type":"filesystem","format":"ext4","extraArgs":["-L","a-label-far-too-long"]}}"#),
            "disk.main.content.partitions.root.content.extraArgs",
            "longer than 16 bytes",
        ),
        (r#"{"nodev":{"/":{"fsType":"proc"}}}"#.into(), "nodev./.fsType", "\"proc\" is not supported"),
        ("{ not json".into(), "", "not valid JSON"),
        (
            gpt(r#""root":{"size":"7M","content":{"type":"filesystem","format":"ext4"}}"#),
            "disk.main.content.partitions.root.size",
            "too small for ext4",
        ),
    ];
    assert!(cases.len() >= 15);
    // A disk with a real table and filesystem on it, so "unchanged" means something.
    let img = Image::new(64 << 20);
    let small = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(small.path(), seed_like(r#","root":{"size":"100%","content":{"type":"filesystem","format":"ext4","mountpoint":"/"}}"#)).unwrap();
    let (ok, out, err) = agent(&[
        "disk",
        "apply",
        "--yes",
        "--no-mount",
        "--layout",
        small.path().to_str().unwrap(),
        "--disk",
        &format!("main={}", img.p()),
    ]);
    assert!(ok, "{out}{err}");
    let before = img.sha256();
    let dir = tempfile::tempdir().unwrap();
    for (i, (json, path, msg)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("bad{i}.json"));
        std::fs::write(&f, json).unwrap();
        for cmd in ["plan", "apply"] {
            let mut args = vec!["disk", cmd, "--layout", f.to_str().unwrap()];
            let disk_arg = format!("main={}", img.p());
            if json.contains("\"main\"") {
                args.extend(["--disk", &disk_arg]);
            }
            if cmd == "apply" {
                args.extend(["--yes", "--no-mount"]);
            }
            let (ok, out, err) = agent(&args);
            assert!(!ok, "case {i} ({json}) was accepted by {cmd}:\n{out}");
            let want = if path.is_empty() {
                msg.to_string()
            } else {
                format!("{path}: ")
            };
            assert!(
                err.contains(&want) && err.contains(msg),
                "case {i} {cmd}: expected {path:?} / {msg:?} in:\n{err}"
            );
        }
        assert_eq!(img.sha256(), before, "case {i} changed the disk");
    }
}

/// disko's luks-lvm example (LUKS → LVM PV → VG `pool`) with its keys
/// missing, empty or not given is refused before anything is written: each
/// error names the LUKS device and what to give, and the disk (holding a
/// real table and ext4) is byte-identical afterwards. `plan` needs no key.
#[test]
fn luks_layouts_without_usable_keys_are_refused_and_the_disk_is_untouched() {
    let img = Image::new(1 << 30);
    let small = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(small.path(), seed_like(r#","root":{"size":"100%","content":{"type":"filesystem","format":"ext4","mountpoint":"/"}}"#)).unwrap();
    let (ok, out, err) = agent(&[
        "disk",
        "apply",
        "--yes",
        "--no-mount",
        "--layout",
        small.path().to_str().unwrap(),
        "--disk",
        &format!("main={}", img.p()),
    ]);
    assert!(ok, "{out}{err}");
    let before = img.sha256();
    let dir = tempfile::tempdir().unwrap();
    let d = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    std::fs::write(d("good.key"), b"a key\n").unwrap();
    std::fs::write(d("empty.key"), b"").unwrap();
    std::fs::write(d("empty.pass"), b"\n").unwrap();
    let luks_lvm = std::fs::read_to_string(fixture("disko-luks-lvm.json")).unwrap();
    // disko's example with its "Interactive" choice: no passwordFile, ask.
    let interactive = std::fs::read_to_string(fixture("disko-luks-interactive-login.json"))
        .unwrap()
        .replace(r#""askPassword": false"#, r#""askPassword": true"#)
        .replace(
            r#""passwordFile": "/tmp/secret.key""#,
            r#""passwordFile": null"#,
        );
    let with_keys = |key: &str, extra: &str| {
        luks_lvm
            .replace("/tmp/secret.key", key)
            .replace("/tmp/additionalSecret.key", extra)
    };
    // (layout, --luks-password args, expected message)
    let cases: Vec<(String, Vec<String>, String)> = vec![
        (
            with_keys(&d("missing.key"), &d("good.key")),
            vec![],
            format!("LUKS crypted: key file {} is not on this machine (the controller sends it with --disk-encryption-keys", d("missing.key")),
        ),
        (
            with_keys(&d("empty.key"), &d("good.key")),
            vec![],
            format!("LUKS crypted: key file {} is empty, and an empty key unlocks nothing; nothing was written to any disk", d("empty.key")),
        ),
        (
            with_keys(&d("good.key"), &d("missing-extra.key")),
            vec![],
            format!("LUKS crypted: key file {} is not on this machine", d("missing-extra.key")),
        ),
        (
            interactive.clone(),
            vec![],
            "LUKS crypted: no passphrase was given for askPassword (the controller asks for it; `disk apply` takes --luks-password crypted=FILE); nothing was written to any disk".into(),
        ),
        (
            interactive.clone(),
            vec![format!("crypted={}", d("empty.pass"))],
            "LUKS crypted: the passphrase is empty, and an empty key unlocks nothing; nothing was written to any disk".into(),
        ),
    ];
    for (i, (json, passwords, msg)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("luks{i}.json"));
        std::fs::write(&f, json).unwrap();
        let disk_arg = format!("main={}", img.p());
        let (ok, out, err) = agent(&[
            "disk",
            "plan",
            "--layout",
            f.to_str().unwrap(),
            "--disk",
            &disk_arg,
        ]);
        assert!(ok, "case {i}: plan failed: {err}");
        assert!(out.contains("/dev/mapper/crypted"), "case {i}: {out}");
        let mut args = vec![
            "disk",
            "apply",
            "--yes",
            "--no-mount",
            "--layout",
            f.to_str().unwrap(),
            "--disk",
            &disk_arg,
        ];
        for p in passwords {
            args.extend(["--luks-password", p.as_str()]);
        }
        let (ok, out, err) = agent(&args);
        assert!(!ok, "case {i} was accepted:\n{out}");
        assert!(
            err.contains(msg.as_str()),
            "case {i}: expected {msg:?} in:\n{err}"
        );
        assert!(
            !err.contains("a key"),
            "case {i}: a key is in the error: {err}"
        );
        assert_eq!(img.sha256(), before, "case {i} changed the disk");
    }
}

#[test]
fn an_override_for_an_unknown_disk_is_refused() {
    let img = Image::new(64 << 20);
    let before = img.sha256();
    let seed = fixture("seed.json");
    let (ok, _, err) = agent(&[
        "disk",
        "apply",
        "--yes",
        "--layout",
        seed.to_str().unwrap(),
        "--disk",
        &format!("other={}", img.p()),
    ]);
    assert!(!ok);
    assert!(
        err.contains("--disk other: the layout has no disk of that name"),
        "{err}"
    );
    assert_eq!(img.sha256(), before);
}

#[test]
fn apply_without_yes_refuses_when_stdin_is_not_a_terminal() {
    let img = Image::new(1 << 30);
    let before = img.sha256();
    let seed = fixture("seed.json");
    let (ok, out, err) = agent(&[
        "disk",
        "apply",
        "--no-mount",
        "--layout",
        seed.to_str().unwrap(),
        "--disk",
        &format!("main={}", img.p()),
    ]);
    assert!(!ok, "{out}");
    assert!(
        err.contains("Refusing to destroy data without --yes"),
        "{err}"
    );
    assert!(
        out.contains("WILL BE DESTROYED") || out.contains("will create"),
        "{out}"
    );
    assert_eq!(img.sha256(), before);
}
