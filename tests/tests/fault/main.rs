//! The fault tier: installs that survive an agent restart, a killed controller, a full disk, a
//! cut network (also during cache downloads) and a second controller. One binary, a module per scenario.

#[path = "../fault_support/mod.rs"]
mod fault_support;
use landfall_tests::office as fixture;

mod agent_restart;
mod cache_cut;
mod controller_kill;
mod disk_full;
mod network_cut;
mod second_controller;
