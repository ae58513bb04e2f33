//! The hostile tier: the agent under floods, malformed gRPC, hostile layouts and bad TLS, and
//! PID 1 surviving it all. One binary, a module per scenario.

#[path = "../hostile_common/mod.rs"]
mod hostile_common;

mod flood;
mod grpc;
mod layout;
mod pid1_resilience;
mod tls;
