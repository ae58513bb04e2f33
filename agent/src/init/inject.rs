//! Fault injection for resilience tests, off unless asked for: the kernel command
//! line (`landfall.inject=panic:Inventory`) or, for an agent started by hand, the
//! environment (`LANDFALL_INJECT=panic:Inventory`). Several faults are separated
//! by commas (`panic:Inventory,panic:Status`).
//!
//! Faults:
//! - `panic:<Rpc>` — every call of that RPC (its gRPC method name, e.g. `Inventory`,
//!   `QueryMissing`) panics in the request path, so the panic barrier of the server
//!   is exercised with a real request. The agent must answer INTERNAL and keep
//!   serving.

use std::sync::OnceLock;

/// The kernel command-line parameter naming faults to inject.
pub const CMDLINE_PARAM: &str = "landfall.inject";
/// The environment variable naming faults to inject (agent started by hand).
pub const ENV_VAR: &str = "LANDFALL_INJECT";

/// The faults asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Faults {
    panic_rpcs: Vec<String>,
}

impl Faults {
    /// Parses a comma-separated list (`panic:Inventory,panic:Status`); unknown
    /// entries are returned for the caller to log, not fatal.
    pub fn parse(spec: &str) -> (Self, Vec<String>) {
        let mut f = Self::default();
        let mut unknown = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once(':') {
                Some(("panic", rpc)) if !rpc.is_empty() => f.panic_rpcs.push(rpc.to_string()),
                _ => unknown.push(item.to_string()),
            }
        }
        (f, unknown)
    }

    /// The value of `landfall.inject=` on a kernel command line, if any.
    pub fn from_cmdline(cmdline: &str) -> Option<&str> {
        cmdline
            .split_ascii_whitespace()
            .find_map(|w| w.strip_prefix(CMDLINE_PARAM)?.strip_prefix('='))
    }

    /// Whether a call of `rpc` must panic.
    pub fn panics(&self, rpc: &str) -> bool {
        self.panic_rpcs.iter().any(|r| r == rpc)
    }

    /// Whether nothing is injected.
    pub fn is_empty(&self) -> bool {
        self.panic_rpcs.is_empty()
    }
}

/// The process-wide faults: read once, from the environment or else the kernel
/// command line (only the RAM image's agent reads /proc/cmdline: on a host the
/// command line belongs to someone else's system).
pub fn faults() -> &'static Faults {
    static FAULTS: OnceLock<Faults> = OnceLock::new();
    FAULTS.get_or_init(|| {
        let spec = match std::env::var(ENV_VAR) {
            Ok(v) => Some(v),
            Err(_) if std::env::var_os("LANDFALL_UNDER_PID1").is_some() => {
                std::fs::read_to_string("/proc/cmdline")
                    .ok()
                    .and_then(|c| Faults::from_cmdline(&c).map(str::to_string))
            }
            Err(_) => None,
        };
        let Some(spec) = spec else {
            return Faults::default();
        };
        let (f, unknown) = Faults::parse(&spec);
        for u in unknown {
            tracing::warn!("Ignoring unknown fault to inject {u:?}");
        }
        if !f.is_empty() {
            tracing::warn!("Fault injection is ON: {f:?}");
        }
        f
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_command_line_and_the_list() {
        let c = "console=ttyS0 landfall.inject=panic:Inventory,panic:Status quiet";
        let spec = Faults::from_cmdline(c).unwrap();
        let (f, unknown) = Faults::parse(spec);
        assert!(unknown.is_empty());
        assert!(f.panics("Inventory"));
        assert!(f.panics("Status"));
        assert!(!f.panics("Logs"));
        assert_eq!(
            Faults::from_cmdline("console=ttyS0 landfall.injector=x"),
            None
        );
        assert_eq!(Faults::from_cmdline("console=ttyS0"), None);
    }

    #[test]
    fn unknown_entries_are_reported_not_applied() {
        let (f, unknown) = Faults::parse("panic:,oops,panic:Logs");
        assert_eq!(unknown, vec!["panic:".to_string(), "oops".to_string()]);
        assert!(f.panics("Logs"));
        assert!(Faults::parse("").0.is_empty());
    }
}
