//! LUKS2 written and read by landfall (`landfall_agent::dm::luks2`), judged by
//! Debian's cryptsetup 2.6 and blkid on image files and loop devices:
//! `cryptsetup isLuks`, `luksDump` (fields side by side with a header
//! cryptsetup made), `open --test-passphrase` with our keys (this needs only
//! the kernel's AF_ALG crypto API, not device-mapper), `luksDump
//! --dump-volume-key` against our unlock in both directions, and bad input
//! leaving the device byte-identical. Needs root for the loop devices; a
//! missing tool fails with the Debian package to install.

use crate::common;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{blkid_probe, command, open_rw, run, sha256_file, sparse_file, text, Loop};

use landfall_agent::dm::luks2::{
    add_keyslot, luks_format, parse_extra_args, probe, unlock, FormatOptions, Luks2Error,
    OpenOptions as DmOpen, PbkdfRequest,
};

const MIB: u64 = 1 << 20;
const UUID_STR: &str = "6a1e5c0d-2b44-4c7e-9f11-0abcdef01234";

fn cryptsetup() -> Command {
    command("cryptsetup", "cryptsetup-bin")
}

fn key_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Quick but real costs: a 256 MiB machine, 300 ms target.
fn quick(label: Option<&str>) -> FormatOptions {
    FormatOptions {
        label: label.map(str::to_string),
        uuid: Some(UUID_STR.parse().unwrap()),
        pbkdf: PbkdfRequest {
            iter_time_ms: 300,
            ..Default::default()
        },
        ram_kib: 256 * 1024,
        cpus: 2,
        sector_size: None,
    }
}

