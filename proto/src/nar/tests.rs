//! NAR round-trip and hostile-input tests. The reference for the bytes is real
//! Nix (`nix-store --dump`, `nix-hash`, from Debian's `nix-bin`).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Cursor, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use super::wire::{put_len, put_str, RawNar as Nar};
use super::*;

/// What a person would compare: every node by relative path.
#[derive(Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File { executable: bool, contents: Vec<u8> },
    Symlink(Vec<u8>),
}

/// Lays out a tree with every kind of node the encoder must handle.
pub(crate) fn make_tree(root: &Path) {
    fs::create_dir(root).unwrap();
    let w = |p: &str, data: &[u8], mode: u32| {
        let path = root.join(p);
        fs::write(&path, data).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    };
    fs::create_dir_all(root.join("bin")).unwrap();
    w("bin/tool", b"#!/bin/sh\necho hi\n", 0o755);
    w("empty", b"", 0o644);
    w("seven", b"1234567", 0o644);
    w("eight", b"12345678", 0o600);
    let big: Vec<u8> = (0..300_001u32).map(|i| (i * 7 % 251) as u8).collect();
    w("big.bin", &big, 0o644);
    fs::create_dir(root.join("emptydir")).unwrap();
    symlink("bin/tool", root.join("rel-link")).unwrap();
    symlink(
        "/nix/store/0mdqa9w1p6cmli6976v4wi0sw9r4p5pr-x/bin",
        root.join("abs-link"),
    )
    .unwrap();
    symlink("dangling/nowhere", root.join("dangling")).unwrap();
    let mut deep = root.join("deep");
    for i in 0..24 {
        deep = deep.join(format!("d{i}"));
    }
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join("leaf"), b"bottom").unwrap();
    fs::write(root.join("héllo-wörld-日本"), b"utf8").unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"raw-\xff\xfe-name");
    fs::write(root.join(bad), b"not utf-8").unwrap();
    // Names whose byte order differs from a case-insensitive or locale order.
    for n in ["B", "a", "_", "Z", "z", "a.b", "a-b"] {
        fs::write(root.join("order").join(n), n).unwrap_or_else(|_| {
            fs::create_dir_all(root.join("order")).unwrap();
            fs::write(root.join("order").join(n), n).unwrap();
        });
    }
    for i in 0..300 {
        fs::write(root.join(format!("many-{i:03}")), format!("{i}")).unwrap();
    }
}

fn walk(root: &Path, rel: Vec<u8>, out: &mut BTreeMap<Vec<u8>, Node>) {
    let path = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(std::ffi::OsStr::from_bytes(&rel))
    };
    let meta = fs::symlink_metadata(&path).unwrap();
    if meta.is_symlink() {
        let t = fs::read_link(&path).unwrap();
        out.insert(rel, Node::Symlink(t.as_os_str().as_bytes().to_vec()));
    } else if meta.is_dir() {
        out.insert(rel.clone(), Node::Dir);
        for e in fs::read_dir(&path).unwrap() {
            let name = e.unwrap().file_name();
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(name.as_bytes());
            walk(root, child, out);
        }
    } else {
        out.insert(
            rel,
            Node::File {
                executable: meta.permissions().mode() & 0o100 != 0,
                contents: fs::read(&path).unwrap(),
            },
        );
    }
}

fn decode_all(nar: &[u8]) -> Result<(BTreeMap<Vec<u8>, Node>, NarSummary), DecodeError> {
    let mut dec = NarDecoder::new(Cursor::new(nar));
    let mut out = BTreeMap::new();
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    let mut file: Option<(bool, Vec<u8>)> = None;
    while let Some(ev) = dec.next_event()? {
        match ev {
            NarEvent::Directory => {
                out.insert(cur.clone(), Node::Dir);
                stack.push(cur.clone());
            }
            NarEvent::Entry { name } => {
                cur = stack.last().unwrap().clone();
                if !cur.is_empty() {
                    cur.push(b'/');
                }
                cur.extend_from_slice(name);
            }
            NarEvent::File { executable, .. } => file = Some((executable, Vec::new())),
            NarEvent::Data(d) => file.as_mut().unwrap().1.extend_from_slice(d),
            NarEvent::FileEnd => {
                let (executable, contents) = file.take().unwrap();
                out.insert(
                    cur.clone(),
                    Node::File {
                        executable,
                        contents,
                    },
                );
            }
            NarEvent::Symlink { target } => {
                out.insert(cur.clone(), Node::Symlink(target.to_vec()));
            }
            NarEvent::DirectoryEnd => {
                stack.pop();
            }
        }
    }
    assert_eq!(dec.consumed(), nar.len() as u64);
    Ok((out, dec.summary().unwrap()))
}

fn nix_tool(cmd: &str) -> Command {
    let probe = Command::new(cmd).arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "{cmd} not found: install the Debian package nix-bin"
    );
    Command::new(cmd)
}

