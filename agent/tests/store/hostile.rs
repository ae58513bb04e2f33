//! Hostile NARs against the store engine: each case is rejected with a typed
//! error, leaves nothing behind in the store (no temporary tree, no final
//! path), never writes outside the store, and leaves other paths intact.

use crate::store_common as common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use landfall_agent::store::{NarUnpacker, UnpackError};
use landfall_proto::nar::{dump_path, DecodeError, NarHasher, StorePath};

const GOOD: &str = "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-good";
const BAD: &str = "/nix/store/1mdqa9w1p6cmli6976v4wi0sw9r4p5pr-bad";

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
    unpacker: NarUnpacker,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let unpacker = NarUnpacker::open(&root).unwrap();
    Env {
        _tmp: tmp,
        root,
        outside,
        unpacker,
    }
}

impl Env {
    fn store(&self) -> PathBuf {
        self.root.join("nix/store")
    }

    /// Unpacks `nar` as BAD, announcing its true hash and size (so only the
    /// structure can make it fail).
    fn unpack_bad(&self, nar: &[u8]) -> Result<(), UnpackError> {
        let mut h = NarHasher::new();
        h.update(nar);
        let (hash, size) = h.finish();
        self.unpacker
            .unpack(&StorePath::parse(BAD).unwrap(), &hash, size, nar)
            .map(|_| ())
    }

    /// Installs GOOD (a small real tree) and returns its NAR.
    fn install_good(&self) -> Vec<u8> {
        let src = self._tmp.path().join("good-src");
        fs::create_dir_all(src.join("bin")).unwrap();
        fs::write(src.join("bin/tool"), b"tool contents").unwrap();
        fs::write(src.join("data"), vec![7u8; 100_000]).unwrap();
        let mut nar = Vec::new();
        let s = dump_path(&src, &mut nar).unwrap();
        self.unpacker
            .unpack(
                &StorePath::parse(GOOD).unwrap(),
                &s.nar_hash,
                s.nar_size,
                &nar[..],
            )
            .unwrap();
        nar
    }

    /// Nothing of BAD is in the store, GOOD (if installed) is intact, the
    /// outside directory is untouched.
    fn assert_clean(&self) {
        let names = common::entries(&self.store());
        for n in &names {
            assert!(
                !n.ends_with(b"-bad") && !n.starts_with(b".landfall-tmp-"),
                "left behind: {}",
                n.escape_ascii()
            );
        }
        let good = self.store().join("0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-good");
        if good.exists() {
            assert_eq!(fs::read(good.join("bin/tool")).unwrap(), b"tool contents");
            assert_eq!(fs::read(good.join("data")).unwrap(), vec![7u8; 100_000]);
        }
        assert!(
            common::entries(&self.outside).is_empty(),
            "wrote outside the store"
        );
    }
}

fn dir_with(entries: &[(&[u8], &[&[u8]])]) -> Vec<u8> {
    let mut toks: Vec<&[u8]> = vec![b"(", b"type", b"directory"];
    for (name, node) in entries {
        toks.extend_from_slice(&[b"entry", b"(", b"name", name, b"node"]);
        toks.extend_from_slice(node);
        toks.push(b")");
    }
    toks.push(b")");
    common::nar(&toks)
}

const FILE: &[&[u8]] = &[b"(", b"type", b"regular", b"contents", b"pwned", b")"];

fn expect_decode(e: &Env, nar: &[u8], check: impl Fn(&DecodeError) -> bool) {
    e.install_good();
    match e.unpack_bad(nar) {
        Err(UnpackError::Decode { source, .. }) => assert!(check(&source), "{source:?}"),
        other => panic!("expected a decode error, got {other:?}"),
    }
    e.assert_clean();
}

#[test]
fn dot_dot_entry() {
    let e = env();
    // A valid first entry is written before the bad one arrives: it must go too.
    let nar = dir_with(&[(b"+first", FILE), (b"..", FILE)]);
    expect_decode(&e, &nar, |d| matches!(d, DecodeError::BadName { .. }));
}

#[test]
fn slash_in_name() {
    let e = env();
    let nar = dir_with(&[(b"../../outside/pwned", FILE)]);
    expect_decode(&e, &nar, |d| matches!(d, DecodeError::BadName { .. }));
}

