//! The one error type of the LUKS2 module. Messages never contain key bytes.

use std::io;

/// What went wrong formatting, reading or unlocking a LUKS2 device.
#[derive(Debug, thiserror::Error)]
pub enum Luks2Error {
    #[error("The key is empty")]
    EmptyKey,
    #[error("No keyslot opens with this key")]
    WrongKey,
    #[error("The LUKS2 label is {0} bytes; at most 47 fit")]
    LabelTooLong(usize),
    #[error("The device is {size} bytes; LUKS2 needs more than {needed} (header, keyslots and some data)")]
    DeviceTooSmall { size: u64, needed: u64 },
    #[error("Argument `{0}` is not supported (landfall honours --label, --pbkdf-memory, --iter-time, --pbkdf-force-iterations, --type luks2 when formatting and --allow-discards, --perf-no_read_workqueue, --perf-no_write_workqueue when opening)")]
    UnsupportedArgument(String),
    #[error("Argument `{0}` needs a value")]
    MissingValue(String),
    #[error("Argument `{arg}` has a bad value `{value}`")]
    BadValue { arg: String, value: String },
    #[error("Argon2 cost not accepted: {0}")]
    Argon2(String),
    #[error("Not a LUKS2 device (no valid header at offset 0 or at a secondary offset)")]
    NotLuks2,
    #[error("The LUKS2 header's metadata is malformed: {0}")]
    Metadata(String),
    #[error("Unsupported LUKS2 feature: {0}")]
    Unsupported(String),
    #[error("No room for another keyslot in the keyslots area")]
    KeyslotsFull,
    #[error("Cannot read the device's geometry")]
    Geometry(#[source] crate::sys::blk::BlkError),
    #[error("Cannot read the LUKS2 header")]
    Read(#[source] io::Error),
    #[error("Cannot write the LUKS2 header")]
    Write(#[source] io::Error),
    #[error("The system's random number generator failed")]
    Random(#[source] getrandom::Error),
}
