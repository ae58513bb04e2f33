//! landfall-proto: the `landfall.v1` gRPC protocol and the platform-neutral
//! domain logic that controller and agent share.
//!
//! Nothing here may depend on Linux-only code: the controller builds on macOS too.

pub mod boot_id;
pub mod closure;
pub mod files_manifest;
pub mod hardware_config;
pub mod layout;
pub mod nar;
pub mod reason;
pub mod session_stream;
pub mod tlsnames;

/// Generated protobuf messages and the tonic client/server for `landfall.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("landfall.v1");
}

pub use reason::Reason;

/// The TCP port the agent serves on.
pub const AGENT_PORT: u16 = 7443;
