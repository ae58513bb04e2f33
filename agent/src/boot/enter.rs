//! Running programs of the installed system inside it, as `nixos-enter` does:
//! a private mount namespace (`/` made rprivate so nothing leaks out), `/dev`,
//! `/proc` and `/sys` bound into the root, a tmpfs on `/dev/disk` with the
//! `by-*` links udev would make ([`super::disk_links`]: the agent has no
//! udev, and GRUB's installer finds file systems there), efivarfs when
//! booted with UEFI, a tmpfs on `/run`, then chroot. The installed system's
//! own mounts (the ESP at the path its configuration names) are the ones the
//! layout phase made below the root, seen as they are.
//!
//! The namespace and the chroot belong to one dedicated thread (unshare with
//! CLONE_NEWNS | CLONE_FS affects only the calling thread); the programs are
//! its children and inherit both. The namespace, with every mount made in it,
//! goes away when the thread and its children have ended: the agent's own
//! mounts are never touched. Programs run one after another in the same
//! namespace, so what an activation script puts in `/run` is there for the
//! next program, as in nixos-enter.

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    #[error("{root} is not a NixOS installation (no etc/NIXOS)")]
    NotNixos { root: PathBuf },
    #[error("Cannot prepare {path} in the root")]
    Prepare {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("Cannot make a private mount namespace")]
    Unshare(#[source] nix::Error),
    #[error("Cannot mount {what} at {target}")]
    Mount {
        what: String,
        target: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("Cannot chroot into {root}")]
    Chroot {
        root: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("Cannot run {program}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("Cannot start the chroot thread")]
    Thread(#[source] io::Error),
    #[error("The chroot thread panicked")]
    Panicked,
}

/// One program to run inside the root.
#[derive(Debug, Clone)]
pub struct Program {
    /// Path inside the installed system.
    pub path: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
}

/// How to enter the root.
#[derive(Debug, Clone)]
pub struct EnterOptions {
    pub root: PathBuf,
    /// Mount efivarfs at /sys/firmware/efi/efivars in the root (default: when
    /// booted with UEFI and the agent has not mounted it itself — then the
    /// bind of /sys carries it).
    pub efivarfs: bool,
}

impl EnterOptions {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            efivarfs: Path::new("/sys/firmware/efi").exists()
                && !crate::disk::mounting::is_mounted(
                    Path::new("/sys/firmware/efi/efivars"),
                    "efivarfs",
                )
                .unwrap_or(false),
        }
    }
}

/// PATH inside the installed system, as NixOS sets it up.
const NIXOS_PATH: &str =
    "/run/wrappers/bin:/run/current-system/sw/bin:/nix/var/nix/profiles/system/sw/bin";

fn prepare(root: &Path) -> Result<(), EnterError> {
    if !root.join("etc/NIXOS").exists() {
        return Err(EnterError::NotNixos {
            root: root.to_path_buf(),
        });
    }
    for d in ["dev", "proc", "sys", "run", "tmp"] {
        let path = root.join(d);
        fs::create_dir_all(&path).map_err(|source| EnterError::Prepare {
            path: path.clone(),
            source,
        })?;
    }
    // GRUB's installer needs an mtab (nixos-install makes this link too).
    let mtab = root.join("etc/mtab");
    if fs::symlink_metadata(&mtab).is_err() {
        std::os::unix::fs::symlink("/proc/mounts", &mtab).map_err(|source| {
            EnterError::Prepare {
                path: mtab.clone(),
                source,
            }
        })?;
    }
    Ok(())
}

fn bind(src: &str, root: &Path) -> Result<(), EnterError> {
    let target = root.join(src.trim_start_matches('/'));
    mount(
        Some(src),
        &target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|source| EnterError::Mount {
        what: src.to_string(),
        target,
        source,
    })
}

/// A tmpfs on the root's `dev/disk` (the agent's /dev bound there: only the
/// empty folder is made in it, when missing) with the `by-*` links.
fn disk_links(root: &Path) -> Result<(), EnterError> {
    let dir = root.join("dev/disk");
    fs::create_dir_all(&dir).map_err(|source| EnterError::Prepare {
        path: dir.clone(),
        source,
    })?;
    mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755"),
    )
    .map_err(|source| EnterError::Mount {
        what: "tmpfs (/dev/disk)".into(),
        target: dir.clone(),
        source,
    })?;
    super::disk_links::write_links(&dir, &super::disk_links::current_links())
        .map_err(|source| EnterError::Prepare { path: dir, source })
}

