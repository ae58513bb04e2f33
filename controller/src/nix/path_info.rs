//! The closure and its metadata: `nix path-info --json --recursive PATH`,
//! parsed for old and new Nix alike by [`landfall_proto::nar::parse_path_info_json`].

use landfall_proto::nar::{parse_path_info_json, PathInfo, StorePath};

use super::command::{Nix, NixError};

impl Nix {
    /// Every path in the closure of `path`, with narHash, narSize,
    /// references, deriver, signatures and ca, in nix's order.
    pub fn closure_path_info(&self, path: &StorePath) -> Result<Vec<PathInfo>, NixError> {
        let args = ["path-info", "--json", "--recursive", path.as_str()];
        let out = self.run(args)?;
        parse_path_info_json(&out).map_err(|e| NixError::Output {
            command: format!("nix {}", args.join(" ")),
            reason: e.to_string(),
        })
    }
}
