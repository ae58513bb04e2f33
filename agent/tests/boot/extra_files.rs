//! `PutFiles` against a temporary root on this host, message by message as
//! the controller sends them: the tree lands with its modes, links and
//! replaced files, owned by root; `--chown` changes owners recursively
//! without following links; host keys land 0400/0444; and every hostile or
//! mistaken request — a `..` name, an absolute name, a link pointing out, a
//! kind that is no file (a fifo), an entry beneath a link, an unknown user —
//! is refused naming the entry, with the tree (and what lies outside it)
//! exactly as it was.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use landfall_agent::service::files::{receive_files, HOST_KEY_EVENT};
use landfall_proto::v1::file_chunk::Kind;
use landfall_proto::v1::{
    ChownRule, FileChunk, FileEntry, FileKind, FilesBegin, FilesEnd, JobEvent, StepState,
};

fn dir(path: &str, mode: u32) -> FileEntry {
    FileEntry {
        path: path.into(),
        kind: FileKind::Directory as i32,
        mode,
        ..Default::default()
    }
}
fn file(path: &str, mode: u32, size: u64) -> FileEntry {
    FileEntry {
        path: path.into(),
        kind: FileKind::Regular as i32,
        mode,
        size,
        ..Default::default()
    }
}
fn link(path: &str, target: &str) -> FileEntry {
    FileEntry {
        path: path.into(),
        kind: FileKind::Symlink as i32,
        mode: 0o777,
        target: target.into(),
        ..Default::default()
    }
}
fn chown(path: &str, owner: &str, group: &str) -> ChownRule {
    ChownRule {
        path: path.into(),
        owner: owner.into(),
        group: group.into(),
    }
}

/// A request as the controller streams it: begin, each file's data (split in
/// pieces of at most 3 bytes, so files span several messages), end.
fn stream(begin: FilesBegin, files: &[(&str, &[u8])]) -> Vec<FileChunk> {
    let mut v = vec![FileChunk {
        kind: Some(Kind::Begin(begin)),
    }];
    for (_, data) in files {
        for piece in data.chunks(3) {
            v.push(FileChunk {
                kind: Some(Kind::Data(piece.to_vec())),
            });
        }
    }
    v.push(FileChunk {
        kind: Some(Kind::End(FilesEnd {})),
    });
    v
}

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("root")).unwrap();
        fs::create_dir_all(tmp.path().join("outside")).unwrap();
        fs::create_dir_all(tmp.path().join("keys")).unwrap();
        Env { tmp }
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }
    fn keys(&self) -> PathBuf {
        self.tmp.path().join("keys")
    }
    fn run(&self, msgs: Vec<FileChunk>) -> (Result<String, tonic::Status>, Vec<JobEvent>) {
        let mut it = msgs.into_iter();
        let mut next = move || it.next().map(Ok);
        let mut events = Vec::new();
        let mut emit = |e: JobEvent| events.push(e);
        let r = receive_files(&mut next, &self.root(), &self.keys(), &mut emit);
        (r, events)
    }
}