#[test]
fn encoding_matches_nix_store_dump_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make_tree(&root);
    let mut ours = Vec::new();
    let summary = dump_path(&root, &mut ours).unwrap();
    let nix = nix_tool("nix-store")
        .arg("--dump")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        nix.status.success(),
        "{}",
        String::from_utf8_lossy(&nix.stderr)
    );
    assert_eq!(ours.len(), nix.stdout.len());
    assert!(ours == nix.stdout, "NAR bytes differ from nix-store --dump");
    assert_eq!(summary.nar_size, ours.len() as u64);

    let h = nix_tool("nix-hash")
        .args(["--type", "sha256", "--base32"])
        .arg(&root)
        .output()
        .unwrap();
    let nix_hash = String::from_utf8(h.stdout).unwrap();
    assert_eq!(
        format!("sha256:{}", nix_hash.trim()),
        summary.nar_hash.to_string()
    );
}

#[test]
fn single_file_and_symlink_roots_match_nix() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("exe");
    fs::write(&f, b"#!x").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o555)).unwrap();
    let l = tmp.path().join("link");
    symlink("/nix/store/x", &l).unwrap();
    for p in [&f, &l] {
        let mut ours = Vec::new();
        dump_path(p, &mut ours).unwrap();
        let nix = nix_tool("nix-store").arg("--dump").arg(p).output().unwrap();
        assert!(ours == nix.stdout, "{p:?}");
    }
}

#[test]
fn decoding_gives_back_the_same_tree_and_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make_tree(&root);
    let mut nar = Vec::new();
    let summary = dump_path(&root, &mut nar).unwrap();
    let (decoded, dsum) = decode_all(&nar).unwrap();
    let mut walked = BTreeMap::new();
    walk(&root, Vec::new(), &mut walked);
    assert_eq!(decoded, walked);
    assert_eq!(dsum, summary);
}

#[test]
fn encoder_reads_in_small_pieces_identically() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make_tree(&root);
    let mut whole = Vec::new();
    dump_path(&root, &mut whole).unwrap();
    let mut enc = NarEncoder::new(&root);
    let mut pieces = Vec::new();
    let mut buf = [0u8; 13];
    loop {
        let n = enc.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        pieces.extend_from_slice(&buf[..n]);
    }
    assert!(pieces == whole);
    assert_eq!(enc.summary().unwrap().nar_size, whole.len() as u64);
    assert_eq!(enc.nar_size(), Some(whole.len() as u64));
}

#[test]
fn an_unhashed_encoder_writes_the_same_bytes_and_counts_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("tree");
    make_tree(&root);
    let mut whole = Vec::new();
    dump_path(&root, &mut whole).unwrap();
    let mut enc = NarEncoder::unhashed(&root);
    let mut out = Vec::new();
    assert_eq!(enc.nar_size(), None);
    enc.read_to_end(&mut out).unwrap();
    assert!(out == whole);
    assert_eq!(enc.nar_size(), Some(whole.len() as u64));
    assert_eq!(enc.summary(), None);
}

// ------------------------------------------------------------ hostile input

fn dir_with(names: &[&[u8]]) -> Vec<u8> {
    let mut n = Nar::new().dir();
    for name in names {
        n = n.entry(name).file(b"x").close();
    }
    n.close().0
}

#[test]
fn hand_built_nar_is_accepted() {
    let (tree, _) = decode_all(&dir_with(&[b"a", b"b"])).unwrap();
    assert_eq!(tree.len(), 3);
}

#[test]
fn rejects_dot_dot() {
    assert!(matches!(
        decode_all(&dir_with(&[b".."])),
        Err(DecodeError::BadName { .. })
    ));
}

#[test]
fn rejects_dot() {
    assert!(matches!(
        decode_all(&dir_with(&[b"."])),
        Err(DecodeError::BadName { .. })
    ));
}

#[test]
fn rejects_slash_in_name() {
    assert!(matches!(
        decode_all(&dir_with(&[b"a/b"])),
        Err(DecodeError::BadName {
            reason: "contains '/'",
            ..
        })
    ));
}

#[test]
fn rejects_nul_in_name() {
    assert!(matches!(
        decode_all(&dir_with(&[b"a\0b"])),
        Err(DecodeError::BadName {
            reason: "contains NUL",
            ..
        })
    ));
}

#[test]
fn rejects_empty_name() {
    assert!(matches!(
        decode_all(&dir_with(&[b""])),
        Err(DecodeError::BadName {
            reason: "empty",
            ..
        })
    ));
}

#[test]
fn rejects_unsorted_entries() {
    assert!(matches!(
        decode_all(&dir_with(&[b"b", b"a"])),
        Err(DecodeError::Unsorted { .. })
    ));
}

#[test]
fn rejects_duplicate_entries() {
    assert!(matches!(
        decode_all(&dir_with(&[b"a", b"a"])),
        Err(DecodeError::Duplicate(_))
    ));
}

