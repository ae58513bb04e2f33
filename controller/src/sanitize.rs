//! The one gate between what the target says and the laptop's terminal.
//!
//! Every string that comes from the target or its agent — disk models,
//! serials, labels, host names, plans, job descriptions, the closure
//! installer's output lines, the agent's log lines, remote stderr over SSH,
//! the VM's console — passes [`line`] (one line) or [`text`] (several lines)
//! before it is printed. A hostile target could otherwise send ESC/CSI/OSC
//! sequences that redraw the plan just before the `yes` prompt ("blank"
//! instead of "EVERYTHING ON IT WILL BE DESTROYED"), write the clipboard
//! (OSC 52) or spoof the window title.
//!
//! Invariants of the output of [`line`] and [`text`]:
//! - It holds no C0 control (U+0000–U+001F; [`text`] keeps `\n` and `\t`),
//!   no DEL (U+007F), no C1 control (U+0080–U+009F) and no character that
//!   reorders or hides text (bidi embeddings, overrides and isolates, the
//!   marks U+200E/U+200F/U+061C, the line and paragraph separators
//!   U+2028/U+2029). Each is shown visibly instead: `\x1b`, `\x9b`,
//!   `\u{202e}`.
//! - Everything else, ordinary UTF-8 included (`é`, `✓`, CJK), is kept as is.
//! - It is at most [`MAX_LINE`] (resp. [`MAX_TEXT`]) characters of input
//!   long, plus a note saying how much was cut.
//!
//! JSON written for machines ([`json`]) is escaped the same way, inside its
//! strings, with JSON's own `\uXXXX`, so it stays valid and means the same.

use std::borrow::Cow;
use std::fmt::Write;

/// Longest single line kept, in characters (a model, a label, an output line).
pub const MAX_LINE: usize = 4096;
/// Longest multi-line text kept, in characters (a plan, an error chain).
pub const MAX_TEXT: usize = 256 * 1024;

/// Whether `c` must not reach a terminal as itself.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        // Arabic letter mark, LRM, RLM.
        | '\u{061c}' | '\u{200e}' | '\u{200f}'
        // Line and paragraph separators.
        | '\u{2028}' | '\u{2029}'
        // LRE, RLE, PDF, LRO, RLO.
        | '\u{202a}'..='\u{202e}'
        // LRI, RLI, FSI, PDI.
        | '\u{2066}'..='\u{2069}')
}

/// One line from the target, made safe to print: every control character
/// (newlines and tabs too) and every reordering character escaped.
pub fn line(s: &str) -> Cow<'_, str> {
    escape(s, false, MAX_LINE)
}

/// Several lines from the target, made safe to print: as [`line`], but `\n`
/// and `\t` are kept.
pub fn text(s: &str) -> Cow<'_, str> {
    escape(s, true, MAX_TEXT)
}

/// An optional text field: [`line`] of it, or `-` when it is empty.
pub fn or_dash(s: &str) -> Cow<'_, str> {
    if s.is_empty() {
        Cow::Borrowed("-")
    } else {
        line(s)
    }
}