/// Everything under `p`: relative name → (kind, mode, uid, gid, content or link text).
fn snapshot(p: &Path) -> BTreeMap<String, (String, u32, u32, u32, Vec<u8>)> {
    fn walk(base: &Path, p: &Path, out: &mut BTreeMap<String, (String, u32, u32, u32, Vec<u8>)>) {
        for e in fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let md = fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(base).unwrap().display().to_string();
            let (kind, data) = if md.file_type().is_symlink() {
                (
                    "link",
                    fs::read_link(&path)
                        .unwrap()
                        .into_os_string()
                        .into_encoded_bytes(),
                )
            } else if md.is_dir() {
                ("dir", Vec::new())
            } else {
                ("file", fs::read(&path).unwrap())
            };
            out.insert(
                name,
                (kind.into(), md.mode() & 0o7777, md.uid(), md.gid(), data),
            );
            if md.is_dir() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(p, p, &mut out);
    out
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}
fn owner(p: &Path) -> (u32, u32) {
    let md = fs::symlink_metadata(p).unwrap();
    (md.uid(), md.gid())
}

#[test]
fn the_tree_lands_with_its_modes_links_and_replaced_files_owned_by_root() {
    let env = Env::new();
    let root = env.root();
    // What the disk holds before: an old file and a link where files go.
    fs::create_dir_all(root.join("etc/app")).unwrap();
    fs::write(root.join("etc/app/conf"), b"old contents that are longer").unwrap();
    fs::set_permissions(root.join("etc/app/conf"), fs::Permissions::from_mode(0o666)).unwrap();
    std::os::unix::fs::chown(root.join("etc/app/conf"), Some(1234), Some(1234)).unwrap();
    std::os::unix::fs::symlink(env.outside().join("victim"), root.join("etc/app/token")).unwrap();

    let begin = FilesBegin {
        entries: vec![
            dir("etc", 0o755),
            dir("etc/app", 0o750),
            file("etc/app/conf", 0o640, 5),
            file("etc/app/token", 0o600, 6),
            file("etc/app/run.sh", 0o4755, 10),
            file("etc/app/empty", 0o644, 0),
            link("etc/app/current", "conf"),
            link("etc/app/shell", "/run/current-system/sw/bin/sh"),
            dir("var/lib/app", 0o700),
        ],
        ..Default::default()
    };
    let (r, events) = env.run(stream(
        begin,
        &[
            ("conf", b"hello"),
            ("token", b"s3cret"),
            ("run.sh", b"#!/bin/sh\n"),
        ],
    ));
    let summary = r.unwrap();
    assert!(
        summary.starts_with("9 entries (21 bytes) written"),
        "{summary}"
    );
    assert_eq!(fs::read(root.join("etc/app/conf")).unwrap(), b"hello");
    assert_eq!(mode(&root.join("etc/app/conf")), 0o640);
    assert_eq!(owner(&root.join("etc/app/conf")), (0, 0));
    assert_eq!(mode(&root.join("etc/app")), 0o750);
    assert_eq!(mode(&root.join("etc/app/run.sh")), 0o4755);
    assert_eq!(fs::read(root.join("etc/app/empty")).unwrap(), b"");
    // The link on the disk was replaced, not written through.
    assert!(fs::symlink_metadata(root.join("etc/app/token"))
        .unwrap()
        .is_file());
    assert_eq!(fs::read(root.join("etc/app/token")).unwrap(), b"s3cret");
    assert_eq!(mode(&root.join("etc/app/token")), 0o600);
    assert!(!env.outside().join("victim").exists());
    assert_eq!(
        fs::read_link(root.join("etc/app/current")).unwrap(),
        Path::new("conf")
    );
    assert_eq!(
        fs::read_link(root.join("etc/app/shell")).unwrap(),
        Path::new("/run/current-system/sw/bin/sh")
    );
    assert_eq!(owner(&root.join("etc/app/shell")), (0, 0));
    // Implied parents: root-owned 0755.
    assert_eq!(mode(&root.join("var")), 0o755);
    assert_eq!(mode(&root.join("var/lib/app")), 0o700);
    // No temporary file left anywhere.
    assert!(snapshot(&root).keys().all(|k| !k.contains(".landfall-")));
    // Progress: one FINISHED per entry, bytes counting up to the total.
    let finished: Vec<&JobEvent> = events
        .iter()
        .filter(|e| e.state == StepState::Finished as i32)
        .collect();
    assert_eq!(finished.len(), 9);
    assert_eq!(finished.last().unwrap().bytes, 21);
    assert_eq!(finished[2].description, "etc/app/conf");
    assert!(finished.iter().all(|e| e.bytes_total == 21 && e.total == 9));
}

#[test]
fn chown_is_recursive_and_never_follows_a_link() {
    let env = Env::new();
    let root = env.root();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/home/alice:/bin/sh\n",
    )
    .unwrap();
    fs::write(
        root.join("etc/group"),
        "root:x:0:\nusers:x:100:\nwheel:x:1:\n",
    )
    .unwrap();
    let victim = env.outside().join("victim");
    fs::write(&victim, b"outside").unwrap();
    let begin = FilesBegin {
        entries: vec![
            dir("home", 0o755),
            dir("home/alice", 0o700),
            dir("home/alice/.ssh", 0o700),
            file("home/alice/.ssh/authorized_keys", 0o600, 3),
            link("home/alice/escape", victim.to_str().unwrap()),
            dir("srv", 0o755),
            file("srv/data", 0o644, 1),
        ],
        chown: vec![
            chown("home/alice", "alice", "users"),
            chown("srv/data", "4242", ""),
        ],
        ..Default::default()
    };
    let (r, events) = env.run(stream(begin, &[("ak", b"key"), ("data", b"d")]));
    r.unwrap();
    for p in [
        "home/alice",
        "home/alice/.ssh",
        "home/alice/.ssh/authorized_keys",
        "home/alice/escape",
    ] {
        assert_eq!(owner(&root.join(p)), (1000, 100), "{p}");
    }
    assert_eq!(
        owner(&root.join("home")),
        (0, 0),
        "the parent is not changed"
    );
    assert_eq!(owner(&victim), (0, 0), "the link's target is not changed");
    // OWNER alone keeps the group.
    assert_eq!(owner(&root.join("srv/data")), (4242, 0));
    assert!(events
        .iter()
        .any(|e| e.description == "chown home/alice: 4 name(s)"));
}