#[test]
fn rejects_directory_under_a_name_used_by_a_symlink() {
    // "a" -> /etc, then "a" again as a directory holding "passwd".
    let nar = Nar::new()
        .dir()
        .entry(b"a")
        .link(b"/etc")
        .close()
        .entry(b"a")
        .dir()
        .entry(b"passwd")
        .file(b"root::0:0::/:/bin/sh")
        .close()
        .close()
        .close()
        .close()
        .0;
    assert!(matches!(decode_all(&nar), Err(DecodeError::Duplicate(_))));
}

#[test]
fn rejects_children_inside_a_symlink_node() {
    // The grammar has no place for entries in a symlink: `entry` where `)` belongs.
    let nar = Nar::new()
        .s(&[b"(", b"type", b"symlink", b"target", b"/etc"])
        .entry(b"passwd")
        .file(b"x")
        .close()
        .close()
        .0;
    assert!(matches!(
        decode_all(&nar),
        Err(DecodeError::UnexpectedTag { .. })
    ));
}

#[test]
fn rejects_absurd_name_length() {
    let mut v = Nar::new().dir().s(&[b"entry", b"(", b"name"]).0;
    put_len(&mut v, u64::MAX);
    assert!(matches!(
        decode_all(&v),
        Err(DecodeError::AbsurdLength { .. })
    ));
}

#[test]
fn rejects_absurd_file_length() {
    let mut v = Nar::new().s(&[b"(", b"type", b"regular", b"contents"]).0;
    put_len(&mut v, u64::MAX - 3);
    assert!(matches!(
        decode_all(&v),
        Err(DecodeError::AbsurdLength { what: "file", .. })
    ));
}

#[test]
fn rejects_absurd_tag_length() {
    let mut v = Nar::new().0;
    put_len(&mut v, 1 << 40);
    assert!(matches!(
        decode_all(&v),
        Err(DecodeError::AbsurdLength { .. })
    ));
}

#[test]
fn rejects_too_deep_nesting() {
    let mut n = Nar::new();
    for _ in 0..20 {
        n = n.dir().entry(b"d");
    }
    let mut dec = NarDecoder::with_limits(
        Cursor::new(n.0),
        Limits {
            max_depth: 10,
            ..Limits::default()
        },
    );
    let err = loop {
        match dec.next_event() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("accepted"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, DecodeError::TooDeep(10)));
}

#[test]
fn rejects_truncated_streams_at_every_length() {
    let full = dir_with(&[b"a", b"bb", b"ccc"]);
    for cut in 0..full.len() {
        let r = decode_all(&full[..cut]);
        assert!(
            matches!(r, Err(DecodeError::Truncated)),
            "cut at {cut}: {r:?}"
        );
    }
}

#[test]
fn rejects_nonzero_padding() {
    let mut v = dir_with(&[b"a"]);
    // The name "a" is at a known place: find it and dirty its padding.
    let pos = v.windows(8).position(|w| w == b"a\0\0\0\0\0\0\0").unwrap();
    v[pos + 3] = 1;
    assert!(matches!(decode_all(&v), Err(DecodeError::NonZeroPadding)));
}

#[test]
fn rejects_wrong_magic() {
    let mut v = Vec::new();
    put_str(&mut v, b"nix-archive-2");
    assert!(matches!(decode_all(&v), Err(DecodeError::BadMagic)));
    assert!(matches!(
        decode_all(b"GET / HTTP/1.1\r\n\r\n"),
        Err(DecodeError::BadMagic)
    ));
}

#[test]
fn rejects_unknown_node_type() {
    let v = Nar::new().s(&[b"(", b"type", b"fifo", b")"]).0;
    assert!(matches!(decode_all(&v), Err(DecodeError::UnknownType(_))));
}

#[test]
fn rejects_bad_symlink_targets() {
    for t in [&b""[..], b"a\0b"] {
        let v = Nar::new().link(t).0;
        assert!(
            matches!(decode_all(&v), Err(DecodeError::BadTarget(_))),
            "{t:?}"
        );
    }
}

#[test]
fn does_not_read_past_the_end() {
    let mut v = dir_with(&[b"a"]);
    let len = v.len();
    v.extend_from_slice(b"TRAILING");
    let mut cur = Cursor::new(v);
    let mut dec = NarDecoder::new(&mut cur);
    while dec.next_event().unwrap().is_some() {}
    assert_eq!(dec.summary().unwrap().nar_size, len as u64);
    assert_eq!(cur.position(), len as u64);
}

#[test]
fn random_mutations_never_panic() {
    let base = dir_with(&[b"a", b"b", b"c"]);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        let mut v = base.clone();
        for _ in 0..3 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % v.len();
            v[i] = (seed >> 32) as u8;
        }
        let _ = decode_all(&v);
    }
}
