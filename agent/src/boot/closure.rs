//! The NixOS way to install any bootloader (GRUB, lanzaboote, extlinux, or
//! systemd-boot by NixOS's own builder): what `nixos-install` runs through
//! `nixos-enter` — the system's `activate` (with `IN_NIXOS_ENTER=1`; its failure
//! is tolerated, as nixos-enter does), `systemd-tmpfiles --create --remove -E`
//! when the system has it, then `<toplevel>/bin/switch-to-configuration boot`
//! with `NIXOS_INSTALL_BOOTLOADER=1`, whose failure stops the install with its
//! output attached.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Instant;

use super::bootspec::resolve_in_root;
use super::enter::{run_in_root, EnterError, EnterMsg, EnterOptions, Program};
use super::BootEvent;
use crate::steps::StepEvent;

/// How many of the installer's last output lines a failure carries.
const TAIL_LINES: usize = 60;

#[derive(Debug, thiserror::Error)]
pub enum ClosureInstallError {
    #[error("{toplevel} has no bin/switch-to-configuration")]
    NoInstaller { toplevel: PathBuf },
    #[error("Cannot run the closure's installer in {root}")]
    Enter {
        root: PathBuf,
        #[source]
        source: EnterError,
    },
    #[error("The closure's bootloader installer failed ({status}); its output:\n{output}")]
    Failed { status: String, output: String },
}

fn exists(root: &Path, p: &Path) -> bool {
    resolve_in_root(root, p).is_ok()
}

/// The programs the closure installer runs, with a description each.
pub fn programs(
    root: &Path,
    toplevel: &Path,
) -> Result<Vec<(String, Program)>, ClosureInstallError> {
    let stc = toplevel.join("bin/switch-to-configuration");
    if !exists(root, &stc) {
        return Err(ClosureInstallError::NoInstaller {
            toplevel: toplevel.to_path_buf(),
        });
    }
    let mut v = Vec::new();
    let activate = toplevel.join("activate");
    if exists(root, &activate) {
        v.push((
            format!(
                "Activate {} in the root (as nixos-enter)",
                toplevel.display()
            ),
            Program {
                path: activate,
                args: vec![],
                env: vec![
                    ("IN_NIXOS_ENTER".into(), "1".into()),
                    (
                        "LOCALE_ARCHIVE".into(),
                        format!("{}/sw/lib/locale/locale-archive", toplevel.display()),
                    ),
                ],
            },
        ));
    }
    let tmpfiles = toplevel.join("sw/bin/systemd-tmpfiles");
    if exists(root, &tmpfiles) {
        v.push((
            "Create /tmp and friends (systemd-tmpfiles)".into(),
            Program {
                path: tmpfiles,
                args: vec!["--create".into(), "--remove".into(), "-E".into()],
                env: vec![],
            },
        ));
    }
    v.push((
        format!("Run {} boot", stc.display()),
        Program {
            path: stc,
            args: vec!["boot".into()],
            env: vec![("NIXOS_INSTALL_BOOTLOADER".into(), "1".into())],
        },
    ));
    Ok(v)
}

/// The kernel's count of out-of-memory kills (`oom_kill` in /proc/vmstat).
fn oom_kills() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/vmstat").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
}

/// `exit status 1`, `killed by signal 9`; a SIGKILL while the kernel's OOM
/// kill count rose since `oom_before` is named as running out of memory.
fn describe_status(st: &ExitStatus, oom_before: Option<u64>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(9)) if matches!((oom_before, oom_kills()), (Some(a), Some(b)) if b > a) => {
            "killed by signal 9 by the kernel's out-of-memory killer: the machine ran out of RAM \
             (see `landfall logs`)"
                .into()
        }
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

/// Runs the closure's installer in `root`; streams its output as events.
pub fn install_with_closure(
    opts: &EnterOptions,
    toplevel: &Path,
    on_event: &mut dyn FnMut(BootEvent),
) -> Result<(), ClosureInstallError> {
    let steps = programs(&opts.root, toplevel)?;
    let total = steps.len();
    let last = total - 1;
    let programs: Vec<Program> = steps.iter().map(|(_, p)| p.clone()).collect();
    let mut tail = VecDeque::<String>::new();
    let mut started = Instant::now();
    let oom_before = oom_kills();
    on_event(BootEvent::Step(StepEvent::Started {
        index: 0,
        total,
        description: steps[0].0.clone(),
    }));
    let mut on_msg = |m: EnterMsg| match m {
        EnterMsg::Line(i, l) => {
            if i == last {
                if tail.len() == TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(l.clone());
            }
            on_event(BootEvent::Output(l));
        }
        EnterMsg::Exited(i, st) => {
            let description = steps[i].0.clone();
            if !st.success() && i == last {
                on_event(BootEvent::Step(StepEvent::Failed {
                    index: i,
                    total,
                    description,
                    reason: describe_status(&st, oom_before),
                }));
                return;
            }
            if !st.success() {
                // nixos-enter runs the activation with `|| true`: say so, go on.
                on_event(BootEvent::Output(format!(
                    "({} ended with {}; going on, as nixos-enter does)",
                    steps[i].1.path.display(),
                    describe_status(&st, oom_before)
                )));
            }
            on_event(BootEvent::Step(StepEvent::Finished {
                index: i,
                total,
                description,
                duration: started.elapsed(),
            }));
            started = Instant::now();
            if i < last {
                on_event(BootEvent::Step(StepEvent::Started {
                    index: i + 1,
                    total,
                    description: steps[i + 1].0.clone(),
                }));
            }
        }
    };
    let statuses =
        run_in_root(opts, &programs, &mut on_msg).map_err(|source| ClosureInstallError::Enter {
            root: opts.root.clone(),
            source,
        })?;
    match statuses.get(last) {
        Some(st) if st.success() => Ok(()),
        Some(st) => Err(ClosureInstallError::Failed {
            status: describe_status(st, oom_before),
            output: tail.into_iter().collect::<Vec<_>>().join("\n"),
        }),
        None => Err(ClosureInstallError::Failed {
            status: "not run".into(),
            output: String::new(),
        }),
    }
}