fn luks_dump(dev: &Path) -> String {
    let out = run(cryptsetup().arg("luksDump").arg(dev));
    assert!(
        out.status.success(),
        "luksDump {}: {}",
        dev.display(),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value after `key:` on the first luksDump line that has it.
fn dump_field(dump: &str, key: &str) -> String {
    dump.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no `{key}` in luksDump:\n{dump}"))
        .trim()
        .to_string()
}

fn test_passphrase(dev: &Path, key: &Path) -> Output {
    run(cryptsetup()
        .args(["open", "--test-passphrase", "--key-file"])
        .arg(key)
        .arg(dev))
}

/// The volume key cryptsetup recovers with `key` (hex, lower case).
fn dumped_volume_key(dev: &Path, key: &Path) -> String {
    let out = run(cryptsetup()
        .args(["luksDump", "--dump-volume-key", "-q", "--key-file"])
        .arg(key)
        .arg(dev));
    assert!(out.status.success(), "dump-volume-key: {}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    let start = s.find("MK dump:").expect("MK dump line") + "MK dump:".len();
    s[start..].split_whitespace().collect::<String>()
}

#[test]
fn cryptsetup_accepts_our_header_and_our_key() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "ours.img", 64 * MIB);
    let key = key_file(dir.path(), "disk.key", b"correct horse battery staple");
    let wrong = key_file(dir.path(), "wrong.key", b"correct horse battery stapler");
    let made = luks_format(
        &open_rw(&img),
        b"correct horse battery staple",
        &quick(Some("cryptroot")),
    )
    .unwrap();
    assert_eq!(made.uuid, UUID_STR);

    let out = run(cryptsetup().args(["isLuks", "--type", "luks2"]).arg(&img));
    assert!(out.status.success(), "isLuks: {}", text(&out));

    let dump = luks_dump(&img);
    assert_eq!(dump_field(&dump, "Version"), "2");
    assert_eq!(dump_field(&dump, "UUID"), UUID_STR);
    assert_eq!(dump_field(&dump, "Label"), "cryptroot");
    assert_eq!(dump_field(&dump, "Metadata area"), "16384 [bytes]");
    assert_eq!(dump_field(&dump, "Keyslots area"), "16744448 [bytes]");
    assert_eq!(dump_field(&dump, "offset"), "16777216 [bytes]");
    assert_eq!(dump_field(&dump, "length"), "(whole device)");
    assert_eq!(dump_field(&dump, "cipher"), "aes-xts-plain64");
    assert_eq!(dump_field(&dump, "sector"), "4096 [bytes]");
    assert_eq!(dump_field(&dump, "Key"), "512 bits");
    assert_eq!(dump_field(&dump, "Cipher"), "aes-xts-plain64");
    assert_eq!(dump_field(&dump, "Cipher key"), "512 bits");
    assert_eq!(dump_field(&dump, "PBKDF"), "argon2id");
    assert_eq!(dump_field(&dump, "Time cost"), made.cost.time.to_string());
    assert_eq!(
        dump_field(&dump, "Memory"),
        made.cost.memory_kib.to_string()
    );
    assert_eq!(dump_field(&dump, "Threads"), "2");
    assert_eq!(dump_field(&dump, "AF stripes"), "4000");
    assert_eq!(dump_field(&dump, "AF hash"), "sha256");
    assert_eq!(dump_field(&dump, "Area offset"), "32768 [bytes]");
    assert_eq!(dump_field(&dump, "Area length"), "258048 [bytes]");
    assert_eq!(dump_field(&dump, "Hash"), "sha256");
    // A 256 MiB machine: never more than 64 MiB of argon2 memory.
    assert!(made.cost.memory_kib <= 65536, "{:?}", made.cost);
    assert!(made.cost.time >= 4);

    let out = test_passphrase(&img, &key);
    assert!(
        out.status.success(),
        "test-passphrase (right key): {}",
        text(&out)
    );
    let out = test_passphrase(&img, &wrong);
    assert_eq!(out.status.code(), Some(2), "wrong key: {}", text(&out));
    assert!(text(&out).contains("No key available"), "{}", text(&out));
    // Typed passphrase on stdin, as the initrd prompt sends it.
    let out = run(cryptsetup()
        .args(["open", "--test-passphrase"])
        .arg(&img)
        .stdin(File::open(&key).unwrap()));
    assert!(out.status.success(), "passphrase on stdin: {}", text(&out));

    // Our unlock and cryptsetup recover the same volume key.
    let ours = unlock(&open_rw(&img), b"correct horse battery staple").unwrap();
    assert_eq!(
        hex::encode(ours.volume_key.bytes()),
        dumped_volume_key(&img, &key)
    );
    assert_eq!(ours.data_offset, 16 * MIB);
    assert_eq!(ours.sector_size, 4096);

    let tags = blkid_probe(&img, true);
    let tag = |k: &str| tags.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(tag("TYPE"), Some("crypto_LUKS"));
    assert_eq!(tag("VERSION"), Some("2"));
    assert_eq!(tag("UUID"), Some(UUID_STR));
    assert_eq!(tag("LABEL"), Some("cryptroot"));

    let info = probe(&open_rw(&img)).unwrap().unwrap();
    assert_eq!(
        (info.label.as_str(), info.uuid.as_str()),
        ("cryptroot", UUID_STR)
    );
}

#[test]
fn a_header_cryptsetup_made_opens_with_our_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "k", b"hunter2 but longer");
    for (name, extra) in [
        ("argon2id", vec!["--iter-time", "300"]),
        (
            "argon2i-512",
            vec![
                "--pbkdf",
                "argon2i",
                "--iter-time",
                "300",
                "--sector-size",
                "512",
            ],
        ),
        ("pbkdf2", vec!["--pbkdf", "pbkdf2", "--iter-time", "100"]),
    ] {
        let img = sparse_file(dir.path(), &format!("{name}.img"), 40 * MIB);
        let out = run(cryptsetup()
            .args([
                "luksFormat",
                "--type",
                "luks2",
                "-q",
                "--label",
                "theirs",
                "--key-file",
            ])
            .arg(&key)
            .args(&extra)
            .arg(&img));
        assert!(out.status.success(), "luksFormat {name}: {}", text(&out));
        let dev = open_rw(&img);
        let u = unlock(&dev, b"hunter2 but longer").unwrap();
        assert_eq!(
            hex::encode(u.volume_key.bytes()),
            dumped_volume_key(&img, &key),
            "{name}"
        );
        assert!(matches!(
            unlock(&dev, b"hunter3 but longer"),
            Err(Luks2Error::WrongKey)
        ));
        let info = probe(&dev).unwrap().unwrap();
        assert_eq!(info.label, "theirs");
        let expect_sector = if name == "argon2i-512" { 512 } else { 4096 };
        assert_eq!(u.sector_size, expect_sector, "{name}");
        // The table line carries cryptsetup's key, offset and sector size.
        let line = u.dm_crypt_table(
            "/dev/vdb2",
            40 * MIB,
            &DmOpen {
                allow_discards: true,
                ..Default::default()
            },
        );
        let sector_opt = if expect_sector == 4096 {
            " 2 allow_discards sector_size:4096"
        } else {
            " 1 allow_discards"
        };
        assert_eq!(
            *line,
            format!(
                "0 49152 crypt aes-xts-plain64 {} 0 /dev/vdb2 32768{sector_opt}",
                dumped_volume_key(&img, &key)
            )
        );
    }
}

