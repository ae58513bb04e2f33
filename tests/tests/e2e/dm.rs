//! Device-mapper through the agent's own ioctls, judged inside a qemu VM (this
//! host's kernel has none) by the bytes read back, by the raw disk, and by
//! Debian's `dmsetup` run beside it.
//!
//! Each test boots the Debian kernel once with a busybox initramfs holding the
//! static agent, Debian's dmsetup with its libraries, and the device-mapper
//! modules exactly as landfall-image selects them (into
//! `/lib/modules/<release>` with its modules.dep): the harness loads only the
//! disk driver, the agent's `dm load-modules` loads the rest. The guest script
//! writes its findings to a second virtio disk, which the test reads after the
//! VM powered off (no console interleaving to untangle).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use landfall_image::modules::{modules_dep, select_modules, ModuleIndex};
use landfall_tests::bins::agent_static_bin;
use landfall_tests::{
    debian_kernel, sparse_image, BusyboxInitramfs, DebianKernel, Disk, TestDir, VmBuilder,
    INIT_DONE, KERNEL_APPEND,
};
use sha2::{Digest, Sha256};

// The modules the agent's `load_for_device_mapper` asks for; landfall-image's
// DEFAULT_MODULES is built from the same list.
use landfall_formats::kmod::DEVICE_MAPPER_MODULES as DM_MODULES;
use landfall_tests::StartVm;

const SECTOR: u64 = 512;
/// The linear test's region on the data disk: sectors [2048, 2048 + 4096).
const LINEAR_START: u64 = 2048;
const LINEAR_SECTORS: u64 = 4096;
/// The crypt test's region: sectors [16384, 16384 + 4096).
const CRYPT_START: u64 = 16384;
const CRYPT_SECTORS: u64 = 4096;
/// A 512-bit aes-xts key (two AES-256 keys), hex.
const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\
                       f0e0d0c0b0a090807060504030201000ffeeddccbbaa99887766554433221100";

fn dmsetup() -> &'static Path {
    let p = Path::new("/usr/sbin/dmsetup");
    assert!(
        p.is_file(),
        "dmsetup is missing: apt-get install -y dmsetup (scripts/setup.sh does)"
    );
    p
}

/// A busybox initramfs with the agent, dmsetup, the DM modules in a depmod-style
/// tree, and `script` (whose output goes to /tmp/out, copied to /dev/vdb at the end).
fn initramfs(kernel: &DebianKernel, dir: &TestDir, extra: &[(&str, Vec<u8>)], script: &str) {
    let index = ModuleIndex::scan(&kernel.modules).unwrap();
    let selection = select_modules(&index, DM_MODULES).unwrap();
    let base = format!("/lib/modules/{}", kernel.version);
    let agent = std::fs::read(agent_static_bin()).unwrap();
    let mut image = BusyboxInitramfs::new()
        .unwrap()
        .modules(kernel, &["virtio_pci", "virtio_blk"])
        .unwrap()
        .executable(dmsetup(), "/usr/sbin/dmsetup")
        .unwrap()
        .file("/bin/landfall-agent", agent, 0o755)
        .file(
            &format!("{base}/modules.dep"),
            modules_dep(&selection),
            0o644,
        );
    for m in &selection.modules {
        image = image.file(
            &format!("{base}/{}", m.image_path()),
            m.module.data.clone(),
            0o644,
        );
    }
    for (path, data) in extra {
        image = image.file(path, data.clone(), 0o644);
    }
    image
        .script(&format!(
            "export DM_DISABLE_UDEV=1\n\
             for i in $(seq 1 100); do [ -e /sys/block/vdb ] && break; sleep 0.1; done\n\
             exec 3>/tmp/out\n\
             section() {{ echo \"== $1\" >&3; }}\n\
             {script}\n\
             echo '== end' >&3\n\
             exec 3>&-\n\
             dd if=/tmp/out of=/dev/vdb bs=4096 conv=fsync 2>/dev/null\n"
        ))
        .write(&dir.join("initrd"))
        .unwrap();
}

