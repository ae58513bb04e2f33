//! PID-1 duties of the RAM image: early mounts, module loading, networking
//! (through [`crate::net`]), and a supervisor that runs the gRPC service as a
//! child process, restarts it if it ever dies, and reaps every zombie. PID 1
//! never exits.

pub mod inject;
pub mod modules;
mod pid1;
pub mod pid1_log;

pub use pid1::run_as_pid1;

/// CLOCK_MONOTONIC in nanoseconds (shared by PID 1 and its child, so the child
/// can report the time from PID 1's start to serving).
pub fn monotonic_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Environment variable through which PID 1 hands its start time to the service.
pub const START_ENV: &str = "LANDFALL_PID1_START_NS";

/// Whether this process is the agent of the RAM image: PID 1, or the service
/// PID 1 started (which it hands [`START_ENV`]). There, unlike on a normal
/// system, no modprobe loads a filesystem's module when it is first mounted.
pub fn in_ram_image() -> bool {
    std::process::id() == 1 || std::env::var_os(START_ENV).is_some()
}

/// The service creates this file once it listens; PID 1 waits for it (briefly)
/// before loading modules, so driver probing does not delay serving.
pub const READY_FILE: &str = "/run/landfall-agent.ready";