/// Masks what differs between any two luksFormat runs (random values and
/// the benchmarked costs) so the rest can be compared line by line.
fn normalised(dump: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_hex = false;
    for line in dump.lines() {
        let t = line.trim();
        let key = t.split(':').next().unwrap_or("");
        let masked = match key {
            "UUID" | "Time cost" | "Memory" | "Iterations" => format!("{key}: *"),
            "Salt" | "Digest" => {
                in_hex = true;
                format!("{key}: *")
            }
            _ if in_hex && t.split_whitespace().all(|w| w.len() == 2) => continue,
            _ => {
                in_hex = false;
                t.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        };
        out.push(masked);
    }
    out
}

#[test]
fn luks_dump_matches_cryptsetup_side_by_side_on_files_and_loop_devices() {
    let dir = tempfile::tempdir().unwrap();
    let key = key_file(dir.path(), "k", b"side by side");
    // A file, and loop devices with 512- and 4096-byte sectors: the
    // encryption sector size must be what cryptsetup picks for each.
    for (name, loop_sector) in [
        ("file", None),
        ("loop512", Some(512)),
        ("loop4096", Some(4096)),
    ] {
        let theirs_img = sparse_file(dir.path(), &format!("theirs-{name}.img"), 48 * MIB);
        let ours_img = sparse_file(dir.path(), &format!("ours-{name}.img"), 48 * MIB);
        let theirs_loop = loop_sector.map(|s| Loop::attach_whole(&theirs_img, s));
        let ours_loop = loop_sector.map(|s| Loop::attach_whole(&ours_img, s));
        let theirs = theirs_loop
            .as_ref()
            .map_or(theirs_img.clone(), |l| l.path().to_path_buf());
        let ours = ours_loop
            .as_ref()
            .map_or(ours_img.clone(), |l| l.path().to_path_buf());

        let out = run(cryptsetup()
            .args([
                "luksFormat",
                "--type",
                "luks2",
                "-q",
                "--label",
                "data",
                "--iter-time",
                "300",
                "--key-file",
            ])
            .arg(&key)
            .arg(&theirs));
        assert!(
            out.status.success(),
            "cryptsetup luksFormat: {}",
            text(&out)
        );
        luks_format(&open_rw(&ours), b"side by side", &quick(Some("data"))).unwrap();

        assert_eq!(
            normalised(&luks_dump(&ours)),
            normalised(&luks_dump(&theirs)),
            "{name}"
        );
        let out = test_passphrase(&ours, &key);
        assert!(out.status.success(), "{name}: {}", text(&out));
    }
}

#[test]
fn a_second_keyslot_opens_too() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "two.img", 40 * MIB);
    let first = key_file(dir.path(), "first", b"first key");
    let second = key_file(dir.path(), "second", &[0u8, 1, 2, 3, 255, 10, 13]);
    let dev = open_rw(&img);
    luks_format(&dev, b"first key", &quick(None)).unwrap();
    let id = add_keyslot(
        &dev,
        b"first key",
        &[0u8, 1, 2, 3, 255, 10, 13],
        &quick(None),
    )
    .unwrap();
    assert_eq!(id, "1");

    let dump = luks_dump(&img);
    assert!(dump.contains("  1: luks2"), "{dump}");
    assert_eq!(dump_field(&dump, "Epoch"), "4");
    for k in [&first, &second] {
        let out = test_passphrase(&img, k);
        assert!(out.status.success(), "{}: {}", k.display(), text(&out));
    }
    let out = run(cryptsetup()
        .args(["open", "--test-passphrase", "--key-slot", "1", "--key-file"])
        .arg(&second)
        .arg(&img));
    assert!(out.status.success(), "slot 1: {}", text(&out));
    let a = unlock(&dev, b"first key").unwrap();
    let b = unlock(&dev, &[0u8, 1, 2, 3, 255, 10, 13]).unwrap();
    assert_eq!(a.volume_key.bytes(), b.volume_key.bytes());
    assert_eq!((a.keyslot.as_str(), b.keyslot.as_str()), ("0", "1"));
    assert_eq!(
        hex::encode(b.volume_key.bytes()),
        dumped_volume_key(&img, &second)
    );
}

