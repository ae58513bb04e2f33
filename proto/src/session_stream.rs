//! The agent's session files (CA certificate, agent certificate and key, boot
//! ID) as one byte stream, for `landfall-agent kexec --session-stdin`: the
//! controller writes it into the SSH channel's stdin, so the key never
//! touches the target's filesystem.
//!
//! Format: for each of [`SESSION_FILES`], in that order, a header line
//! `NAME SIZE\n` (SIZE in decimal bytes) followed by exactly SIZE bytes;
//! nothing after the last file. Each file is at most [`MAX_FILE_BYTES`].

use crate::tlsnames::{AGENT_CERT, AGENT_KEY, BOOT_ID, CA_CERT};

/// The files the stream carries, in order.
pub const SESSION_FILES: [&str; 4] = [CA_CERT, AGENT_CERT, AGENT_KEY, BOOT_ID];
/// The largest file accepted (PEM certificates and keys are a few KiB).
pub const MAX_FILE_BYTES: usize = 64 << 10;
/// The largest stream accepted (the files plus their headers).
pub const MAX_STREAM_BYTES: usize = SESSION_FILES.len() * (MAX_FILE_BYTES + 64);

/// Why a session stream was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionStreamError {
    #[error("the session stream ends before {0}")]
    Truncated(&'static str),
    #[error("the session stream's header for {expected} is not `{expected} SIZE`")]
    Header { expected: &'static str },
    #[error("{name} is {size} bytes, more than the {MAX_FILE_BYTES} allowed")]
    TooLarge { name: &'static str, size: usize },
    #[error("the session stream has {0} bytes after its last file")]
    Trailing(usize),
}

/// Encodes the files, given in [`SESSION_FILES`] order.
pub fn encode(files: [&[u8]; SESSION_FILES.len()]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in SESSION_FILES.iter().zip(files) {
        out.extend_from_slice(format!("{name} {}\n", data.len()).as_bytes());
        out.extend_from_slice(data);
    }
    out
}

/// Decodes a stream into (name, bytes) in [`SESSION_FILES`] order.
pub fn decode(mut rest: &[u8]) -> Result<Vec<(&'static str, Vec<u8>)>, SessionStreamError> {
    let mut files = Vec::with_capacity(SESSION_FILES.len());
    for name in SESSION_FILES {
        let nl = rest
            .iter()
            .take(name.len() + 12)
            .position(|b| *b == b'\n')
            .ok_or(if rest.is_empty() {
                SessionStreamError::Truncated(name)
            } else {
                SessionStreamError::Header { expected: name }
            })?;
        let header = std::str::from_utf8(&rest[..nl])
            .map_err(|_| SessionStreamError::Header { expected: name })?;
        let size = header
            .strip_prefix(name)
            .and_then(|s| s.strip_prefix(' '))
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<usize>().ok())
            .ok_or(SessionStreamError::Header { expected: name })?;
        if size > MAX_FILE_BYTES {
            return Err(SessionStreamError::TooLarge { name, size });
        }
        rest = &rest[nl + 1..];
        if rest.len() < size {
            return Err(SessionStreamError::Truncated(name));
        }
        files.push((name, rest[..size].to_vec()));
        rest = &rest[size..];
    }
    if !rest.is_empty() {
        return Err(SessionStreamError::Trailing(rest.len()));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = encode([b"CA\n", b"", b"KEY with\nnewlines 12\n", b"0af3"]);
        assert!(s.starts_with(b"ca.pem 3\nCA\nagent.pem 0\nagent.key 21\n"));
        assert!(s.ends_with(b"\nboot-id 4\n0af3"));
        let files = decode(&s).unwrap();
        assert_eq!(
            files,
            [
                ("ca.pem", b"CA\n".to_vec()),
                ("agent.pem", Vec::new()),
                ("agent.key", b"KEY with\nnewlines 12\n".to_vec()),
                ("boot-id", b"0af3".to_vec()),
            ]
        );
    }

    #[test]
    fn refusals() {
        let good = encode([b"a", b"b", b"c", b"d"]);
        assert_eq!(decode(b""), Err(SessionStreamError::Truncated("ca.pem")));
        assert_eq!(
            decode(&good[..good.len() - 1]),
            Err(SessionStreamError::Truncated("boot-id"))
        );
        let mut extra = good.clone();
        extra.push(b'x');
        assert_eq!(decode(&extra), Err(SessionStreamError::Trailing(1)));
        assert_eq!(
            decode(b"agent.pem 1\nx"),
            Err(SessionStreamError::Header { expected: "ca.pem" })
        );
        assert_eq!(
            decode(b"ca.pem -1\nx"),
            Err(SessionStreamError::Header { expected: "ca.pem" })
        );
        assert_eq!(
            decode(b"ca.pem 99999999\n"),
            Err(SessionStreamError::TooLarge {
                name: "ca.pem",
                size: 99999999
            })
        );
        // A header line without its newline in reach is not read on and on.
        assert_eq!(
            decode(&[b'c'; 1000]),
            Err(SessionStreamError::Header { expected: "ca.pem" })
        );
    }
}