/// Boots the VM with the data disk and a results disk; returns the results by
/// section and the data disk's bytes after the VM powered off (read before the
/// test folder goes away).
fn run_vm(name: &str, dir: TestDir, data: &Path) -> (BTreeMap<String, String>, Vec<u8>) {
    let results = sparse_image(&dir.join("results.img"), 4 << 20).unwrap();
    let results_path = results.clone();
    let mut vm = VmBuilder::new(name)
        .kernel(&debian_kernel().unwrap().image, KERNEL_APPEND)
        .initrd(dir.join("initrd"))
        .memory_mib(256)
        .disk(Disk::virtio_blk(data.to_path_buf()))
        .disk(Disk::virtio_blk(results))
        .start_in(dir)
        .unwrap();
    vm.wait_for(INIT_DONE, Duration::from_secs(240)).unwrap();
    let status = vm.wait_exit(Duration::from_secs(60)).unwrap();
    assert!(status.success(), "qemu exited with {status}");
    let disk_after = std::fs::read(data).unwrap();
    let raw = std::fs::read(&results_path).unwrap();
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let text = String::from_utf8_lossy(&raw[..end]).into_owned();
    assert!(
        text.contains("== end"),
        "the guest script did not finish:\n{text}\nconsole:\n{}",
        vm.console().tail(60)
    );
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
    eprintln!("guest results:\n{text}");
    (sections, disk_after)
}

fn section<'a>(s: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    s.get(name)
        .unwrap_or_else(|| panic!("no section {name} in {s:#?}"))
        .as_str()
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes that differ in every sector, so a wrong offset shows.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i / 512) as u8 ^ (i % 251) as u8 ^ seed)
        .collect()
}

