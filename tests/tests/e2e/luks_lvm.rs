//! The disk engine's LUKS and LVM, judged inside a qemu VM (this host's
//! kernel has no device-mapper) by Debian's cryptsetup, lvm and e2fsck.
//!
//! One boot serves every case, one disk each: disko's `luks-lvm` (keys from
//! key files, LVM inside LUKS), `luks-interactive-login` with its
//! "Interactive" choice (askPassword, the passphrase given with
//! `--luks-password`) and `lvm-sizes-sort` (LVM on a partition, LVs in
//! disko's priority order). For each: the agent's `disk apply`, then
//! `cryptsetup luksDump` / `open --test-passphrase`, `lvm pvs/vgs/lvs` JSON and
//! `vgck`; everything closed with the real tools and opened again with them
//! (`cryptsetup open`, `vgchange -ay`), the filesystems fsck'd and a file
//! written in between read back. A second apply opens instead of
//! reformatting (same LUKS UUID, the file survives); a wrong key on a re-run
//! is refused with the disk's header area byte-identical.
//!
//! The same boot measures luksFormat on this 256 MiB machine, native and
//! `cryptsetup luksFormat --type luks2` with its defaults, each under
//! `/usr/bin/time -v`; the test prints the figures (bench/luks2-vm.sh
//! collects them) and asserts only that both fit.
//!
//! The guest script writes its findings to the last virtio disk, read after
//! the VM powered off.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use landfall_image::modules::{modules_dep, select_modules, ModuleIndex};
use landfall_tests::bins::agent_static_bin;
use landfall_tests::StartVm;
use landfall_tests::{
    debian_kernel, sparse_image, BusyboxInitramfs, DebianKernel, Disk, TestDir, VmBuilder,
    INIT_DONE, KERNEL_APPEND,
};

/// What the agent's `dm load-modules` loads (in the image's spelling).
const DM_MODULES: &[&str] = &["dm-mod", "dm-crypt", "xts", "ecb", "aesni-intel"];
/// Loaded by the harness: the disks, and what mounting the layouts needs
/// (ext4's metadata checksums need crc32c, a softdep the harness does not
/// follow).
const BOOT_MODULES: &[&str] = &[
    "virtio_pci",
    "virtio_blk",
    "crc32c_generic",
    "ext4",
    "vfat",
    "nls_cp437",
    "nls_ascii",
    "nls_utf8",
];
const MIB: u64 = 1 << 20;
/// The smallest machine landfall installs on.
const MEMORY_MIB: u32 = 256;

