//! The passphrase prompt for `askPassword` LUKS devices: asked on the
//! laptop's terminal (standard input), twice, with echo off, as cryptsetup
//! asks when it formats.
//!
//! Invariants: echo is switched back on whatever happens (a guard restores
//! the terminal's settings, on error and on panic); an empty passphrase and
//! two different answers are refused; the passphrase is never printed; with
//! no terminal on standard input nothing is read and [`PassphraseError::NoTerminal`]
//! says so.

use std::io::{BufRead, IsTerminal, Write};

use nix::sys::termios::{self, LocalFlags, SetArg, Termios};

/// Why no passphrase was obtained.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    #[error("there is no terminal to ask on")]
    NoTerminal,
    #[error("the passphrase must not be empty")]
    Empty,
    #[error("the two passphrases differ")]
    Mismatch,
    #[error("the terminal closed before a passphrase was typed")]
    Closed,
    #[error("reading the terminal failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("switching the terminal's echo off failed: {0}")]
    Termios(#[from] nix::Error),
}

/// A passphrase; its bytes are overwritten when it is dropped.
pub struct Passphrase(Vec<u8>);

impl Passphrase {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes, handed on (to the LayoutRequest).
    pub fn into_bytes(mut self) -> Vec<u8> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for Passphrase {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

/// One line read after a prompt: `None` at the end of input.
pub type ReadLine<'a> = dyn FnMut(&str) -> Result<Option<Vec<u8>>, PassphraseError> + 'a;

/// Asks with `read` (which shows its prompt and returns one line without its
/// newline; `None` at the end of input) twice; refuses empty and differing answers.
pub fn ask_twice(device: &str, read: &mut ReadLine<'_>) -> Result<Passphrase, PassphraseError> {
    let first = Passphrase::new(
        read(&format!("Passphrase for LUKS device \"{device}\": "))?
            .ok_or(PassphraseError::Closed)?,
    );
    if first.0.is_empty() {
        return Err(PassphraseError::Empty);
    }
    let again = Passphrase::new(
        read(&format!("The same passphrase again for \"{device}\": "))?
            .ok_or(PassphraseError::Closed)?,
    );
    if first.0 != again.0 {
        return Err(PassphraseError::Mismatch);
    }
    Ok(first)
}

/// Restores the terminal's settings when dropped.
struct EchoOff {
    saved: Termios,
}

impl EchoOff {
    fn new() -> Result<Self, PassphraseError> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        quiet.local_flags.insert(LocalFlags::ECHONL);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &quiet)?;
        Ok(Self { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// One line from the terminal with echo off, after `prompt` on stderr.
fn read_hidden(prompt: &str) -> Result<Option<Vec<u8>>, PassphraseError> {
    let _echo = EchoOff::new()?;
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let mut line = Vec::new();
    let n = std::io::stdin().lock().read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

/// Asks for `device`'s passphrase on the terminal, twice, without echo.
pub fn ask_on_terminal(device: &str) -> Result<Passphrase, PassphraseError> {
    if !std::io::stdin().is_terminal() {
        return Err(PassphraseError::NoTerminal);
    }
    ask_twice(device, &mut read_hidden)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(list: &[&str]) -> impl FnMut(&str) -> Result<Option<Vec<u8>>, PassphraseError> {
        let mut it: Vec<Vec<u8>> = list.iter().map(|s| s.as_bytes().to_vec()).collect();
        it.reverse();
        move |_prompt: &str| Ok(it.pop())
    }

    #[test]
    fn two_equal_answers_give_the_passphrase() {
        let p = ask_twice("crypted", &mut answers(&["s3cret", "s3cret"])).unwrap();
        assert_eq!(p.into_bytes(), b"s3cret");
    }

    #[test]
    fn differing_answers_are_refused() {
        let e = ask_twice("crypted", &mut answers(&["s3cret", "s3cre"]))
            .err()
            .unwrap();
        assert!(matches!(e, PassphraseError::Mismatch), "{e}");
    }

    #[test]
    fn an_empty_answer_is_refused_before_asking_again() {
        let mut asked = 0;
        let e = ask_twice("crypted", &mut |_: &str| {
            asked += 1;
            Ok(Some(Vec::new()))
        })
        .err()
        .unwrap();
        assert!(matches!(e, PassphraseError::Empty), "{e}");
        assert_eq!(asked, 1);
    }

    #[test]
    fn the_end_of_input_is_not_a_passphrase() {
        let e = ask_twice("crypted", &mut answers(&["s3cret"]))
            .err()
            .unwrap();
        assert!(matches!(e, PassphraseError::Closed), "{e}");
    }

    #[test]
    fn the_prompts_name_the_device() {
        let mut prompts = Vec::new();
        ask_twice("crypted", &mut |p: &str| {
            prompts.push(p.to_string());
            Ok(Some(b"x".to_vec()))
        })
        .unwrap();
        assert!(
            prompts.iter().all(|p| p.contains("\"crypted\"")),
            "{prompts:?}"
        );
    }
}
