//! disko's `extraFormatArgs` / `extraOpenArgs` (cryptsetup command-line
//! words), parsed without touching anything. landfall honours the options
//! people use and refuses every other word by name, so a layout never gets
//! silently different encryption than it asks for.
//!
//! Accepted: `--label X`, `--pbkdf-memory KIB`, `--iter-time MS` (`-i MS`),
//! `--pbkdf-force-iterations N`, `--type luks2` (what landfall writes anyway),
//! `--allow-discards`, `--perf-no_read_workqueue`, `--perf-no_write_workqueue`;
//! each also as `--opt=value`.

use super::error::Luks2Error;
use super::kdf::{PbkdfRequest, MIN_TIME};
use super::unlock::OpenOptions;

/// What the extra arguments ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtraArgs {
    pub label: Option<String>,
    pub pbkdf_memory_kib: Option<u32>,
    pub iter_time_ms: Option<u32>,
    pub force_iterations: Option<u32>,
    pub allow_discards: bool,
    pub no_read_workqueue: bool,
    pub no_write_workqueue: bool,
}

impl ExtraArgs {
    /// The PBKDF request these arguments make.
    pub fn pbkdf(&self) -> PbkdfRequest {
        let mut req = PbkdfRequest::default();
        if let Some(t) = self.iter_time_ms {
            req.iter_time_ms = t;
        }
        req.memory_kib = self.pbkdf_memory_kib;
        req.force_time = self.force_iterations;
        req
    }

    /// The dm-crypt options for opening: these arguments together with
    /// disko's `settings.allowDiscards` and `bypassWorkqueues` (which, as in
    /// disko's `cryptsetup open` line, means both `--perf-no_*_workqueue`).
    pub fn open_options(&self, allow_discards: bool, bypass_workqueues: bool) -> OpenOptions {
        OpenOptions {
            allow_discards: allow_discards || self.allow_discards,
            no_read_workqueue: bypass_workqueues || self.no_read_workqueue,
            no_write_workqueue: bypass_workqueues || self.no_write_workqueue,
        }
    }
}

fn number(arg: &str, value: &str, min: u32) -> Result<u32, Luks2Error> {
    match value.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(Luks2Error::BadValue {
            arg: arg.to_string(),
            value: value.to_string(),
        }),
    }
}

/// Parses a list of cryptsetup words (either list; they share one parser).
pub fn parse_extra_args<S: AsRef<str>>(args: &[S]) -> Result<ExtraArgs, Luks2Error> {
    let mut out = ExtraArgs::default();
    let mut words = args.iter().map(|s| s.as_ref());
    while let Some(word) = words.next() {
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (word, None),
        };
        let takes_value = matches!(
            name,
            "--label"
                | "--pbkdf-memory"
                | "--iter-time"
                | "-i"
                | "--pbkdf-force-iterations"
                | "--type"
        );
        let value = if takes_value {
            match inline.or_else(|| words.next()) {
                Some(v) => Some(v),
                None => return Err(Luks2Error::MissingValue(name.to_string())),
            }
        } else {
            if inline.is_some() {
                return Err(Luks2Error::UnsupportedArgument(word.to_string()));
            }
            None
        };
        let value = value.unwrap_or("");
        match name {
            "--label" => {
                if value.len() > 47 {
                    return Err(Luks2Error::LabelTooLong(value.len()));
                }
                out.label = Some(value.to_string());
            }
            "--pbkdf-memory" => out.pbkdf_memory_kib = Some(number(name, value, 32)?),
            "--iter-time" | "-i" => out.iter_time_ms = Some(number(name, value, 1)?),
            "--pbkdf-force-iterations" => {
                out.force_iterations = Some(number(name, value, MIN_TIME)?)
            }
            "--type" => {
                if value != "luks2" {
                    return Err(Luks2Error::UnsupportedArgument(format!("--type {value}")));
                }
            }
            "--allow-discards" => out.allow_discards = true,
            "--perf-no_read_workqueue" => out.no_read_workqueue = true,
            "--perf-no_write_workqueue" => out.no_write_workqueue = true,
            _ => return Err(Luks2Error::UnsupportedArgument(word.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_options_people_use() {
        let a = parse_extra_args(&[
            "--label",
            "cryptroot",
            "--pbkdf-memory",
            "65536",
            "--iter-time=1000",
            "--allow-discards",
            "--type",
            "luks2",
        ])
        .unwrap();
        assert_eq!(a.label.as_deref(), Some("cryptroot"));
        assert_eq!(a.pbkdf_memory_kib, Some(65536));
        assert_eq!(a.iter_time_ms, Some(1000));
        assert!(a.allow_discards);
        let req = a.pbkdf();
        assert_eq!((req.iter_time_ms, req.memory_kib), (1000, Some(65536)));
        assert_eq!(parse_extra_args::<&str>(&[]).unwrap(), ExtraArgs::default());
        let b = parse_extra_args(&["-i", "500", "--pbkdf-force-iterations", "5"]).unwrap();
        assert_eq!((b.iter_time_ms, b.force_iterations), (Some(500), Some(5)));
    }

    #[test]
    fn open_options_merge_settings_and_arguments() {
        let none = parse_extra_args::<&str>(&[]).unwrap();
        assert_eq!(none.open_options(false, false), OpenOptions::default());
        let all = none.open_options(true, true);
        assert!(all.allow_discards && all.no_read_workqueue && all.no_write_workqueue);
        let arg = parse_extra_args(&["--allow-discards", "--perf-no_write_workqueue"]).unwrap();
        assert_eq!(
            arg.open_options(false, false),
            OpenOptions {
                allow_discards: true,
                no_read_workqueue: false,
                no_write_workqueue: true
            }
        );
    }

    #[test]
    fn refuses_anything_else_by_name() {
        for (args, named) in [
            (vec!["--cipher", "aes-cbc-essiv:sha256"], "--cipher"),
            (vec!["--hash=sha512"], "--hash=sha512"),
            (vec!["--allow-discards=yes"], "--allow-discards=yes"),
            (vec!["--type", "luks1"], "--type luks1"),
            (vec!["--label", "x", "--key-size", "256"], "--key-size"),
        ] {
            let err = parse_extra_args(&args).unwrap_err();
            assert!(
                matches!(&err, Luks2Error::UnsupportedArgument(a) if a == named),
                "{args:?}: {err}"
            );
            assert!(err.to_string().contains(named));
        }
    }

    #[test]
    fn refuses_bad_or_missing_values() {
        assert!(matches!(
            parse_extra_args(&["--label"]),
            Err(Luks2Error::MissingValue(a)) if a == "--label"
        ));
        assert!(matches!(
            parse_extra_args(&["--pbkdf-memory", "lots"]),
            Err(Luks2Error::BadValue { .. })
        ));
        assert!(matches!(
            parse_extra_args(&["--pbkdf-force-iterations", "2"]),
            Err(Luks2Error::BadValue { .. })
        ));
        assert!(matches!(
            parse_extra_args(&["--label", &"x".repeat(48)]),
            Err(Luks2Error::LabelTooLong(48))
        ));
    }
}
