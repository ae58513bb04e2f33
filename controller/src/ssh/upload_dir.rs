//! The folder on the target that receives the agent, kernel and initrd.
//!
//! Invariants: it is made fresh with `mktemp -d` (in /run, else /tmp) by the
//! user who runs the kexec — root, or root through `sudo -n` — so it is
//! owned by root, mode 0700, and no other user can put, swap or read a file
//! in it. Before every use it is checked again: a directory (not a symbolic
//! link), owned by root, mode 0700, in a parent owned by root that others
//! cannot write (or that is sticky, as /tmp is, so nobody else can rename
//! it away). An older folder (`landfall.*`, left by a run whose kexec failed)
//! is reused only when it passes the same checks; every other one is ignored.
//!
//! The checks are pure functions on `stat -c '%F|%u|%a|%n'` lines.

/// The `stat` format the checks read: type, owner uid, octal mode, name.
pub const STAT_FORMAT: &str = "%F|%u|%a|%n";
/// The prefix of the folders' names in /run or /tmp.
pub const DIR_PREFIX: &str = "landfall.";

/// One `stat -c '%F|%u|%a|%n'` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatLine {
    /// `directory`, `symbolic link`, `regular file`, …
    pub kind: String,
    pub uid: u32,
    /// The permission bits, with the sticky bit (0o1000).
    pub mode: u32,
    pub path: String,
}

/// Why a folder is not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeDir {
    #[error("{path} is a {kind}, not a directory")]
    NotADirectory { path: String, kind: String },
    #[error("{path} is owned by uid {uid}, not root")]
    Owner { path: String, uid: u32 },
    #[error("{path} has mode {mode:o}, not 700")]
    Mode { path: String, mode: u32 },
    #[error("its parent {path} is owned by uid {uid}, not root")]
    ParentOwner { path: String, uid: u32 },
    #[error("its parent {path} (mode {mode:o}) is writable by others and not sticky")]
    ParentWritable { path: String, mode: u32 },
    #[error("`stat` said {0:?}")]
    Unparsable(String),
}

/// Parses one `stat -c '%F|%u|%a|%n'` line.
pub fn parse_stat_line(line: &str) -> Result<StatLine, UnsafeDir> {
    let bad = || UnsafeDir::Unparsable(line.to_string());
    let mut parts = line.trim_end_matches('\n').splitn(4, '|');
    let kind = parts.next().ok_or_else(bad)?.to_string();
    let uid = parts.next().and_then(|u| u.parse().ok()).ok_or_else(bad)?;
    let mode = parts
        .next()
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .ok_or_else(bad)?;
    let path = parts.next().filter(|p| !p.is_empty()).ok_or_else(bad)?;
    Ok(StatLine {
        kind,
        uid,
        mode,
        path: path.to_string(),
    })
}

/// Checks a folder and its parent: a directory owned by root, mode 0700, in
/// a root-owned parent others cannot write unless it is sticky.
pub fn check(dir: &StatLine, parent: &StatLine) -> Result<(), UnsafeDir> {
    if dir.kind != "directory" {
        return Err(UnsafeDir::NotADirectory {
            path: dir.path.clone(),
            kind: dir.kind.clone(),
        });
    }
    if dir.uid != 0 {
        return Err(UnsafeDir::Owner {
            path: dir.path.clone(),
            uid: dir.uid,
        });
    }
    if dir.mode != 0o700 {
        return Err(UnsafeDir::Mode {
            path: dir.path.clone(),
            mode: dir.mode,
        });
    }
    if parent.uid != 0 {
        return Err(UnsafeDir::ParentOwner {
            path: parent.path.clone(),
            uid: parent.uid,
        });
    }
    if parent.mode & 0o022 != 0 && parent.mode & 0o1000 == 0 {
        return Err(UnsafeDir::ParentWritable {
            path: parent.path.clone(),
            mode: parent.mode,
        });
    }
    Ok(())
}

/// Checks `stat` output for (folder, parent) pairs, in order; returns each
/// folder with its verdict.
pub fn check_pairs(out: &str) -> Vec<(String, Result<(), UnsafeDir>)> {
    let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    lines
        .chunks(2)
        .map(|pair| {
            let dir = parse_stat_line(pair[0]);
            let name = dir
                .as_ref()
                .map(|d| d.path.clone())
                .unwrap_or_else(|_| pair[0].to_string());
            let verdict = match (dir, pair.get(1).map(|p| parse_stat_line(p))) {
                (Ok(d), Some(Ok(p))) => check(&d, &p),
                (Err(e), _) | (_, Some(Err(e))) => Err(e),
                (Ok(_), None) => Err(UnsafeDir::Unparsable(pair[0].to_string())),
            };
            (name, verdict)
        })
        .collect()
}

