//! The agent's store tier: the closure receiver and store writer with real Nix as the judge,
//! hostile NARs, and the binary-cache substituter. One binary, a module per scenario.

#[path = "../store_common/mod.rs"]
mod store_common;

mod closure;
mod ext4;
mod hostile;
mod substitute_cache;