#[test]
fn nul_in_name() {
    let e = env();
    expect_decode(&e, &dir_with(&[(b"a\0b", FILE)]), |d| {
        matches!(d, DecodeError::BadName { .. })
    });
}

#[test]
fn empty_name() {
    let e = env();
    expect_decode(&e, &dir_with(&[(b"", FILE)]), |d| {
        matches!(d, DecodeError::BadName { .. })
    });
}

#[test]
fn dot_name() {
    let e = env();
    expect_decode(&e, &dir_with(&[(b".", FILE)]), |d| {
        matches!(d, DecodeError::BadName { .. })
    });
}

#[test]
fn unsorted_entries() {
    let e = env();
    expect_decode(&e, &dir_with(&[(b"b", FILE), (b"a", FILE)]), |d| {
        matches!(d, DecodeError::Unsorted { .. })
    });
}

#[test]
fn duplicate_entries() {
    let e = env();
    expect_decode(&e, &dir_with(&[(b"a", FILE), (b"a", FILE)]), |d| {
        matches!(d, DecodeError::Duplicate(_))
    });
}

#[test]
fn symlink_then_directory_of_the_same_name_never_writes_through_it() {
    let e = env();
    let outside = e.outside.to_str().unwrap().as_bytes().to_vec();
    let link: Vec<&[u8]> = vec![b"(", b"type", b"symlink", b"target", &outside, b")"];
    let sub = [
        &b"("[..],
        b"type",
        b"directory",
        b"entry",
        b"(",
        b"name",
        b"pwned",
        b"node",
    ];
    let mut node: Vec<&[u8]> = sub.to_vec();
    node.extend_from_slice(FILE);
    node.extend_from_slice(&[b")", b")"]);
    let nar = dir_with(&[(b"a", &link), (b"a", &node)]);
    expect_decode(&e, &nar, |d| matches!(d, DecodeError::Duplicate(_)));
}

#[test]
fn node_beneath_a_symlink() {
    let e = env();
    let nar = common::nar(&[
        b"(",
        b"type",
        b"symlink",
        b"target",
        b"/tmp",
        b"entry",
        b"(",
        b"name",
        b"x",
        b"node",
        b"(",
        b"type",
        b"regular",
        b"contents",
        b"pwned",
        b")",
        b")",
        b")",
    ]);
    expect_decode(&e, &nar, |d| matches!(d, DecodeError::UnexpectedTag { .. }));
}

#[test]
fn absurd_lengths() {
    let e = env();
    let mut nar = common::nar(&[b"(", b"type", b"regular", b"contents"]);
    nar.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    nar.extend_from_slice(b"some data");
    expect_decode(&e, &nar, |d| matches!(d, DecodeError::AbsurdLength { .. }));
    let mut nar = common::nar(&[b"(", b"type", b"directory", b"entry", b"(", b"name"]);
    nar.extend_from_slice(&(1u64 << 20).to_le_bytes());
    expect_decode(&e, &nar, |d| matches!(d, DecodeError::AbsurdLength { .. }));
}

#[test]
fn truncated_stream() {
    let e = env();
    let nar = e.install_good();
    for cut in [8, nar.len() / 2, nar.len() - 1] {
        let piece = &nar[..cut];
        // Announce the full NAR's hash and size: the stream just stops early.
        let mut h = NarHasher::new();
        h.update(&nar);
        let (hash, size) = h.finish();
        let r = e
            .unpacker
            .unpack(&StorePath::parse(BAD).unwrap(), &hash, size, piece);
        assert!(
            matches!(
                r,
                Err(UnpackError::Decode {
                    source: DecodeError::Truncated,
                    ..
                })
            ),
            "{r:?}"
        );
        e.assert_clean();
    }
}

#[test]
fn nonzero_padding() {
    let e = env();
    let mut nar = dir_with(&[(b"a", FILE)]);
    let pos = nar
        .windows(8)
        .position(|w| w == b"a\0\0\0\0\0\0\0")
        .unwrap();
    nar[pos + 5] = 0x41;
    expect_decode(&e, &nar, |d| matches!(d, DecodeError::NonZeroPadding));
}

