//! File names and the fixed TLS server name of a landfall session.
//!
//! A session folder (made by `landfall certs init`) holds the CA, the agent's
//! server identity and the controller's client identity. The agent identity is
//! issued afresh for every kexec (and every `image build --tls`), with a new
//! [`BOOT_ID`]; the controller pins its key in [`AGENT_PIN`]. The agent
//! receives only [`CA_CERT`], [`AGENT_CERT`], [`AGENT_KEY`] and [`BOOT_ID`];
//! the CA key never leaves the laptop.

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
/// The SHA-256 (hex) of the current agent certificate's SubjectPublicKeyInfo:
/// the only agent key the controller accepts. Stays on the laptop.
pub const AGENT_PIN: &str = "agent.pin";
/// The random ID of the current agent boot (hex), which the agent's `Status`
/// reports: "an agent answers" means this boot of this session.
pub const BOOT_ID: &str = "boot-id";

/// Where the agent's files sit inside the RAM image (the session cpio puts them there).
pub const IMAGE_TLS_DIR: &str = "/etc/landfall/tls";