fn escape(s: &str, keep_newlines: bool, max: usize) -> Cow<'_, str> {
    let keep = |c: char| keep_newlines && (c == '\n' || c == '\t');
    let too_long = s.chars().nth(max).is_some();
    if !too_long && !s.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max * 4) + 16);
    let mut taken = 0;
    for c in s.chars().take(max) {
        taken += c.len_utf8();
        if is_unsafe(c) && !keep(c) {
            push_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    if too_long {
        let _ = write!(out, "… ({} more bytes cut)", s.len() - taken);
    }
    Cow::Owned(out)
}

/// `\x1b` for a control character below U+0100, `\u{202e}` above.
fn push_escaped(out: &mut String, c: char) {
    let n = c as u32;
    let _ = if n < 0x100 {
        write!(out, "\\x{n:02x}")
    } else {
        write!(out, "\\u{{{n:04x}}}")
    };
}

/// `value` as one line of JSON (`pretty`: indented), with every character
/// [`is_unsafe`] written as a JSON `\uXXXX` escape: the same JSON to a
/// parser, nothing a terminal acts on.
pub fn json<T: serde::Serialize + ?Sized>(value: &T, pretty: bool) -> serde_json::Result<String> {
    let raw = if pretty {
        serde_json::to_string_pretty(value)?
    } else {
        serde_json::to_string(value)?
    };
    Ok(json_escape_output(raw))
}

/// Escapes the [`is_unsafe`] characters left in serde_json's output. Outside
/// strings JSON is ASCII without controls (pretty printing's `\n` and
/// spaces aside, which are kept), so every such character is inside a
/// string, where `\uXXXX` means the same character.
fn json_escape_output(raw: String) -> String {
    if !raw.chars().any(|c| is_unsafe(c) && c != '\n') {
        return raw;
    }
    let mut out = String::with_capacity(raw.len() + 16);
    for c in raw.chars() {
        if is_unsafe(c) && c != '\n' {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_and_csi_sequences_are_shown_not_run() {
        // Clear the screen, move the cursor home, print in red.
        let s = "\u{1b}[2J\u{1b}[H\u{1b}[31mblank\u{1b}[0m";
        assert_eq!(line(s), "\\x1b[2J\\x1b[H\\x1b[31mblank\\x1b[0m");
        // An OSC 52 clipboard write ended by BEL, and one ended by ST.
        assert_eq!(
            line("\u{1b}]52;c;ZWNobyBwd25lZA==\u{7}"),
            "\\x1b]52;c;ZWNobyBwd25lZA==\\x07"
        );
        assert_eq!(line("\u{1b}]0;title\u{1b}\\"), "\\x1b]0;title\\x1b\\");
    }

    #[test]
    fn bell_carriage_return_backspace_and_del_are_escaped() {
        assert_eq!(line("ding\u{7}"), "ding\\x07");
        // CR would let "DESTROYED" be overwritten by what follows it.
        assert_eq!(line("DESTROYED\rblank    "), "DESTROYED\\x0dblank    ");
        assert_eq!(line("ab\u{8}\u{8}"), "ab\\x08\\x08");
        assert_eq!(line("x\u{7f}"), "x\\x7f");
        assert_eq!(line("nul\u{0}"), "nul\\x00");
    }

    #[test]
    fn c1_controls_are_escaped() {
        // U+009B is the 8-bit CSI, U+009D the 8-bit OSC.
        assert_eq!(line("\u{9b}31m\u{9d}0;t\u{9c}"), "\\x9b31m\\x9d0;t\\x9c");
        assert_eq!(line("\u{80}\u{85}\u{9f}"), "\\x80\\x85\\x9f");
    }

    #[test]
    fn bidi_overrides_and_isolates_are_escaped() {
        // "blank" written right to left so it reads as something else.
        assert_eq!(line("a\u{202e}knalb"), "a\\u{202e}knalb");
        assert_eq!(
            line("\u{2066}\u{2067}\u{2068}\u{2069}\u{200f}\u{200e}\u{61c}"),
            "\\u{2066}\\u{2067}\\u{2068}\\u{2069}\\u{200f}\\u{200e}\\u{061c}"
        );
        assert_eq!(line("a\u{2028}b"), "a\\u{2028}b");
    }

    #[test]
    fn ordinary_text_and_utf8_are_kept_untouched() {
        let s = "Samsung SSD 980 PRO 1TB — série Ω ✓ 日本語 /dev/nvme0n1";
        assert!(matches!(line(s), Cow::Borrowed(_)));
        assert_eq!(line(s), s);
        assert_eq!(line(r"C:\x1b is text"), r"C:\x1b is text");
    }

    #[test]
    fn newlines_and_tabs_stay_only_in_text() {
        assert_eq!(line("a\nb\tc"), "a\\x0ab\\x09c");
        assert_eq!(text("a\nb\tc"), "a\nb\tc");
        assert_eq!(text("a\r\nb\u{1b}[1A"), "a\\x0d\nb\\x1b[1A");
    }

    #[test]
    fn long_input_is_cut_and_says_so() {
        let s = "x".repeat(MAX_LINE + 10);
        let out = line(&s);
        assert!(out.starts_with(&"x".repeat(MAX_LINE)));
        assert!(out.ends_with("… (10 more bytes cut)"), "{out}");
        assert_eq!(line(&"y".repeat(MAX_LINE)).len(), MAX_LINE);
    }

    #[test]
    fn empty_fields_read_as_a_dash() {
        assert_eq!(or_dash(""), "-");
        assert_eq!(or_dash("\u{1b}"), "\\x1b");
    }

    #[test]
    fn json_keeps_its_meaning_and_loses_the_sequences() {
        let v = serde_json::json!({"model": "a\u{1b}[2Jb\u{9b}c\u{202e}d\u{7f}", "n": 1});
        for pretty in [false, true] {
            let out = json(&v, pretty).unwrap();
            assert!(!out.chars().any(|c| is_unsafe(c) && c != '\n'), "{out:?}");
            let back: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(back, v);
        }
        assert_eq!(
            json(&v, false).unwrap(),
            r#"{"model":"a\u001b[2Jb\u009bc\u202ed\u007f","n":1}"#
        );
    }
}