#[test]
fn the_primary_header_lost_the_secondary_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "damaged.img", 40 * MIB);
    let key = key_file(dir.path(), "k", b"backup header");
    let dev = open_rw(&img);
    luks_format(&dev, b"backup header", &quick(Some("lbl"))).unwrap();
    use std::os::unix::fs::FileExt;
    dev.write_all_at(&[0u8; 4096], 0).unwrap();
    assert_eq!(probe(&dev).unwrap().unwrap().label, "lbl");
    assert!(unlock(&dev, b"backup header").is_ok());
    // cryptsetup reads the secondary copy too.
    let out = test_passphrase(&img, &key);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn bad_input_is_refused_and_the_device_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // A device that already holds a LUKS2 header (a re-run with bad input).
    let img = sparse_file(dir.path(), "bad.img", 40 * MIB);
    let dev = open_rw(&img);
    luks_format(&dev, b"the key", &quick(Some("keep"))).unwrap();
    let before = sha256_file(&img);

    assert!(matches!(
        luks_format(&dev, b"", &quick(None)),
        Err(Luks2Error::EmptyKey)
    ));
    let mut long = quick(None);
    long.label = Some("x".repeat(48));
    assert!(matches!(
        luks_format(&dev, b"k", &long),
        Err(Luks2Error::LabelTooLong(48))
    ));
    assert!(matches!(
        add_keyslot(&dev, b"not the key", b"new", &quick(None)),
        Err(Luks2Error::WrongKey)
    ));
    assert!(matches!(
        add_keyslot(&dev, b"the key", b"", &quick(None)),
        Err(Luks2Error::EmptyKey)
    ));
    assert!(matches!(unlock(&dev, b""), Err(Luks2Error::EmptyKey)));
    let err = unlock(&dev, b"wrong").unwrap_err();
    assert_eq!(err.to_string(), "No keyslot opens with this key");
    let err = parse_extra_args(&["--label", "x", "--cipher", "serpent-xts-plain64"]).unwrap_err();
    assert!(err.to_string().contains("`--cipher`"), "{err}");
    assert_eq!(sha256_file(&img), before, "bad input changed the device");

    // Too small for the 16 MiB header: refused before anything is written.
    let small = sparse_file(dir.path(), "small.img", 16 * MIB);
    std::fs::write(&small, vec![0x5a; 16 * MIB as usize]).unwrap();
    let small_before = sha256_file(&small);
    assert!(matches!(
        luks_format(&open_rw(&small), b"k", &quick(None)),
        Err(Luks2Error::DeviceTooSmall { .. })
    ));
    assert_eq!(sha256_file(&small), small_before);
    // Not LUKS at all.
    assert!(probe(&open_rw(&small)).unwrap().is_none());
    assert!(matches!(
        unlock(&open_rw(&small), b"k"),
        Err(Luks2Error::NotLuks2)
    ));
}

#[test]
fn default_cost_on_a_256_mib_machine() {
    let dir = tempfile::tempdir().unwrap();
    let img = sparse_file(dir.path(), "default.img", 40 * MIB);
    let opts = FormatOptions {
        ram_kib: 256 * 1024,
        cpus: 4,
        ..FormatOptions::for_this_machine()
    };
    let made = luks_format(&open_rw(&img), b"defaults", &opts).unwrap();
    let dump = luks_dump(&img);
    assert!(made.cost.memory_kib <= 65536, "{:?}", made.cost);
    assert!(made.cost.time >= 4);
    assert_eq!(
        dump_field(&dump, "Memory"),
        made.cost.memory_kib.to_string()
    );
    assert_eq!(dump_field(&dump, "Threads"), "4");
    // Honoured extra arguments: --pbkdf-memory and --pbkdf-force-iterations.
    let args = parse_extra_args(&[
        "--pbkdf-memory",
        "32768",
        "--pbkdf-force-iterations",
        "5",
        "--label",
        "forced",
    ])
    .unwrap();
    let forced = FormatOptions {
        label: args.label.clone(),
        pbkdf: args.pbkdf(),
        ram_kib: 256 * 1024,
        cpus: 1,
        ..FormatOptions::for_this_machine()
    };
    let made = luks_format(&open_rw(&img), b"forced", &forced).unwrap();
    let dump = luks_dump(&img);
    assert_eq!((made.cost.time, made.cost.memory_kib), (5, 32768));
    assert_eq!(dump_field(&dump, "Time cost"), "5");
    assert_eq!(dump_field(&dump, "Memory"), "32768");
    assert_eq!(dump_field(&dump, "Label"), "forced");
}
