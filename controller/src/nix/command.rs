//! Running the user's own `nix`: one place that spawns it, always with
//! `--extra-experimental-features 'nix-command flakes'` (old and new Nix
//! accept it), captures stdout, and turns a failure into a typed error
//! carrying nix's stderr.

use std::ffi::{OsStr, OsString};
use std::io;
use std::process::{Command, Stdio};

/// Why a nix invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum NixError {
    /// `nix` could not be started.
    #[error("Cannot run {program:?} (is Nix installed?)")]
    Spawn {
        /// The program.
        program: OsString,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// `nix` exited unsuccessfully.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What nix printed on stderr.
        stderr: String,
    },
    /// `nix` succeeded but printed something we cannot use.
    #[error("`{command}` printed unexpected output: {reason}")]
    Output {
        /// The command line.
        command: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// How to run `nix`: the program and extra environment.
#[derive(Debug, Clone)]
pub struct Nix {
    program: OsString,
    env: Vec<(OsString, OsString)>,
}

impl Default for Nix {
    fn default() -> Self {
        Self::new()
    }
}

impl Nix {
    /// `nix` from `PATH`.
    pub fn new() -> Self {
        Self {
            program: "nix".into(),
            env: Vec::new(),
        }
    }

    /// Adds an environment variable to every invocation (e.g. `NIX_CONFIG`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs `nix ARGS…`; returns stdout.
    pub fn run<I, S>(&self, args: I) -> Result<Vec<u8>, NixError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(&self.program);
        cmd.args(["--extra-experimental-features", "nix-command flakes"]);
        cmd.args(args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null());
        let command = describe(&cmd);
        tracing::debug!(%command, "running nix");
        let out = cmd.output().map_err(|source| NixError::Spawn {
            program: self.program.clone(),
            source,
        })?;
        if !out.status.success() {
            return Err(NixError::Failed {
                command,
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(out.stdout)
    }

    /// Runs `nix ARGS…` and parses stdout as JSON.
    pub fn run_json<I, S>(&self, args: I) -> Result<(String, serde_json::Value), NixError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let command = format!(
            "nix {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = self.run(&args)?;
        let v = serde_json::from_slice(&out).map_err(|e| NixError::Output {
            command: command.clone(),
            reason: e.to_string(),
        })?;
        Ok((command, v))
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}
