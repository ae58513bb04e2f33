//! The per-target state folder on the laptop: where a target's session
//! (certificates) and built RAM image live between runs, so a crashed
//! controller reconnects to the same agent.

use std::path::PathBuf;

/// The per-target state folder: `$LANDFALL_STATE_DIR/<target>`, else
/// `$XDG_STATE_HOME/landfall/<target>`, else `~/.local/state/landfall/<target>`.
/// Characters outside `[A-Za-z0-9@.-_]` in `target` become `_`.
pub fn state_dir(target: &str) -> PathBuf {
    let safe: String = target
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "@.-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = std::env::var_os("LANDFALL_STATE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_STATE_HOME").map(|x| PathBuf::from(x).join("landfall")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/landfall"))
        })
        .unwrap_or_else(|| PathBuf::from(".landfall-state"));
    base.join(safe)
}
