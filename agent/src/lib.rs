//! landfall-agent as a library: the engines and the service, so that the
//! binary, the integration tests and the benchmarks share one implementation.
//!
//! Layers: `sys` (one module per kernel interface) → engines (plain Rust values
//! in, typed errors out; no gRPC) → `service` (the tonic service, thin).

pub mod admission;
pub mod boot;
pub mod console_writer;
pub mod disk;
pub mod dm;
pub mod files;
pub mod fs;
pub mod init;
pub mod inventory;
pub mod jobs;
pub mod kexec;
pub mod logbuf;
pub mod net;
pub mod panic_barrier;
pub mod refusal_log;
pub mod secrets;
pub mod server;
pub mod service;
pub mod steps;
pub mod store;
pub mod sys;
pub mod tls;