#[test]
fn host_keys_land_read_only_unless_the_files_bring_them() {
    let env = Env::new();
    fs::write(
        env.keys().join("ssh_host_ed25519_key"),
        b"PRIVATE-ED25519\n",
    )
    .unwrap();
    fs::write(
        env.keys().join("ssh_host_ed25519_key.pub"),
        b"ssh-ed25519 AAAAkey rescue\n",
    )
    .unwrap();
    fs::write(env.keys().join("ssh_host_rsa_key"), b"PRIVATE-RSA\n").unwrap();
    let begin = FilesBegin {
        entries: vec![
            dir("etc", 0o755),
            dir("etc/ssh", 0o755),
            file("etc/ssh/ssh_host_rsa_key", 0o600, 4),
        ],
        host_keys: true,
        ..Default::default()
    };
    let (r, events) = env.run(stream(begin, &[("rsa", b"MINE")]));
    let summary = r.unwrap();
    assert!(
        summary.contains("2 host key file(s) installed"),
        "{summary}"
    );
    let ssh = env.root().join("etc/ssh");
    assert_eq!(
        fs::read(ssh.join("ssh_host_ed25519_key")).unwrap(),
        b"PRIVATE-ED25519\n"
    );
    assert_eq!(mode(&ssh.join("ssh_host_ed25519_key")), 0o400);
    assert_eq!(mode(&ssh.join("ssh_host_ed25519_key.pub")), 0o444);
    assert_eq!(owner(&ssh.join("ssh_host_ed25519_key")), (0, 0));
    // The extra files' own key wins.
    assert_eq!(fs::read(ssh.join("ssh_host_rsa_key")).unwrap(), b"MINE");
    assert_eq!(mode(&ssh.join("ssh_host_rsa_key")), 0o600);
    assert!(events.iter().any(|e| e.description
        == format!("{HOST_KEY_EVENT}etc/ssh/ssh_host_ed25519_key.pub ssh-ed25519 AAAAkey rescue")));

    // Asked for keys the agent does not hold: refused, nothing written.
    let env = Env::new();
    fs::remove_dir(env.keys()).unwrap();
    let before = snapshot(&env.root());
    let (r, _) = env.run(stream(
        FilesBegin {
            entries: vec![file("x", 0o644, 1)],
            host_keys: true,
            ..Default::default()
        },
        &[("x", b"x")],
    ));
    let e = r.unwrap_err();
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(e.message().starts_with("no-host-keys: "), "{}", e.message());
    assert_eq!(snapshot(&env.root()), before);
}