#[test]
fn linear_devices_read_the_right_bytes_and_dmsetup_agrees() {
    let kernel = debian_kernel().unwrap();
    let dir = TestDir::new("dm-linear").unwrap();
    let disk = sparse_image(&dir.join("data.img"), 64 << 20).unwrap();
    let region = pattern((LINEAR_SECTORS * SECTOR) as usize, 0x5a);
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
        f.write_all_at(&region, LINEAR_START * SECTOR).unwrap();
    }
    let before = std::fs::read(&disk).unwrap();
    let table = format!("0 {LINEAR_SECTORS} linear /dev/vda {LINEAR_START}");
    let script = format!(
        "section modules; landfall-agent dm load-modules >&3 2>&3\n\
         section create; landfall-agent dm create pool-root --uuid LVM-landfalltest --lvm-link --table '{table}' >&3 2>&3; echo rc=$? >&3\n\
         section sha; dd if=/dev/mapper/pool-root bs=65536 2>/dev/null | sha256sum >&3\n\
         section sha-dm-node; dd if=/dev/dm-0 bs=65536 2>/dev/null | sha256sum >&3\n\
         section sha-lvm-link; dd if=/dev/pool/root bs=65536 2>/dev/null | sha256sum >&3\n\
         section size; cat /sys/block/dm-0/size >&3\n\
         section sysfs-name; cat /sys/block/dm-0/dm/name >&3\n\
         section vda-dev; cat /sys/block/vda/dev >&3\n\
         section agent-table; landfall-agent dm table pool-root >&3 2>&3\n\
         section dmsetup-table; dmsetup table pool-root >&3 2>&3\n\
         section agent-list; landfall-agent dm list >&3 2>&3\n\
         section dmsetup-info; dmsetup info -c --noheadings -o name,major,minor,uuid,attr,segments pool-root >&3 2>&3\n\
         section agent-info; landfall-agent dm info pool-root >&3 2>&3\n\
         section bad-device; landfall-agent dm create bad1 --table '0 8 linear /dev/nonexistent 0' >&3 2>&3; echo rc=$? >&3\n\
         section bad-size; landfall-agent dm create bad2 --table '0 999999999 linear /dev/vda 0' >&3 2>&3; echo rc=$? >&3\n\
         section bad-name; landfall-agent dm create 'a/b' --table '0 8 zero' >&3 2>&3; echo rc=$? >&3\n\
         section after-bad; dmsetup ls >&3 2>&3; ls /dev/mapper >&3\n\
         section remove; landfall-agent dm remove pool-root >&3 2>&3; echo rc=$? >&3\n\
         section after-remove; dmsetup ls >&3 2>&3; ls /dev/mapper /dev >&3 2>&3\n"
    );
    initramfs(&kernel, &dir, &[], &script);
    let (s, after_vm) = run_vm("dm-linear", dir, &disk);

    assert!(section(&s, "create").contains("rc=0"), "{s:#?}");
    assert!(
        section(&s, "create")
            .lines()
            .any(|l| l.starts_with("pool-root 253:")),
        "{s:#?}"
    );
    // The mapping reads exactly the region, through every node.
    let want = sha256_hex(&region);
    for name in ["sha", "sha-dm-node", "sha-lvm-link"] {
        assert!(
            section(&s, name).starts_with(&want),
            "{name}: {} vs {want}",
            section(&s, name)
        );
    }
    assert_eq!(section(&s, "size").trim(), LINEAR_SECTORS.to_string());
    assert_eq!(section(&s, "sysfs-name").trim(), "pool-root");
    // dmsetup's table is ours, with the disk as major:minor.
    let vda = section(&s, "vda-dev").trim().to_string();
    let expected = format!("0 {LINEAR_SECTORS} linear {vda} {LINEAR_START}\n");
    assert_eq!(section(&s, "dmsetup-table"), expected);
    assert_eq!(section(&s, "agent-table"), expected);
    // dmsetup info: name, major, minor, uuid, attributes (L = live, w = writable), one segment.
    let info: Vec<&str> = section(&s, "dmsetup-info").trim().split(':').collect();
    assert_eq!(info[0], "pool-root", "{info:?}");
    assert_eq!(info[3], "LVM-landfalltest", "{info:?}");
    assert!(info[4].starts_with("L--w"), "{info:?}");
    assert_eq!(info[5], "1", "{info:?}");
    let agent_list = section(&s, "agent-list");
    assert_eq!(
        agent_list,
        format!("pool-root {}:{} LVM-landfalltest\n", info[1], info[2])
    );
    let agent_info = section(&s, "agent-info");
    assert!(agent_info.contains("State: ACTIVE"), "{agent_info}");
    assert!(
        agent_info.contains(&format!("Major, minor: {}, {}", info[1], info[2])),
        "{agent_info}"
    );
    // Bad tables: a typed error naming the request, and no device left behind.
    // A missing device fails the load; a too-long target the resume (the
    // kernel checks areas when the table goes live), after which the device
    // is removed again.
    let out = section(&s, "bad-device");
    assert!(out.contains("DM_TABLE_LOAD of \"bad1\" failed"), "{out}");
    assert!(!out.contains("rc=0"), "{out}");
    let out = section(&s, "bad-size");
    assert!(
        out.contains("DM_TABLE_LOAD of \"bad2\" failed")
            || out.contains("DM_DEV_SUSPEND (resume) of \"bad2\" failed"),
        "{out}"
    );
    assert!(!out.contains("rc=0"), "{out}");
    let bad_name = section(&s, "bad-name");
    assert!(
        bad_name.contains("Device-mapper name \"a/b\""),
        "{bad_name}"
    );
    let after_bad = section(&s, "after-bad");
    assert!(
        !after_bad.contains("bad1") && !after_bad.contains("bad2"),
        "{after_bad}"
    );
    assert!(after_bad.contains("pool-root"), "{after_bad}");
    // Remove: gone for dmsetup, its nodes and link gone.
    assert!(section(&s, "remove").contains("rc=0"), "{s:#?}");
    let after = section(&s, "after-remove");
    assert!(after.contains("No devices found"), "{after}");
    assert!(
        !after.contains("pool-root")
            && !after.contains("dm-0")
            && !after.lines().any(|l| l == "pool"),
        "{after}"
    );
    // Nothing wrote to the disk: it is byte-identical.
    assert!(after_vm == before, "the data disk changed");
}

