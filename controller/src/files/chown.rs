//! `--chown PATH OWNER[:GROUP]` (repeatable) into the agent's rules. PATH
//! is a path of the installed system (`/home/alice` or `home/alice`; `/` is
//! the root itself); OWNER and GROUP are numbers or names — names are
//! looked up by the agent in the new root's own /etc/passwd and /etc/group,
//! once the closure is in place, before anything is changed.

use anyhow::bail;
use landfall_proto::files_manifest;
use landfall_proto::v1::ChownRule;

/// The rules of `args`, given as PATH, OWNER[:GROUP] pairs (clap's
/// `num_args = 2`).
pub fn parse_chown(args: &[String]) -> anyhow::Result<Vec<ChownRule>> {
    if !args.len().is_multiple_of(2) {
        bail!("--chown takes two values: PATH OWNER[:GROUP]");
    }
    args.chunks(2)
        .map(|pair| {
            let (path, spec) = (&pair[0], &pair[1]);
            let rel = path.trim_start_matches('/');
            if !rel.is_empty() {
                if let Err(why) = files_manifest::components(rel) {
                    bail!("--chown {path} {spec}: {path:?} is not a path inside the installed system: {why}");
                }
            }
            let (owner, group) = spec.split_once(':').unwrap_or((spec, ""));
            let plausible = |s: &str| {
                s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$'))
            };
            if owner.is_empty() || !plausible(owner) || !plausible(group) {
                bail!("--chown {path} {spec}: give OWNER or OWNER:GROUP (numbers or names, e.g. 1000:100 or alice:users)");
            }
            Ok(ChownRule {
                path: rel.to_string(),
                owner: owner.to_string(),
                group: group.to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn pairs_become_rules() {
        let r = parse_chown(&args(&[
            "/home/alice",
            "1000:100",
            "srv",
            "alice",
            "/",
            "0:0",
        ]))
        .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].path.as_str(), r[0].owner.as_str(), r[0].group.as_str()),
            ("home/alice", "1000", "100")
        );
        assert_eq!((r[1].path.as_str(), r[1].group.as_str()), ("srv", ""));
        assert_eq!(r[2].path, "");
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            &["/home/../etc", "0"][..],
            &["home", ""],
            &["home", ":100"],
            &["home", "a b"],
            &["home"],
        ] {
            assert!(parse_chown(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