fn tool(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.is_file(),
        "{path} is missing: apt-get install -y {package} (scripts/setup.sh does)"
    );
    p
}

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/layouts")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// disko's luks-interactive-login with the choice its comment offers:
/// no `passwordFile`, the passphrase asked for.
fn interactive_layout() -> Vec<u8> {
    let text = String::from_utf8(fixture("disko-luks-interactive-login.json")).unwrap();
    let asked = text
        .replace(r#""askPassword": false"#, r#""askPassword": true"#)
        .replace(
            r#""passwordFile": "/tmp/secret.key""#,
            r#""passwordFile": null"#,
        );
    assert_ne!(asked, text, "the fixture changed shape");
    asked.into_bytes()
}

fn initramfs(kernel: &DebianKernel, dir: &TestDir, script: &str) {
    let index = ModuleIndex::scan(&kernel.modules).unwrap();
    let selection = select_modules(&index, DM_MODULES).unwrap();
    let base = format!("/lib/modules/{}", kernel.version);
    let agent = std::fs::read(agent_static_bin()).unwrap();
    let mut image = BusyboxInitramfs::new()
        .unwrap()
        .modules(kernel, BOOT_MODULES)
        .unwrap()
        .file("/bin/landfall-agent", agent, 0o755)
        .file(
            &format!("{base}/modules.dep"),
            modules_dep(&selection),
            0o644,
        )
        .file(
            "/layouts/luks-lvm.json",
            fixture("disko-luks-lvm.json"),
            0o644,
        )
        .file("/layouts/interactive.json", interactive_layout(), 0o644)
        .file(
            "/layouts/sizes.json",
            fixture("disko-lvm-sizes-sort.json"),
            0o644,
        )
        .file(
            "/etc/lvm/lvm.conf",
            "devices { obtain_device_list_from_udev = 0 }\n\
             activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }\n",
            0o644,
        );
    for (host, package) in [
        ("/usr/sbin/cryptsetup", "cryptsetup-bin"),
        ("/usr/sbin/lvm", "lvm2"),
        ("/usr/sbin/dmsetup", "dmsetup"),
        ("/usr/sbin/e2fsck", "e2fsprogs"),
        ("/usr/bin/time", "time"),
    ] {
        image = image.executable(&tool(host, package), host).unwrap();
    }
    for m in &selection.modules {
        image = image.file(
            &format!("{base}/{}", m.image_path()),
            m.module.data.clone(),
            0o644,
        );
    }
    image
        .script(&format!(
            "export DM_DISABLE_UDEV=1 LVM_SUPPRESS_FD_WARNINGS=1\n\
             mkdir -p /run/cryptsetup /run/lvm /run/lock/lvm /mnt /check /tmp\n\
             for i in $(seq 1 100); do [ -e /sys/block/vdd ] && break; sleep 0.1; done\n\
             exec 3>/tmp/out\n\
             section() {{ echo \"== $1\" >&3; }}\n\
             run() {{ \"$@\" >&3 2>&3; echo \"rc=$?\" >&3; }}\n\
             lvj() {{ lvm \"$@\" --reportformat json --units b --nosuffix; }}\n\
             {script}\n\
             echo '== end' >&3\n\
             exec 3>&-\n\
             dd if=/tmp/out of=/dev/vdd bs=4096 conv=fsync 2>/dev/null\n"
        ))
        .write(&dir.join("initrd"))
        .unwrap();
}

fn run_vm(dir: TestDir, disks: &[PathBuf]) -> BTreeMap<String, String> {
    let results = sparse_image(&dir.join("results.img"), 16 * MIB).unwrap();
    let results_path = results.clone();
    let mut builder = VmBuilder::new("luks-lvm")
        .kernel(&debian_kernel().unwrap().image, KERNEL_APPEND)
        .initrd(dir.join("initrd"))
        .memory_mib(MEMORY_MIB);
    for d in disks {
        builder = builder.disk(Disk::virtio_blk(d.clone()));
    }
    let mut vm = builder
        .disk(Disk::virtio_blk(results))
        .start_in(dir)
        .unwrap();
    vm.wait_for(INIT_DONE, Duration::from_secs(1500)).unwrap();
    let status = vm.wait_exit(Duration::from_secs(60)).unwrap();
    assert!(status.success(), "qemu exited with {status}");
    let raw = std::fs::read(&results_path).unwrap();
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = String::from_utf8_lossy(&raw[..end]).into_owned();
    assert!(
        text.contains("== end"),
        "the guest script did not finish:\n{text}\nconsole:\n{}",
        vm.console().tail(60)
    );
    eprintln!("guest results:\n{text}");
    let mut sections = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            if let Some((n, body)) = current.take() {
                sections.insert(n, body);
            }
            current = Some((name.trim().to_string(), String::new()));
        } else if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    sections
}

fn section<'a>(s: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    s.get(name)
        .unwrap_or_else(|| panic!("no section {name} in {s:#?}"))
        .as_str()
}

fn ok(s: &BTreeMap<String, String>, name: &str) {
    let body = section(s, name);
    assert!(
        body.lines()
            .filter(|l| l.starts_with("rc="))
            .all(|l| l == "rc=0")
            && body.contains("rc=0"),
        "{name} failed:\n{body}"
    );
}

