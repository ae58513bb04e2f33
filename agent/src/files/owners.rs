//! `--chown` owners and groups: a number, or a name looked up in the
//! installed root's own `/etc/passwd` and `/etc/group` (never the agent's:
//! the RAM image knows only root). Pure: the files' text comes in.

/// Why an owner or group is not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerError {
    #[error("the user {name:?} is not in the new root's /etc/passwd{}", missing_note(*.no_file))]
    UnknownUser { name: String, no_file: bool },
    #[error("the group {name:?} is not in the new root's /etc/group{}", missing_note(*.no_file))]
    UnknownGroup { name: String, no_file: bool },
    #[error("{0:?} is neither a number below 4294967295 nor a user or group name")]
    Invalid(String),
}

fn missing_note(no_file: bool) -> &'static str {
    if no_file {
        " (the new root has none yet: NixOS writes it at the first activation; give a numeric uid:gid)"
    } else {
        ""
    }
}

/// A number in uid/gid range (u32::MAX means "unchanged" to chown(2), so it is refused).
fn numeric(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|n| *n != u32::MAX)
}

fn plausible_name(s: &str) -> bool {
    !s.is_empty()
        && !s.bytes().all(|b| b.is_ascii_digit())
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'$'))
}

/// The third field of the line of `file` whose first field is `name`.
fn lookup(file: &str, name: &str) -> Option<u32> {
    file.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name))
            .then(|| f.nth(1).and_then(|id| id.parse().ok()))
            .flatten()
    })
}

/// The uid of `owner` (a number, or a name in `passwd`).
pub fn uid(owner: &str, passwd: Option<&str>) -> Result<u32, OwnerError> {
    if let Some(n) = numeric(owner) {
        return Ok(n);
    }
    if !plausible_name(owner) {
        return Err(OwnerError::Invalid(owner.to_string()));
    }
    passwd
        .and_then(|p| lookup(p, owner))
        .ok_or(OwnerError::UnknownUser {
            name: owner.to_string(),
            no_file: passwd.is_none(),
        })
}

/// The gid of `group` (a number, or a name in `groups`); "" is None: the
/// group stays as it is, as with `chown OWNER PATH`.
pub fn gid(group: &str, groups: Option<&str>) -> Result<Option<u32>, OwnerError> {
    if group.is_empty() {
        return Ok(None);
    }
    if let Some(n) = numeric(group) {
        return Ok(Some(n));
    }
    if !plausible_name(group) {
        return Err(OwnerError::Invalid(group.to_string()));
    }
    groups
        .and_then(|g| lookup(g, group))
        .map(Some)
        .ok_or(OwnerError::UnknownGroup {
            name: group.to_string(),
            no_file: groups.is_none(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:System administrator:/root:/bin/sh\nalice:x:1000:100::/home/alice:/bin/sh\nsshd:x:998:997::/var/empty:/bin/false\n";
    const GROUP: &str = "root:x:0:\nusers:x:100:alice\nwheel:x:1:alice\n";

    #[test]
    fn names_come_from_the_roots_files_numbers_as_they_are() {
        assert_eq!(uid("alice", Some(PASSWD)), Ok(1000));
        assert_eq!(uid("0", None), Ok(0));
        assert_eq!(uid("4242", Some(PASSWD)), Ok(4242));
        assert_eq!(gid("users", Some(GROUP)), Ok(Some(100)));
        assert_eq!(gid("wheel", Some(GROUP)), Ok(Some(1)));
        assert_eq!(gid("", Some(GROUP)), Ok(None));
        assert_eq!(gid("55", None), Ok(Some(55)));
    }

    #[test]
    fn unknown_names_are_refused_with_the_reason() {
        assert_eq!(
            uid("mallory", Some(PASSWD)).unwrap_err().to_string(),
            "the user \"mallory\" is not in the new root's /etc/passwd"
        );
        let e = uid("alice", None).unwrap_err().to_string();
        assert!(e.contains("the new root has none yet"), "{e}");
        assert!(gid("staff", Some(GROUP)).is_err());
        // A user name is not a group name.
        assert!(gid("alice", Some(GROUP)).is_err());
        assert_eq!(
            uid("4294967295", None),
            Err(OwnerError::Invalid("4294967295".into()))
        );
        assert!(uid("a b", Some(PASSWD)).is_err());
        assert!(uid("", Some(PASSWD)).is_err());
    }
}
