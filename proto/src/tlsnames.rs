//! File names and the fixed TLS server name of a landfall session.
//!
//! A session folder (made by `landfall certs init`) holds the CA, the agent's
//! server identity and the controller's client identity. The agent receives
//! only [`CA_CERT`], [`AGENT_CERT`] and [`AGENT_KEY`]; the CA key never leaves
//! the laptop.

/// The name in the agent's certificate (its only SAN). The controller checks the
/// agent against this name, not against an IP address, because the target's
/// address may change across kexec and NAT.
pub const AGENT_SERVER_NAME: &str = "landfall-agent";

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca.key";
pub const AGENT_CERT: &str = "agent.pem";
pub const AGENT_KEY: &str = "agent.key";
pub const CONTROLLER_CERT: &str = "controller.pem";
pub const CONTROLLER_KEY: &str = "controller.key";

/// Where the agent's files sit inside the RAM image (the session cpio puts them there).
pub const IMAGE_TLS_DIR: &str = "/etc/landfall/tls";
