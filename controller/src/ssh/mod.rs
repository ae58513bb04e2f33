//! The SSH bootstrap with the system's OpenSSH client: reach the target as the
//! user's own `ssh` would (config, agent, ProxyJump, known_hosts — host keys
//! are always verified), check it, upload the agent and the RAM image only
//! when changed, into a checked upload folder, and kexec into the image.
//!
//! Library API (for `landfall kexec` and `landfall install`):
//! `Target::parse("root@host")?.port(..).identity(..).option(..)`,
//! `Target::check() -> Result<TargetFacts, KexecError>`,
//! `Target::make_upload_dir(base, sudo)` / `check_upload_dir(dir, sudo)` (see
//! `upload_dir`), `Target::upload_if_changed(dir, files, has_sha256sum, sudo)`,
//! `Target::kexec(&KexecPlan) -> Result<KexecReport, KexecError>` (=
//! `prepare_kexec` (check + upload) then `start_kexec` (the remote
//! `landfall-agent kexec --session-stdin --detach`, the session on its
//! stdin)), `Target::resolved_host()` (the address after ssh_config, for the
//! agent at HOST:7443), `Target::run(script, stdin)`, `Target::run_with_input`.
//! All calls block (run them in `spawn_blocking` from async code).

pub mod bootstrap;
pub mod error;
pub mod facts;
pub mod remote;
pub mod target;
pub mod upload;
pub mod upload_dir;

// The bootstrap's plan and the parsed target are what `landfall install` and
// `landfall kexec` build on; the rest is named by module (`ssh::facts::…`).
pub use bootstrap::KexecPlan;
pub use target::Target;