/// The remote script printing [`STAT_FORMAT`] lines for `dir` and its parent.
pub fn stat_script(dir: &str) -> String {
    let q = super::target::shell_quote(dir);
    format!("d={q}; stat -c '{STAT_FORMAT}' \"$d\" \"${{d%/*}}\"")
}

/// The remote script printing (folder, parent) [`STAT_FORMAT`] pairs for
/// every `landfall.*` in /run and /tmp.
pub fn candidates_script() -> String {
    format!(
        "for d in /run/{DIR_PREFIX}* /tmp/{DIR_PREFIX}*; do \
         if [ -e \"$d\" ] || [ -L \"$d\" ]; then stat -c '{STAT_FORMAT}' \"$d\" \"${{d%/*}}\"; fi; \
         done; true"
    )
}

/// The remote script making a fresh folder in `base` (/run or /tmp).
pub fn mktemp_script(base: &str) -> String {
    format!("umask 077; mktemp -d {base}/{DIR_PREFIX}XXXXXX")
}

/// True when `out` (mktemp's output, trimmed) names a fresh folder in `base`.
pub fn is_fresh_dir(base: &str, out: &str) -> bool {
    out.strip_prefix(base)
        .and_then(|r| r.strip_prefix('/'))
        .and_then(|r| r.strip_prefix(DIR_PREFIX))
        .is_some_and(|s| s.len() >= 6 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> StatLine {
        parse_stat_line(s).unwrap()
    }

    const RUN: &str = "directory|0|755|/run";
    const TMP: &str = "directory|0|1777|/tmp";

    #[test]
    fn a_root_folder_0700_in_run_or_tmp_passes() {
        check(&line("directory|0|700|/run/landfall.aB3dE9"), &line(RUN)).unwrap();
        check(&line("directory|0|700|/tmp/landfall.aB3dE9"), &line(TMP)).unwrap();
    }

    #[test]
    fn another_users_folder_a_link_or_an_open_mode_is_refused() {
        let e = check(&line("directory|1000|700|/tmp/landfall.x"), &line(TMP)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/tmp/landfall.x is owned by uid 1000, not root"
        );
        let e = check(&line("symbolic link|1000|777|/tmp/landfall.x"), &line(TMP)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/tmp/landfall.x is a symbolic link, not a directory"
        );
        let e = check(&line("directory|0|777|/tmp/landfall.x"), &line(TMP)).unwrap_err();
        assert_eq!(e.to_string(), "/tmp/landfall.x has mode 777, not 700");
        assert!(matches!(
            check(&line("directory|0|755|/run/landfall.x"), &line(RUN)),
            Err(UnsafeDir::Mode { mode: 0o755, .. })
        ));
        // A /tmp anyone may write and rename in (no sticky bit).
        assert!(matches!(
            check(
                &line("directory|0|700|/tmp/landfall.x"),
                &line("directory|0|777|/tmp")
            ),
            Err(UnsafeDir::ParentWritable { .. })
        ));
        assert!(matches!(
            check(
                &line("directory|0|700|/x/landfall.x"),
                &line("directory|1000|755|/x")
            ),
            Err(UnsafeDir::ParentOwner { uid: 1000, .. })
        ));
    }

    #[test]
    fn stat_output_in_pairs() {
        let out = format!(
            "directory|0|700|/run/landfall.good01\n{RUN}\n\
             directory|1000|700|/tmp/landfall.evil01\n{TMP}\n\
             symbolic link|1000|777|/tmp/landfall.link01\n{TMP}\n"
        );
        let v = check_pairs(&out);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0], ("/run/landfall.good01".to_string(), Ok(())));
        assert!(matches!(v[1].1, Err(UnsafeDir::Owner { uid: 1000, .. })));
        assert!(matches!(v[2].1, Err(UnsafeDir::NotADirectory { .. })));
        assert!(parse_stat_line("garbage").is_err());
        assert!(parse_stat_line("directory|0|7x9|/run/landfall.a").is_err());
    }

    #[test]
    fn mktemp_output() {
        assert!(is_fresh_dir("/run", "/run/landfall.aB3dE9"));
        assert!(!is_fresh_dir("/run", "/tmp/landfall.aB3dE9"));
        assert!(!is_fresh_dir("/run", "/run/landfall.a/../x"));
        assert!(!is_fresh_dir("/run", "/run/landfall"));
        assert!(!is_fresh_dir(
            "/run",
            "mktemp: (null): Read-only file system"
        ));
    }
}
