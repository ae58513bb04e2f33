//! Stripping terminal escape sequences from console output.
//!
//! Firmware draws its screen with cursor movements and colours; without this
//! filter a pattern such as "Shell>" would be split by escape codes. The filter
//! is a state machine so a sequence split across two reads is still removed.

/// Removes terminal escape sequences (CSI, OSC, two-byte escapes) and `\r`.
///
/// Firmware draws its screen with cursor movements; without this filter a
/// pattern such as "Shell>" would be split by colour codes.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum EscapeFilter {
    #[default]
    Text,
    Escape,
    Csi,
    Osc,
    OscEscape,
}

impl EscapeFilter {
    pub(crate) fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            *self = match (*self, b) {
                (EscapeFilter::Text, 0x1b) => EscapeFilter::Escape,
                (EscapeFilter::Text, b'\r') => EscapeFilter::Text,
                (EscapeFilter::Text, _) => {
                    out.push(b);
                    EscapeFilter::Text
                }
                (EscapeFilter::Escape, b'[') => EscapeFilter::Csi,
                (EscapeFilter::Escape, b']') => EscapeFilter::Osc,
                (EscapeFilter::Escape, _) => EscapeFilter::Text,
                (EscapeFilter::Csi, 0x40..=0x7e) => EscapeFilter::Text,
                (EscapeFilter::Csi, _) => EscapeFilter::Csi,
                (EscapeFilter::Osc, 0x07) => EscapeFilter::Text,
                (EscapeFilter::Osc, 0x1b) => EscapeFilter::OscEscape,
                (EscapeFilter::Osc, _) => EscapeFilter::Osc,
                (EscapeFilter::OscEscape, _) => EscapeFilter::Text,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(input: &[u8]) -> String {
        let mut out = Vec::new();
        let mut f = EscapeFilter::default();
        // Split in two to check the state survives chunk boundaries.
        let mid = input.len() / 2;
        f.push(&input[..mid], &mut out);
        f.push(&input[mid..], &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escape_sequences_and_carriage_returns_are_removed() {
        assert_eq!(
            clean(b"\x1b[2J\x1b[01;01HShell\x1b[0m\x1b[37m\x1b[40m> x\r\n"),
            "Shell> x\n"
        );
        assert_eq!(clean(b"a\x1b]0;title\x07b\x1b]2;t\x1b\\c"), "abc");
    }
}