fn failed(s: &BTreeMap<String, String>, name: &str) -> String {
    let body = section(s, name);
    assert!(
        body.lines().any(|l| l.starts_with("rc=") && l != "rc=0"),
        "{name} succeeded but must fail:\n{body}"
    );
    body.to_string()
}

/// The rows of an `lvm … --reportformat json` report.
fn report(s: &BTreeMap<String, String>, name: &str, kind: &str) -> Vec<BTreeMap<String, String>> {
    let body = section(s, name);
    let start = body
        .find('{')
        .unwrap_or_else(|| panic!("{name}: no JSON in {body}"));
    let end = body.rfind('}').unwrap() + 1;
    let v: serde_json::Value =
        serde_json::from_str(&body[start..end]).unwrap_or_else(|e| panic!("{name}: {e}: {body}"));
    v["report"][0][kind]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no {kind} in {body}"))
        .iter()
        .map(|row| {
            row.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .collect()
}

fn lv_sizes(rows: &[BTreeMap<String, String>]) -> BTreeMap<String, u64> {
    rows.iter()
        .map(|r| (r["lv_name"].clone(), r["lv_size"].parse().unwrap()))
        .collect()
}

fn dump_field(dump: &str, key: &str) -> String {
    dump.lines()
        .find_map(|l| l.trim_start().strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no `{key}` in luksDump:\n{dump}"))
        .trim()
        .to_string()
}

/// luksDump says what cryptsetup luksFormat --type luks2 writes by default.
fn assert_default_luks2(dump: &str, keyslots: usize) {
    for (key, want) in [
        ("Version", "2"),
        ("Metadata area", "16384 [bytes]"),
        ("Keyslots area", "16744448 [bytes]"),
        ("offset", "16777216 [bytes]"),
        ("length", "(whole device)"),
        ("cipher", "aes-xts-plain64"),
        ("Cipher key", "512 bits"),
        ("PBKDF", "argon2id"),
        ("AF hash", "sha256"),
        ("Area offset", "32768 [bytes]"),
        ("Hash", "sha256"),
    ] {
        assert_eq!(dump_field(dump, key), want, "{key} in:\n{dump}");
    }
    // Argon2 fits the VM: cryptsetup caps it at half the RAM.
    let memory: u64 = dump_field(dump, "Memory").parse().unwrap();
    assert!(
        memory <= u64::from(MEMORY_MIB) * 1024 / 2,
        "argon2 memory {memory} KiB"
    );
    for n in 0..keyslots {
        assert!(
            dump.contains(&format!("  {n}: luks2")),
            "keyslot {n}:\n{dump}"
        );
    }
    assert!(!dump.contains(&format!("  {keyslots}: luks2")), "{dump}");
}

const SCRIPT: &str = r#"
printf 'correct horse battery' > /tmp/secret.key
printf 'additional staple' > /tmp/additionalSecret.key
printf 'hunter2\n' > /tmp/pass
printf 'not the key' > /tmp/nope
section modules; run landfall-agent dm load-modules

# --- luksFormat on this 256 MiB machine: native, then cryptsetup's defaults
section bench-landfall; /usr/bin/time -v landfall-agent dm luks-format /dev/vda --key-file /tmp/secret.key >&3 2>&3; echo "rc=$?" >&3
section bench-landfall-dump; run cryptsetup luksDump /dev/vda
section bench-cryptsetup; /usr/bin/time -v cryptsetup luksFormat --type luks2 -q --key-file /tmp/secret.key /dev/vda >&3 2>&3; echo "rc=$?" >&3
section bench-cryptsetup-dump; run cryptsetup luksDump /dev/vda
dd if=/dev/zero of=/dev/vda bs=1M count=32 conv=fsync 2>/dev/null

# --- luks-lvm on vda: keys from key files, LVM inside LUKS
L1="--layout /layouts/luks-lvm.json --disk main=/dev/vda"
section lvm1-apply; run landfall-agent disk apply --yes $L1 --root /mnt
section lvm1-mounts; grep ' /mnt' /proc/mounts >&3
section lvm1-dump; run cryptsetup luksDump /dev/vda2
section lvm1-key; run cryptsetup open --test-passphrase --key-file /tmp/secret.key /dev/vda2
section lvm1-extra-key; run cryptsetup open --test-passphrase --key-file /tmp/additionalSecret.key /dev/vda2
section lvm1-other-key; run cryptsetup open --test-passphrase --key-file /tmp/nope /dev/vda2
section lvm1-table; dmsetup table crypted | sed 's/ [0-9a-f]\{128\} / KEY /' >&3
section lvm1-pvs; run lvj pvs -o pv_name,vg_name
section lvm1-vgs; run lvj vgs -o vg_name,vg_extent_size,vg_extent_count,vg_free_count
section lvm1-lvs; run lvj lvs -o lv_name,vg_name,lv_size
section lvm1-vgck; run lvm vgck pool
section lvm1-uuid; cryptsetup luksUUID /dev/vda2 >&3
echo survivor > /mnt/home/marker; sync
section lvm1-real-close; umount /mnt/home /mnt/boot /mnt; run lvm vgchange -an pool; run cryptsetup close crypted
section lvm1-after-close; dmsetup ls >&3 2>&3
section lvm1-real-open; run cryptsetup open --key-file /tmp/secret.key /dev/vda2 crypted; run lvm vgchange -ay pool
section lvm1-fsck; run e2fsck -fn /dev/pool/root; run e2fsck -fn /dev/pool/home
section lvm1-marker; mount /dev/pool/home /check && cat /check/marker >&3; umount /check
run lvm vgchange -an pool; run cryptsetup close crypted
section lvm1-reapply; run landfall-agent disk apply --yes $L1 --root /mnt
section lvm1-uuid-again; cryptsetup luksUUID /dev/vda2 >&3
section lvm1-marker-again; cat /mnt/home/marker >&3
section lvm1-agent-close; run landfall-agent disk unmount $L1 --root /mnt
section lvm1-after-agent-close; dmsetup ls >&3 2>&3; ls /dev/pool >&3 2>&3; grep -c ' /mnt' /proc/mounts >&3
section lvm1-hash-before; dd if=/dev/vda bs=1M count=2 2>/dev/null | sha256sum >&3; dd if=/dev/vda2 bs=1M count=32 2>/dev/null | sha256sum >&3
printf 'wrong key' > /tmp/secret.key
section lvm1-wrong; run landfall-agent disk apply --yes --no-mount $L1
section lvm1-hash-after; dd if=/dev/vda bs=1M count=2 2>/dev/null | sha256sum >&3; dd if=/dev/vda2 bs=1M count=32 2>/dev/null | sha256sum >&3
section lvm1-after-wrong; dmsetup ls >&3 2>&3

# --- luks-interactive-login on vdb: askPassword, the passphrase from --luks-password
L2="--layout /layouts/interactive.json --disk main=/dev/vdb"
section int-apply; run landfall-agent disk apply --yes $L2 --root /mnt --luks-password crypted=/tmp/pass
section int-mounts; grep ' /mnt' /proc/mounts >&3
section int-dump; run cryptsetup luksDump /dev/vdb2
section int-pass; printf 'hunter2' | cryptsetup open --test-passphrase /dev/vdb2 >&3 2>&3; echo "rc=$?" >&3
section int-table; dmsetup table crypted | sed 's/ [0-9a-f]\{128\} / KEY /' >&3
echo survivor > /mnt/marker; sync
section int-real-close; umount /mnt/boot /mnt; run cryptsetup close crypted
section int-fsck; printf 'hunter2' | cryptsetup open /dev/vdb2 crypted >&3 2>&3; echo "rc=$?" >&3; run e2fsck -fn /dev/mapper/crypted
section int-marker; mount /dev/mapper/crypted /check && cat /check/marker >&3; umount /check; run cryptsetup close crypted
section int-no-pass; run landfall-agent disk apply --yes --no-mount $L2
section int-reapply; run landfall-agent disk apply --yes $L2 --root /mnt --luks-password crypted=/tmp/pass
section int-marker-again; cat /mnt/marker >&3
run landfall-agent disk unmount $L2 --root /mnt

# --- lvm-sizes-sort on vdc: LVM on a partition
L3="--layout /layouts/sizes.json --disk one=/dev/vdc"
section sizes-apply; run landfall-agent disk apply --yes $L3 --root /mnt
section sizes-mounts; grep ' /mnt' /proc/mounts >&3
section sizes-pvs; run lvj pvs -o pv_name,vg_name,pe_start
section sizes-vgs; run lvj vgs -o vg_name,vg_extent_size,vg_extent_count,vg_free_count
section sizes-lvs; run lvj lvs -o lv_name,lv_size,seg_pe_ranges
section sizes-vgck; run lvm vgck pool
run landfall-agent disk unmount $L3 --root /mnt
section sizes-real-open; run lvm vgchange -ay pool
section sizes-fsck; run e2fsck -fn /dev/pool/root; run e2fsck -fn /dev/pool/home
run lvm vgchange -an pool

# --- a second VG "pool" on vdb while vdc holds one: refused, vdb untouched
section vgname-hash-before; dd if=/dev/vdb bs=1M count=2 2>/dev/null | sha256sum >&3; dd if=/dev/vdb2 bs=1M count=32 2>/dev/null | sha256sum >&3
section vgname; run landfall-agent disk apply --yes --no-mount --layout /layouts/sizes.json --disk one=/dev/vdb
section vgname-hash-after; dd if=/dev/vdb bs=1M count=2 2>/dev/null | sha256sum >&3; dd if=/dev/vdb2 bs=1M count=32 2>/dev/null | sha256sum >&3
"#;

#[test]
fn disko_luks_and_lvm_layouts_apply_reopen_and_satisfy_cryptsetup_and_lvm() {
    let kernel = debian_kernel().unwrap();
    let dir = TestDir::new("luks-lvm").unwrap();
    let disks: Vec<PathBuf> = ["a", "b", "c"]
        .iter()
        .map(|n| sparse_image(&dir.join(format!("{n}.img")), 2048 * MIB).unwrap())
        .collect();
    initramfs(&kernel, &dir, SCRIPT);
    let s = run_vm(dir, &disks);
    assert!(
        !section(&s, "modules").contains("failed"),
        "{}",
        section(&s, "modules")
    );

    // luksFormat on a 256 MiB machine, native and cryptsetup's: both make a
    // default LUKS2 whose argon2 fits; the figures go to bench/README.md.
    for name in ["bench-landfall", "bench-cryptsetup"] {
        ok(&s, name);
        ok(&s, &format!("{name}-dump"));
        assert_default_luks2(section(&s, &format!("{name}-dump")), 1);
        let body = section(&s, name);
        let field = |f: &str| {
            body.lines()
                .find_map(|l| l.trim().strip_prefix(f))
                .unwrap_or_else(|| panic!("no {f} in {body}"))
                .trim()
                .to_string()
        };
        let rss: u64 = field("Maximum resident set size (kbytes):")
            .parse()
            .unwrap();
        assert!(rss < u64::from(MEMORY_MIB) * 1024, "{name}: {rss} KiB");
        let dump = section(&s, &format!("{name}-dump"));
        eprintln!(
            "luksFormat figure: {name}: wall {} peak RSS {rss} KiB argon2 time {} memory {} KiB threads {}",
            field("Elapsed (wall clock) time (h:mm:ss or m:ss):"),
            dump_field(dump, "Time cost"),
            dump_field(dump, "Memory"),
            dump_field(dump, "Threads"),
        );
    }

    // luks-lvm: both key files open the header cryptsetup reads as its own
    // default LUKS2, and nothing else does.
    ok(&s, "lvm1-apply");
    assert!(
        section(&s, "lvm1-apply").contains("luks crypted: formatted"),
        "{}",
        section(&s, "lvm1-apply")
    );
    let mounts = section(&s, "lvm1-mounts");
    for (dev, mp) in [
        ("/dev/mapper/pool-root", "/mnt ext4"),
        ("/dev/mapper/pool-home", "/mnt/home ext4"),
        ("/dev/vda1", "/mnt/boot vfat"),
    ] {
        assert!(
            mounts.contains(&format!("{dev} {mp}")),
            "{dev} on {mp}:\n{mounts}"
        );
    }
    ok(&s, "lvm1-dump");
    assert_default_luks2(section(&s, "lvm1-dump"), 2);
    ok(&s, "lvm1-key");
    ok(&s, "lvm1-extra-key");
    failed(&s, "lvm1-other-key");
    // settings.allowDiscards reaches the dm-crypt table.
    let table = section(&s, "lvm1-table");
    assert!(
        table.contains("crypt aes-xts-plain64 KEY 0") && table.contains("allow_discards"),
        "{table}"
    );
    let pvs = report(&s, "lvm1-pvs", "pv");
    assert_eq!(pvs.len(), 1, "{pvs:?}");
    assert_eq!(pvs[0]["pv_name"], "/dev/mapper/crypted");
    assert_eq!(pvs[0]["vg_name"], "pool");
    let vgs = report(&s, "lvm1-vgs", "vg");
    let extents: u64 = vgs[0]["vg_extent_count"].parse().unwrap();
    assert_eq!(vgs[0]["vg_extent_size"], (4 * MIB).to_string());
    // The LUKS partition (2 GiB - 1 MiB - 500 MiB - GPT tail) less the
    // 16 MiB header, less LVM's 1 MiB, in 4 MiB extents.
    assert!((375..=384).contains(&extents), "{vgs:?}");
    let lvs = lv_sizes(&report(&s, "lvm1-lvs", "lv"));
    assert_eq!(lvs["home"], 12 * MIB, "10M rounds up to 3 extents");
    assert_eq!(lvs["raw"], 12 * MIB);
    assert_eq!(lvs["root"], (extents - 6) * 4 * MIB, "100% takes the rest");
    assert_eq!(vgs[0]["vg_free_count"], "0");
    ok(&s, "lvm1-vgck");

    // Closed and opened again by the real tools; the filesystems are clean.
    ok(&s, "lvm1-real-close");
    assert!(
        section(&s, "lvm1-after-close").contains("No devices found"),
        "{}",
        section(&s, "lvm1-after-close")
    );
    ok(&s, "lvm1-real-open");
    ok(&s, "lvm1-fsck");
    assert!(section(&s, "lvm1-marker").starts_with("survivor\n"));

    // A second apply opens the header with the key instead of reformatting.
    ok(&s, "lvm1-reapply");
    let reapply = section(&s, "lvm1-reapply");
    assert!(
        reapply.contains("luks crypted: opened the existing"),
        "{reapply}"
    );
    assert!(!reapply.contains("luks crypted: formatted"), "{reapply}");
    assert_eq!(section(&s, "lvm1-uuid"), section(&s, "lvm1-uuid-again"));
    assert_eq!(section(&s, "lvm1-marker-again"), "survivor\n");
    // The agent's unmount closes the LVs and then the LUKS device.
    ok(&s, "lvm1-agent-close");
    let closed = section(&s, "lvm1-agent-close");
    assert!(closed.contains("closed"), "{closed}");
    for n in ["pool-root", "pool-home", "pool-raw", "crypted"] {
        assert!(closed.contains(n), "{n} not closed: {closed}");
    }
    let after = section(&s, "lvm1-after-agent-close");
    assert!(after.contains("No devices found"), "{after}");
    assert!(after.trim_end().ends_with('0'), "mounts left: {after}");

    // A wrong key on a re-run: a clear error, nothing reformatted.
    let wrong = failed(&s, "lvm1-wrong");
    assert!(
        wrong.contains("the key does not open the LUKS2 header already there"),
        "{wrong}"
    );
    assert!(
        !wrong.contains("wrong key"),
        "the key is in the error: {wrong}"
    );
    assert_eq!(
        section(&s, "lvm1-hash-before"),
        section(&s, "lvm1-hash-after"),
        "the disk changed"
    );
    assert!(section(&s, "lvm1-after-wrong").contains("No devices found"));

    // luks-interactive-login: the passphrase given to the agent is the key.
    ok(&s, "int-apply");
    let mounts = section(&s, "int-mounts");
    assert!(mounts.contains("/dev/mapper/crypted /mnt ext4"), "{mounts}");
    ok(&s, "int-dump");
    assert_default_luks2(section(&s, "int-dump"), 1);
    ok(&s, "int-pass");
    assert!(section(&s, "int-table").contains("allow_discards"));
    ok(&s, "int-real-close");
    ok(&s, "int-fsck");
    assert!(section(&s, "int-marker").starts_with("survivor\n"));
    let no_pass = failed(&s, "int-no-pass");
    assert!(
        no_pass.contains("no passphrase was given for askPassword"),
        "{no_pass}"
    );
    ok(&s, "int-reapply");
    assert!(section(&s, "int-reapply").contains("opened the existing"));
    assert!(section(&s, "int-marker-again").starts_with("survivor\n"));

    // lvm-sizes-sort: LVs made in disko's order with lvcreate's sizes.
    ok(&s, "sizes-apply");
    let mounts = section(&s, "sizes-mounts");
    assert!(
        mounts.contains("/dev/mapper/pool-root /mnt ext4")
            && mounts.contains("/dev/mapper/pool-home /mnt/home ext4"),
        "{mounts}"
    );
    let pvs = report(&s, "sizes-pvs", "pv");
    assert_eq!(pvs[0]["pv_name"], "/dev/vdc2");
    assert_eq!(pvs[0]["pe_start"], MIB.to_string());
    let vgs = report(&s, "sizes-vgs", "vg");
    let extents: u64 = vgs[0]["vg_extent_count"].parse().unwrap();
    let rows = report(&s, "sizes-lvs", "lv");
    let lvs = lv_sizes(&rows);
    assert_eq!(lvs["aaa"], 4 * MIB);
    assert_eq!(lvs["zzz"], 4 * MIB);
    assert_eq!(lvs["root"], 100 * MIB);
    assert_eq!(lvs["home"], (extents - 27) * 4 * MIB);
    // disko's order: aaa, root, zzz (priority 1000, by name), then home.
    let ranges: BTreeMap<String, String> = rows
        .iter()
        .map(|r| (r["lv_name"].clone(), r["seg_pe_ranges"].clone()))
        .collect();
    assert_eq!(ranges["aaa"], "/dev/vdc2:0-0", "{ranges:?}");
    assert_eq!(ranges["root"], "/dev/vdc2:1-25", "{ranges:?}");
    assert_eq!(ranges["zzz"], "/dev/vdc2:26-26", "{ranges:?}");
    ok(&s, "sizes-vgck");
    ok(&s, "sizes-real-open");
    ok(&s, "sizes-fsck");

    // Two VGs with one name on one machine: refused before any write.
    let taken = failed(&s, "vgname");
    assert!(
        taken.contains(
            "Volume group pool already exists on /dev/vdc2, which is not a disk of this layout"
        ),
        "{taken}"
    );
    assert_eq!(
        section(&s, "vgname-hash-before"),
        section(&s, "vgname-hash-after"),
        "vdb changed"
    );
}