#[test]
fn crypt_devices_encrypt_on_disk_and_dmsetup_decrypts_them() {
    let kernel = debian_kernel().unwrap();
    let dir = TestDir::new("dm-crypt").unwrap();
    let disk = sparse_image(&dir.join("data.img"), 64 << 20).unwrap();
    // The same 512 bytes in every sector: XTS's per-sector tweak must still make
    // every ciphertext sector different.
    let sector: Vec<u8> = (0..512).map(|i| (i * 7 % 256) as u8).collect();
    let plain: Vec<u8> = sector.repeat(CRYPT_SECTORS as usize);
    let table =
        format!("0 {CRYPT_SECTORS} crypt aes-xts-plain64 {KEY_HEX} 0 /dev/vda {CRYPT_START}\n");
    let script = "section modules; landfall-agent dm load-modules >&3 2>&3\n\
         section create; landfall-agent dm create secret --uuid CRYPT-PLAIN-landfalltest --table-file /crypt.table >&3 2>&3; echo rc=$? >&3\n\
         section write; dd if=/plain.bin of=/dev/mapper/secret bs=65536 conv=fsync 2>&3; echo rc=$? >&3\n\
         echo 3 > /proc/sys/vm/drop_caches\n\
         section sha; dd if=/dev/mapper/secret bs=65536 2>/dev/null | sha256sum >&3\n\
         section agent-table; landfall-agent dm table secret >&3 2>&3\n\
         section dmsetup-table; dmsetup table --showkeys secret >&3 2>&3\n\
         section remove; landfall-agent dm remove secret >&3 2>&3; echo rc=$? >&3\n\
         section dmsetup-create; dmsetup create ref < /crypt.table >&3 2>&3; echo rc=$? >&3\n\
         section ref-sha; dd if=/dev/mapper/ref bs=65536 2>/dev/null | sha256sum >&3\n\
         section ref-remove; dmsetup remove ref >&3 2>&3; echo rc=$? >&3\n\
         section bad-key; landfall-agent dm create bad --table '0 8 crypt aes-xts-plain64 00zz 0 /dev/vda 0' >&3 2>&3; echo rc=$? >&3\n\
         section after; dmsetup ls >&3 2>&3\n";
    initramfs(
        &kernel,
        &dir,
        &[
            ("/plain.bin", plain.clone()),
            ("/crypt.table", table.clone().into_bytes()),
        ],
        script,
    );
    let (s, raw) = run_vm("dm-crypt", dir, &disk);

    let modules = section(&s, "modules");
    assert!(!modules.contains("failed to load"), "{modules}");
    assert!(section(&s, "create").contains("rc=0"), "{s:#?}");
    assert!(section(&s, "write").contains("rc=0"), "{s:#?}");
    let want = sha256_hex(&plain);
    assert!(section(&s, "sha").starts_with(&want), "{s:#?}");
    // The kernel reports the table we loaded (dmsetup, with the key shown).
    let vda_table = section(&s, "dmsetup-table");
    assert_eq!(section(&s, "agent-table"), vda_table);
    let words: Vec<&str> = vda_table.split_whitespace().collect();
    let len = CRYPT_SECTORS.to_string();
    assert_eq!(
        words[..5],
        ["0", len.as_str(), "crypt", "aes-xts-plain64", KEY_HEX],
        "{vda_table}"
    );
    assert_eq!(words[7], CRYPT_START.to_string(), "{vda_table}");
    assert!(section(&s, "remove").contains("rc=0"), "{s:#?}");
    // Debian's dmsetup, given the same table, reads our plaintext back.
    assert!(section(&s, "dmsetup-create").contains("rc=0"), "{s:#?}");
    assert!(section(&s, "ref-sha").starts_with(&want), "{s:#?}");
    assert!(section(&s, "ref-remove").contains("rc=0"), "{s:#?}");
    // A key that is no hex: a typed error, without the key in it, nothing left.
    let bad = section(&s, "bad-key");
    assert!(bad.contains("DM_TABLE_LOAD of \"bad\" failed"), "{bad}");
    assert!(!bad.contains("00zz"), "{bad}");
    assert!(section(&s, "after").contains("No devices found"), "{s:#?}");

    // On the raw disk: ciphertext, not the plaintext, every sector different,
    // and nothing outside the region touched.
    let start = (CRYPT_START * SECTOR) as usize;
    let end = start + plain.len();
    let cipher = &raw[start..end];
    assert_ne!(cipher, &plain[..]);
    let sectors: std::collections::HashSet<&[u8]> = cipher.chunks(512).collect();
    assert_eq!(
        sectors.len(),
        CRYPT_SECTORS as usize,
        "repeated ciphertext sectors"
    );
    assert!(!cipher.chunks(512).any(|c| c == sector.as_slice()));
    assert!(
        raw[..start].iter().all(|&b| b == 0),
        "bytes before the region changed"
    );
    assert!(
        raw[end..].iter().all(|&b| b == 0),
        "bytes after the region changed"
    );
}
