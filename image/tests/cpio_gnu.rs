//! Our newc writer and reader against an independent implementation: GNU cpio.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

use common::require_tool;
use landfall_image::cpio::{read_archive, ArchiveTree, EntryKind};
use landfall_image::{append_archive, session_cpio, SessionFile};

#[test]
fn gnu_cpio_extracts_what_we_write() {
    require_tool("cpio", "cpio");
    let mut tree = ArchiveTree::new();
    tree.file("init", 0o755, b"#!/bin/sh\nexec true\n".to_vec())
        .unwrap();
    tree.file("etc/secret", 0o600, b"s3cret".to_vec()).unwrap();
    tree.file("etc/odd-size", 0o644, vec![0xAB; 4097]).unwrap();
    tree.file("etc/empty", 0o444, Vec::new()).unwrap();
    tree.directory("tmp", 0o1777).unwrap();
    tree.symlink("bin/sh", "/init").unwrap();
    tree.symlink("lib/rel", "../etc/secret").unwrap();
    tree.char_device("dev/console", 0o600, 5, 1).unwrap();
    let archive = tree.to_bytes().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("cpio")
        .args(["-idmv", "--no-absolute-filenames"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning cpio");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &archive).unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "cpio failed: {stderr}");
    assert!(!stderr.contains("warning"), "cpio warned: {stderr}");

    let root = dir.path();
    let mode = |p: &str| {
        fs::symlink_metadata(root.join(p))
            .unwrap()
            .permissions()
            .mode()
    };
    assert_eq!(
        fs::read(root.join("init")).unwrap(),
        b"#!/bin/sh\nexec true\n"
    );
    assert_eq!(mode("init"), 0o100755);
    assert_eq!(fs::read(root.join("etc/secret")).unwrap(), b"s3cret");
    assert_eq!(mode("etc/secret"), 0o100600);
    assert_eq!(
        fs::read(root.join("etc/odd-size")).unwrap(),
        vec![0xAB; 4097]
    );
    assert_eq!(mode("etc/empty"), 0o100444);
    assert_eq!(mode("tmp"), 0o041777);
    assert_eq!(mode("etc"), 0o040755);
    assert_eq!(
        fs::read_link(root.join("bin/sh")).unwrap().to_str(),
        Some("/init")
    );
    assert_eq!(
        fs::read_link(root.join("lib/rel")).unwrap().to_str(),
        Some("../etc/secret")
    );
    let console = fs::symlink_metadata(root.join("dev/console")).unwrap();
    assert!(
        console.file_type().is_char_device(),
        "dev/console is not a char device"
    );
    assert_eq!(console.rdev(), libc_makedev(5, 1));
    assert_eq!(console.mode() & 0o7777, 0o600);
    assert_eq!(console.mtime(), 0, "mtime preserved as 0 with -m");
}

#[test]
fn we_read_what_gnu_cpio_writes() {
    require_tool("cpio", "cpio");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join("a/b/file"), b"hello from gnu cpio").unwrap();
    fs::set_permissions(root.join("a/b/file"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(root.join("a/x"), vec![7u8; 10_001]).unwrap();
    std::os::unix::fs::symlink("b/file", root.join("a/link")).unwrap();
    let mut child = Command::new("cpio")
        .args(["-o", "-H", "newc", "--quiet"])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(
        child.stdin.as_mut().unwrap(),
        b"a\na/b\na/b/file\na/x\na/link\n",
    )
    .unwrap();
    drop(child.stdin.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        output.stdout.len() % 512,
        0,
        "GNU cpio pads to 512-byte blocks"
    );

    let entries = read_archive(&output.stdout).unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["a", "a/b", "a/b/file", "a/x", "a/link"]);
    assert_eq!(entries[1].kind, EntryKind::Directory);
    assert_eq!(
        entries[2].kind,
        EntryKind::File(b"hello from gnu cpio".to_vec())
    );
    assert_eq!(entries[2].perm, 0o640);
    assert_eq!(entries[3].kind, EntryKind::File(vec![7u8; 10_001]));
    assert_eq!(entries[4].kind, EntryKind::Symlink("b/file".into()));
}

#[test]
fn gnu_cpio_reads_a_session_archive_appended_to_another() {
    require_tool("cpio", "cpio");
    let mut first = ArchiveTree::new();
    first.file("init", 0o755, b"x".to_vec()).unwrap();
    let mut initrd = first.to_bytes().unwrap();
    initrd.push(0); // an odd length, as a compressed initrd may have
    let session = session_cpio(&[SessionFile {
        path: "/etc/landfall/ca.pem".into(),
        mode: 0o644,
        data: b"CA".to_vec(),
    }])
    .unwrap();
    append_archive(&mut initrd, &session);
    let offset = initrd.len() - session.len();
    assert_eq!(offset % 4, 0);

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("cpio")
        .args(["-idv", "--no-absolute-filenames"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), &initrd[offset..]).unwrap();
    drop(child.stdin.take());
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(
        fs::read(dir.path().join("etc/landfall/ca.pem")).unwrap(),
        b"CA"
    );
}

/// `makedev` as glibc encodes it.
fn libc_makedev(major: u64, minor: u64) -> u64 {
    ((major & 0xfffff000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffffff00) << 12)
        | (minor & 0xff)
}