/// Each case: the request, the words the refusal must hold. The root holds
/// a small tree and a link pointing outside before each.
#[test]
fn hostile_requests_are_refused_by_name_and_nothing_is_written() {
    let cases: Vec<(&str, FilesBegin, &str)> = vec![
        (
            "a `..` name",
            FilesBegin {
                entries: vec![file("ok", 0o644, 1), file("etc/../../escaped", 0o644, 1)],
                ..Default::default()
            },
            "\"etc/../../escaped\" is not a name beneath the root: the name has a `..` component",
        ),
        (
            "an absolute name",
            FilesBegin {
                entries: vec![file("/etc/shadow", 0o600, 1)],
                ..Default::default()
            },
            "\"/etc/shadow\" is not a name beneath the root: the name is absolute",
        ),
        (
            "a link pointing out",
            FilesBegin {
                entries: vec![file("ok", 0o644, 1), link("etc/evil", "../../outside")],
                ..Default::default()
            },
            "etc/evil: the symbolic link's target \"../../outside\" points outside the root",
        ),
        (
            "a fifo (a kind that is not a file)",
            FilesBegin {
                entries: vec![FileEntry {
                    path: "run/pipe".into(),
                    kind: 99,
                    mode: 0o644,
                    ..Default::default()
                }],
                ..Default::default()
            },
            "run/pipe: the kind of entry is not a directory, a regular file or a symbolic link",
        ),
        (
            "a file beneath a link of the manifest",
            FilesBegin {
                entries: vec![link("etc/out", "/tmp"), file("etc/out/x", 0o644, 1)],
                ..Default::default()
            },
            "etc/out/x lies beneath etc/out, which is not a directory in the manifest",
        ),
        (
            "a file beneath a link on the disk",
            FilesBegin {
                entries: vec![file("ok", 0o644, 1), file("etc/out-link/x", 0o644, 1)],
                ..Default::default()
            },
            "etc/out-link is a symbolic link on the disk; nothing is written through a link",
        ),
        (
            "a file over a directory",
            FilesBegin {
                entries: vec![file("etc", 0o644, 1)],
                ..Default::default()
            },
            "etc is a directory on the disk; a file or link does not replace a directory",
        ),
        (
            "an unknown user",
            FilesBegin {
                entries: vec![file("ok", 0o644, 1)],
                chown: vec![chown("ok", "mallory", "")],
                ..Default::default()
            },
            "--chown ok: the user \"mallory\" is not in the new root's /etc/passwd",
        ),
        (
            "a chown of a missing path",
            FilesBegin {
                entries: vec![file("ok", 0o644, 1)],
                chown: vec![chown("home/bob", "0", "0")],
                ..Default::default()
            },
            "--chown home/bob: no such path",
        ),
        (
            "a mode beyond permission bits",
            FilesBegin {
                entries: vec![file("dev-ish", 0o20644, 1)],
                ..Default::default()
            },
            "dev-ish: mode 20644 is more than permission bits",
        ),
    ];
    for (what, begin, words) in cases {
        let env = Env::new();
        let root = env.root();
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        fs::write(root.join("etc/hostname"), "before").unwrap();
        std::os::unix::fs::symlink(env.outside(), root.join("etc/out-link")).unwrap();
        let before = snapshot(&root);
        let data: Vec<(&str, &[u8])> = begin
            .entries
            .iter()
            .filter(|e| e.kind == FileKind::Regular as i32)
            .map(|_| ("f", &b"x"[..]))
            .collect();
        let (r, events) = env.run(stream(begin, &data));
        let e = r.expect_err(what);
        assert_eq!(
            e.code(),
            tonic::Code::InvalidArgument,
            "{what}: {}",
            e.message()
        );
        assert!(
            e.message().starts_with("invalid-files: "),
            "{what}: {}",
            e.message()
        );
        assert!(e.message().contains(words), "{what}: {}", e.message());
        assert_eq!(snapshot(&root), before, "{what}: the root changed");
        assert_eq!(
            fs::read_dir(env.outside()).unwrap().count(),
            0,
            "{what}: written outside"
        );
        assert!(events.is_empty(), "{what}: events before the refusal");
    }
}

#[test]
fn a_stream_that_breaks_leaves_whole_entries_and_no_temporary_file() {
    let env = Env::new();
    let root = env.root();
    let begin = FilesBegin {
        entries: vec![file("a", 0o644, 2), file("b", 0o644, 10)],
        ..Default::default()
    };
    // b's data stops after 4 bytes: the controller went away.
    let msgs = vec![
        FileChunk {
            kind: Some(Kind::Begin(begin.clone())),
        },
        FileChunk {
            kind: Some(Kind::Data(b"aa".to_vec())),
        },
        FileChunk {
            kind: Some(Kind::Data(b"bbbb".to_vec())),
        },
    ];
    let (r, _) = env.run(msgs);
    assert_eq!(r.unwrap_err().code(), tonic::Code::Aborted);
    assert_eq!(fs::read(root.join("a")).unwrap(), b"aa");
    assert!(!root.join("b").exists());
    assert_eq!(snapshot(&root).len(), 1, "{:?}", snapshot(&root).keys());

    // Data past a file's end is a protocol error, not a longer file.
    let env = Env::new();
    let msgs = vec![
        FileChunk {
            kind: Some(Kind::Begin(FilesBegin {
                entries: vec![file("a", 0o644, 2)],
                ..Default::default()
            })),
        },
        FileChunk {
            kind: Some(Kind::Data(b"aaa".to_vec())),
        },
    ];
    let (r, _) = env.run(msgs);
    let e = r.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(
        e.message().contains("past the end of its file"),
        "{}",
        e.message()
    );
    assert_eq!(snapshot(&env.root()).len(), 0);
}