/// Called on the dedicated thread: namespace, mounts, chroot.
fn enter(opts: &EnterOptions) -> Result<(), EnterError> {
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS).map_err(EnterError::Unshare)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|source| EnterError::Mount {
        what: "/ (rprivate)".into(),
        target: "/".into(),
        source,
    })?;
    let root = &opts.root;
    bind("/dev", root)?;
    disk_links(root)?;
    bind("/proc", root)?;
    bind("/sys", root)?;
    if opts.efivarfs {
        let target = root.join("sys/firmware/efi/efivars");
        match mount(
            Some("efivarfs"),
            &target,
            Some("efivarfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        ) {
            // EBUSY: the one efivarfs instance is already there.
            Ok(()) | Err(nix::Error::EBUSY) => {}
            Err(source) => {
                return Err(EnterError::Mount {
                    what: "efivarfs".into(),
                    target,
                    source,
                })
            }
        }
    }
    let run = root.join("run");
    mount(
        Some("tmpfs"),
        &run,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(|source| EnterError::Mount {
        what: "tmpfs".into(),
        target: run,
        source,
    })?;
    nix::unistd::chroot(root).map_err(|source| EnterError::Chroot {
        root: root.clone(),
        source,
    })?;
    std::env::set_current_dir("/").map_err(|source| EnterError::Prepare {
        path: "/".into(),
        source,
    })
}

/// Runs one program (already inside the root), its stdout and stderr merged
/// and handed over line by line.
fn run_one(p: &Program, on_line: &mut dyn FnMut(&str)) -> Result<ExitStatus, EnterError> {
    let program = p.path.display().to_string();
    let spawn_err = |source| EnterError::Spawn {
        program: program.clone(),
        source,
    };
    let (r, w) = nix::unistd::pipe().map_err(|e| spawn_err(e.into()))?;
    let w2: OwnedFd = w.try_clone().map_err(spawn_err)?;
    let mut cmd = Command::new(&p.path);
    cmd.args(&p.args)
        .env_clear()
        .env("PATH", NIXOS_PATH)
        .env("HOME", "/root")
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(w))
        .stderr(Stdio::from(w2));
    let mut child = cmd.spawn().map_err(spawn_err)?;
    // Our copies of the write end must go, or the read below never ends.
    drop(cmd);
    let mut reader = BufReader::new(fs::File::from(r));
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                on_line(text.trim_end_matches(['\n', '\r']));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    child.wait().map_err(spawn_err)
}

/// What the programs in the root do, as they do it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnterMsg {
    /// Program `index` printed a line (stdout and stderr merged).
    Line(usize, String),
    /// Program `index` ended.
    Exited(usize, ExitStatus),
}

/// Runs `programs` one after another inside `opts.root` (all of them, in the
/// same namespace); `on_msg` sees their output and exits, on the calling thread.
pub fn run_in_root(
    opts: &EnterOptions,
    programs: &[Program],
    on_msg: &mut dyn FnMut(EnterMsg),
) -> Result<Vec<ExitStatus>, EnterError> {
    prepare(&opts.root)?;
    let (tx, rx) = std::sync::mpsc::channel::<EnterMsg>();
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("nixos-enter".into())
            .spawn_scoped(s, move || -> Result<(), EnterError> {
                enter(opts)?;
                for (i, p) in programs.iter().enumerate() {
                    let st = run_one(p, &mut |l| {
                        let _ = tx.send(EnterMsg::Line(i, l.to_string()));
                    })?;
                    let _ = tx.send(EnterMsg::Exited(i, st));
                }
                Ok(())
            })
            .map_err(EnterError::Thread)?;
        let mut statuses = Vec::new();
        // Ends when the thread drops its sender.
        for m in rx {
            if let EnterMsg::Exited(_, st) = &m {
                statuses.push(*st);
            }
            on_msg(m);
        }
        h.join().map_err(|_| EnterError::Panicked)??;
        Ok(statuses)
    })
}