#[test]
fn wrong_magic() {
    let e = env();
    let mut nar = dir_with(&[(b"a", FILE)]);
    nar[8] = b'N';
    expect_decode(&e, &nar, |d| matches!(d, DecodeError::BadMagic));
}

#[test]
fn byte_tampered_in_flight_is_a_hash_mismatch_and_leaves_nothing() {
    let e = env();
    let good = e.install_good();
    // The same NAR under another name, announced with its true hash, with one
    // content byte flipped on the way.
    let mut h = NarHasher::new();
    h.update(&good);
    let (hash, size) = h.finish();
    let mut tampered = good.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 0x01;
    let r = e
        .unpacker
        .unpack(&StorePath::parse(BAD).unwrap(), &hash, size, &tampered[..]);
    assert!(matches!(r, Err(UnpackError::HashMismatch { .. })), "{r:?}");
    e.assert_clean();
}

#[test]
fn size_mismatches_and_trailing_bytes() {
    let e = env();
    let good = e.install_good();
    let mut h = NarHasher::new();
    h.update(&good);
    let (hash, size) = h.finish();
    let bad = StorePath::parse(BAD).unwrap();
    // Announced shorter than it is: stopped at the announced size plus one byte.
    let r = e.unpacker.unpack(&bad, &hash, size - 8, &good[..]);
    assert!(matches!(r, Err(UnpackError::SizeMismatch { .. })), "{r:?}");
    e.assert_clean();
    // Announced longer than it is.
    let r = e.unpacker.unpack(&bad, &hash, size + 8, &good[..]);
    assert!(matches!(r, Err(UnpackError::SizeMismatch { .. })), "{r:?}");
    e.assert_clean();
    // Bytes after the NAR's end.
    let mut longer = good.clone();
    longer.extend_from_slice(&[0u8; 8]);
    let r = e.unpacker.unpack(&bad, &hash, size, &longer[..]);
    assert!(
        matches!(
            r,
            Err(UnpackError::TrailingData { .. }) | Err(UnpackError::SizeMismatch { .. })
        ),
        "{r:?}"
    );
    e.assert_clean();
}

#[test]
fn preexisting_symlinks_in_the_store_are_never_followed() {
    let e = env();
    let store = e.store();
    let base = "1mdqa9w1p6cmli6976v4wi0sw9r4p5pr-bad";
    // Planted: the temporary name and the final name both point outside.
    symlink(&e.outside, store.join(format!(".landfall-tmp-{base}"))).unwrap();
    symlink(&e.outside, store.join(base)).unwrap();
    let src = e._tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/file"), b"inside").unwrap();
    let mut nar = Vec::new();
    let s = dump_path(&src, &mut nar).unwrap();
    e.unpacker
        .unpack(
            &StorePath::parse(BAD).unwrap(),
            &s.nar_hash,
            s.nar_size,
            &nar[..],
        )
        .unwrap();
    assert!(
        common::entries(&e.outside).is_empty(),
        "wrote through a planted symlink"
    );
    let installed = store.join(base);
    assert!(fs::symlink_metadata(&installed).unwrap().is_dir());
    assert_eq!(fs::read(installed.join("sub/file")).unwrap(), b"inside");
    assert!(!store.join(format!(".landfall-tmp-{base}")).exists());
}

#[test]
fn a_root_that_is_a_symlink_nar_installs_as_a_symlink() {
    let e = env();
    let nar = common::nar(&[b"(", b"type", b"symlink", b"target", b"/nix/store/x", b")"]);
    e.unpack_bad(&nar).unwrap();
    let p = e.store().join("1mdqa9w1p6cmli6976v4wi0sw9r4p5pr-bad");
    assert_eq!(fs::read_link(&p).unwrap(), Path::new("/nix/store/x"));
}

#[test]
fn a_root_that_is_a_file_nar_installs_as_an_executable_file() {
    let e = env();
    let nar = common::nar(&[
        b"(",
        b"type",
        b"regular",
        b"executable",
        b"",
        b"contents",
        b"#!/bin/sh\n",
        b")",
    ]);
    e.unpack_bad(&nar).unwrap();
    let p = e.store().join("1mdqa9w1p6cmli6976v4wi0sw9r4p5pr-bad");
    assert_eq!(fs::read(&p).unwrap(), b"#!/bin/sh\n");
    common::assert_canonical(&p);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o555
    );
}
