//! Device-mapper: the ioctls on `/dev/mapper/control` (<linux/dm-ioctl.h>,
//! interface version 4) — version, create, table load, suspend/resume,
//! remove, table status, device status and the device list.
//!
//! Every request is one buffer: a `struct dm_ioctl` header followed, at
//! `data_start`, by the request's payload (a table's `struct dm_target_spec`s
//! each followed by its NUL-terminated parameter string and padded to 8 bytes)
//! or, on return, the kernel's answer. When an answer does not fit, the kernel
//! sets `DM_BUFFER_FULL_FLAG` and the request is repeated with a buffer twice
//! as large, up to [`MAX_BUFFER`].
//!
//! Invariants: names, uuids and targets are checked by pure functions before
//! any ioctl, so bad input never reaches the kernel; the buffer is a `Vec<u64>`
//! (8-byte aligned, as the kernel's `align_ptr` arithmetic assumes); a table
//! carrying a key (dm-crypt) is sent with `DM_SECURE_DATA_FLAG`, so the kernel
//! wipes its copy, and our buffer is zeroed before it is freed.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// `DM_IOCTL`, the ioctl type byte.
const DM_IOCTL: u8 = 0xfd;
/// `sizeof(struct dm_ioctl)`.
pub const DM_IOCTL_SIZE: usize = 312;
/// `sizeof(struct dm_target_spec)`.
pub const DM_TARGET_SPEC_SIZE: usize = 40;
/// `DM_NAME_LEN` (with the NUL).
pub const DM_NAME_LEN: usize = 128;
/// `DM_UUID_LEN` (with the NUL).
pub const DM_UUID_LEN: usize = 129;
/// `DM_MAX_TYPE_NAME` (with the NUL).
pub const DM_MAX_TYPE_NAME: usize = 16;
/// The interface version we speak; the kernel accepts any 4.x with x ≤ its own.
const DM_VERSION_MAJOR: u32 = 4;
/// The control node's path.
pub const CONTROL_PATH: &str = "/dev/mapper/control";

/// First buffer size, and the largest we grow to on `DM_BUFFER_FULL_FLAG`.
const INITIAL_BUFFER: usize = 16 << 10;
pub const MAX_BUFFER: usize = 16 << 20;

// The `_CMD` numbers of the enum in <linux/dm-ioctl.h>.
const DM_VERSION_CMD: u8 = 0;
const DM_LIST_DEVICES_CMD: u8 = 2;
const DM_DEV_CREATE_CMD: u8 = 3;
const DM_DEV_REMOVE_CMD: u8 = 4;
const DM_DEV_SUSPEND_CMD: u8 = 6;
const DM_DEV_STATUS_CMD: u8 = 7;
const DM_TABLE_LOAD_CMD: u8 = 9;
const DM_TABLE_STATUS_CMD: u8 = 12;

/// `_IOWR(DM_IOCTL, cmd, struct dm_ioctl)`, as the 32 bits the kernel sees
/// (musl's `ioctl` takes an `int`, glibc's an `unsigned long`).
const fn request(cmd: u8) -> u32 {
    nix::request_code_readwrite!(DM_IOCTL, cmd, DM_IOCTL_SIZE) as u32
}

// Flags of `dm_ioctl.flags`.
pub const DM_READONLY_FLAG: u32 = 1 << 0;
pub const DM_SUSPEND_FLAG: u32 = 1 << 1;
pub const DM_STATUS_TABLE_FLAG: u32 = 1 << 4;
pub const DM_ACTIVE_PRESENT_FLAG: u32 = 1 << 5;
pub const DM_INACTIVE_PRESENT_FLAG: u32 = 1 << 6;
pub const DM_BUFFER_FULL_FLAG: u32 = 1 << 8;
pub const DM_UUID_FLAG: u32 = 1 << 14;
pub const DM_SECURE_DATA_FLAG: u32 = 1 << 15;
/// In a `dm_name_list` entry's flags word: a uuid follows.
const DM_NAME_LIST_FLAG_HAS_UUID: u32 = 1;

/// <linux/dm-ioctl.h> `struct dm_ioctl`.
#[repr(C)]
#[derive(Clone, Copy)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; DM_NAME_LEN],
    uuid: [u8; DM_UUID_LEN],
    data: [u8; 7],
}

/// <linux/dm-ioctl.h> `struct dm_target_spec`; its parameter string follows it.
/// Layout only: tables are encoded byte by byte at these fields' offsets.
#[repr(C)]
#[allow(dead_code)]
struct DmTargetSpec {
    sector_start: u64,
    length: u64,
    status: i32,
    next: u32,
    target_type: [u8; DM_MAX_TYPE_NAME],
}

const SPEC_START: usize = std::mem::offset_of!(DmTargetSpec, sector_start);
const SPEC_LENGTH: usize = std::mem::offset_of!(DmTargetSpec, length);
const SPEC_NEXT: usize = std::mem::offset_of!(DmTargetSpec, next);
const SPEC_TYPE: usize = std::mem::offset_of!(DmTargetSpec, target_type);

/// Which request failed; carried by [`DmError::Ioctl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmRequest {
    Version,
    DevCreate,
    TableLoad,
    Suspend,
    Resume,
    DevRemove,
    TableStatus,
    ListDevices,
    DevStatus,
}

impl DmRequest {
    /// The name in <linux/dm-ioctl.h>.
    pub fn name(self) -> &'static str {
        match self {
            DmRequest::Version => "DM_VERSION",
            DmRequest::DevCreate => "DM_DEV_CREATE",
            DmRequest::TableLoad => "DM_TABLE_LOAD",
            DmRequest::Suspend => "DM_DEV_SUSPEND (suspend)",
            DmRequest::Resume => "DM_DEV_SUSPEND (resume)",
            DmRequest::DevRemove => "DM_DEV_REMOVE",
            DmRequest::TableStatus => "DM_TABLE_STATUS",
            DmRequest::ListDevices => "DM_LIST_DEVICES",
            DmRequest::DevStatus => "DM_DEV_STATUS",
        }
    }

    fn code(self) -> u32 {
        request(match self {
            DmRequest::Version => DM_VERSION_CMD,
            DmRequest::DevCreate => DM_DEV_CREATE_CMD,
            DmRequest::TableLoad => DM_TABLE_LOAD_CMD,
            DmRequest::Suspend | DmRequest::Resume => DM_DEV_SUSPEND_CMD,
            DmRequest::DevRemove => DM_DEV_REMOVE_CMD,
            DmRequest::TableStatus => DM_TABLE_STATUS_CMD,
            DmRequest::ListDevices => DM_LIST_DEVICES_CMD,
            DmRequest::DevStatus => DM_DEV_STATUS_CMD,
        })
    }
}

impl std::fmt::Display for DmRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Errors of device-mapper requests, each naming the request or the input.
#[derive(Debug, thiserror::Error)]
pub enum DmError {
    #[error("Cannot open {CONTROL_PATH} (is dm-mod loaded?)")]
    OpenControl(#[source] io::Error),
    #[error(
        "Device-mapper name {0:?} is empty, '.', '..', contains '/' or is longer than 127 bytes"
    )]
    BadName(String),
    #[error("Device-mapper uuid {0:?} is longer than 128 bytes or contains a NUL")]
    BadUuid(String),
    #[error("Target type {0:?} is empty or longer than 15 bytes")]
    BadTargetType(String),
    #[error("Target parameters {0:?} contain a NUL")]
    BadParams(String),
    #[error("A table needs at least one target")]
    EmptyTable,
    #[error("Target {index} has length 0")]
    ZeroLength { index: usize },
    #[error("Table line {line:?} is not `START LENGTH TYPE [PARAMS]`")]
    BadTableLine { line: String },
    #[error("The request for {0} does not fit in a device-mapper buffer")]
    TooLarge(DmRequest),
    #[error("{request} of {name:?} failed")]
    Ioctl {
        request: DmRequest,
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("The kernel's answer to {0} is malformed")]
    BadReply(DmRequest),
    #[error("The kernel speaks device-mapper interface {0}.{1}.{2}, not 4.x")]
    Version(u32, u32, u32),
}

/// One line of a table: `start length type params`, in 512-byte sectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub start: u64,
    pub length: u64,
    pub target_type: String,
    pub params: String,
}

impl Target {
    /// Parses `START LENGTH TYPE [PARAMS…]` as dmsetup's table format has it.
    pub fn parse(line: &str) -> Result<Target, DmError> {
        let bad = || DmError::BadTableLine { line: redact(line) };
        let line = line.trim();
        let mut it = line.splitn(4, char::is_whitespace);
        let start = it.next().and_then(|s| s.parse().ok()).ok_or_else(bad)?;
        let length = it
            .next()
            .map(str::trim_start)
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let target_type = it
            .next()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(bad)?
            .to_string();
        let params = it.next().unwrap_or("").trim().to_string();
        Ok(Target {
            start,
            length,
            target_type,
            params,
        })
    }

    /// Whether the parameters hold a key (a dm-crypt or dm-integrity table).
    pub fn carries_key(&self) -> bool {
        matches!(self.target_type.as_str(), "crypt" | "integrity")
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.start, self.length, self.target_type)?;
        if !self.params.is_empty() {
            write!(f, " {}", self.params)?;
        }
        Ok(())
    }
}

/// A table line for an error message: a crypt key must never be printed.
fn redact(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.get(2) == Some(&"crypt") && words.len() > 4 {
        let mut w: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        w[4] = "<key>".into();
        return w.join(" ");
    }
    line.to_string()
}

/// What DM_DEV_STATUS reports about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStatus {
    pub name: String,
    pub uuid: String,
    /// Encoded as the kernel's `huge_encode_dev` (= glibc's `makedev`).
    pub dev: u64,
    pub open_count: i32,
    pub target_count: u32,
    pub event_nr: u32,
    pub suspended: bool,
    pub read_only: bool,
    pub active_table: bool,
    pub inactive_table: bool,
}

impl DeviceStatus {
    pub fn major(&self) -> u32 {
        libc::major(self.dev)
    }
    pub fn minor(&self) -> u32 {
        libc::minor(self.dev)
    }
}

/// One entry of DM_LIST_DEVICES.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDevice {
    pub name: String,
    pub dev: u64,
    /// Present when the kernel returns uuids (4.45 and later) and the device has one.
    pub uuid: Option<String>,
}

/// Checks a device name as the kernel's `check_name` and `dm_hash_insert` do.
pub fn check_name(name: &str) -> Result<(), DmError> {
    if name.is_empty()
        || name == "."
        || name == ".."
        || name.contains('/')
        || name.contains('\0')
        || name.len() >= DM_NAME_LEN
    {
        return Err(DmError::BadName(name.to_string()));
    }
    Ok(())
}

/// Checks a uuid (any bytes but NUL, at most 128).
pub fn check_uuid(uuid: &str) -> Result<(), DmError> {
    if uuid.len() >= DM_UUID_LEN || uuid.contains('\0') {
        return Err(DmError::BadUuid(uuid.to_string()));
    }
    Ok(())
}

/// Checks a table before it is sent.
pub fn check_table(targets: &[Target]) -> Result<(), DmError> {
    if targets.is_empty() {
        return Err(DmError::EmptyTable);
    }
    for (index, t) in targets.iter().enumerate() {
        if t.target_type.is_empty()
            || t.target_type.len() >= DM_MAX_TYPE_NAME
            || t.target_type.contains('\0')
        {
            return Err(DmError::BadTargetType(t.target_type.clone()));
        }
        if t.params.contains('\0') {
            return Err(DmError::BadParams(redact(&t.to_string())));
        }
        if t.length == 0 {
            return Err(DmError::ZeroLength { index });
        }
    }
    Ok(())
}

/// Rounds up to a multiple of 8.
const fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Encodes a table as DM_TABLE_LOAD reads it: each spec's `next` is the
/// distance from that spec to the following one, params NUL-terminated and
/// padded to 8 bytes. Returns the payload that goes at `data_start`.
pub fn encode_table(targets: &[Target]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in targets {
        let record = align8(DM_TARGET_SPEC_SIZE + t.params.len() + 1);
        let mut spec = [0u8; DM_TARGET_SPEC_SIZE];
        spec[SPEC_START..SPEC_START + 8].copy_from_slice(&t.start.to_ne_bytes());
        spec[SPEC_LENGTH..SPEC_LENGTH + 8].copy_from_slice(&t.length.to_ne_bytes());
        // `status` stays 0 (the kernel only writes it).
        spec[SPEC_NEXT..SPEC_NEXT + 4].copy_from_slice(&(record as u32).to_ne_bytes());
        spec[SPEC_TYPE..SPEC_TYPE + t.target_type.len()].copy_from_slice(t.target_type.as_bytes());
        out.extend_from_slice(&spec);
        out.extend_from_slice(t.params.as_bytes());
        out.resize(
            out.len() + (record - DM_TARGET_SPEC_SIZE - t.params.len()),
            0,
        );
    }
    out
}

/// A C string from a fixed field or a buffer (up to the first NUL).
fn c_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Decodes DM_TABLE_STATUS's answer: `count` specs whose `next` is an offset
/// from the start of `data` (the kernel's `retrieve_status`), each followed by
/// its string.
pub fn decode_targets(data: &[u8], count: u32) -> Option<Vec<Target>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for _ in 0..count {
        let spec = data.get(at..at + DM_TARGET_SPEC_SIZE)?;
        let start = read_u64(spec, SPEC_START)?;
        let length = read_u64(spec, SPEC_LENGTH)?;
        let next = read_u32(spec, SPEC_NEXT)? as usize;
        let target_type = c_str(&spec[SPEC_TYPE..DM_TARGET_SPEC_SIZE]);
        let params = c_str(data.get(at + DM_TARGET_SPEC_SIZE..)?);
        out.push(Target {
            start,
            length,
            target_type,
            params,
        });
        if next <= at && out.len() < count as usize {
            return None;
        }
        at = next;
    }
    Some(out)
}

/// Decodes DM_LIST_DEVICES's answer: `struct dm_name_list` records, each
/// `next` bytes after the previous (0 ends the list; a first `dev` of 0 means
/// no devices; with no device at all the kernel — 6.1's list_devices — sets
/// `data_size` to `data_start`, so the answer is empty). With `DM_UUID_FLAG`
/// the kernel puts, 8-aligned after the name, an event number, a flags word
/// and, flagged, the uuid.
pub fn decode_name_list(data: &[u8]) -> Option<Vec<ListedDevice>> {
    let mut out = Vec::new();
    if data.is_empty() || read_u64(data, 0)? == 0 {
        return Some(out);
    }
    let mut at = 0usize;
    loop {
        let dev = read_u64(data, at)?;
        let next = read_u32(data, at + 8)? as usize;
        let name_at = at + 12;
        let name_bytes = data.get(name_at..)?;
        let name_len = name_bytes.iter().position(|&b| b == 0)?;
        let name = String::from_utf8_lossy(&name_bytes[..name_len]).into_owned();
        let extra = align8(name_at + name_len + 1);
        let record_end = if next == 0 { data.len() } else { at + next };
        let mut uuid = None;
        if extra + 8 <= record_end {
            let flags = read_u32(data, extra + 4)?;
            if flags & DM_NAME_LIST_FLAG_HAS_UUID != 0 {
                uuid = Some(c_str(data.get(extra + 8..record_end)?));
            }
        }
        out.push(ListedDevice { name, dev, uuid });
        if next == 0 {
            return Some(out);
        }
        at += next;
    }
}

/// An open `/dev/mapper/control`.
#[derive(Debug)]
pub struct Control {
    file: File,
}

/// The answer to one request: the header and the data after `data_start`.
struct Reply {
    header: DmIoctl,
    data: Vec<u8>,
}

/// Zeroes a buffer that may hold a key before it is freed.
struct Buffer(Vec<u64>);

impl Drop for Buffer {
    fn drop(&mut self) {
        for w in self.0.iter_mut() {
            // SAFETY: `w` is a valid, aligned &mut u64; the volatile write keeps
            // the compiler from eliding the wipe of memory about to be freed.
            unsafe { std::ptr::write_volatile(w, 0) };
        }
    }
}

impl Buffer {
    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.0.len() * 8;
        // SAFETY: a Vec<u64> of n words is 8n initialised bytes; u8 has no
        // alignment or validity requirements, and the borrow of self keeps it alive.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), len) }
    }
}

fn header_bytes(h: &DmIoctl) -> [u8; DM_IOCTL_SIZE] {
    let mut out = [0u8; DM_IOCTL_SIZE];
    // SAFETY: DmIoctl is repr(C), Copy, exactly DM_IOCTL_SIZE bytes (tested),
    // with no padding the compiler could leave uninitialised: every field is
    // explicit, `padding` and `data` included.
    let src =
        unsafe { std::slice::from_raw_parts((h as *const DmIoctl).cast::<u8>(), DM_IOCTL_SIZE) };
    out.copy_from_slice(src);
    out
}

fn header_from(bytes: &[u8]) -> DmIoctl {
    debug_assert!(bytes.len() >= DM_IOCTL_SIZE);
    // SAFETY: `bytes` holds at least DM_IOCTL_SIZE bytes; every bit pattern is
    // a valid DmIoctl (integers and byte arrays); read_unaligned needs no alignment.
    unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<DmIoctl>()) }
}

fn new_header(name: &str, uuid: &str, flags: u32) -> DmIoctl {
    let mut h = DmIoctl {
        version: [DM_VERSION_MAJOR, 0, 0],
        data_size: 0,
        data_start: DM_IOCTL_SIZE as u32,
        target_count: 0,
        open_count: 0,
        flags,
        event_nr: 0,
        padding: 0,
        dev: 0,
        name: [0; DM_NAME_LEN],
        uuid: [0; DM_UUID_LEN],
        data: [0; 7],
    };
    h.name[..name.len().min(DM_NAME_LEN - 1)]
        .copy_from_slice(&name.as_bytes()[..name.len().min(DM_NAME_LEN - 1)]);
    h.uuid[..uuid.len().min(DM_UUID_LEN - 1)]
        .copy_from_slice(&uuid.as_bytes()[..uuid.len().min(DM_UUID_LEN - 1)]);
    h
}

impl Control {
    /// Opens the control node at its usual path.
    pub fn open() -> Result<Control, DmError> {
        Self::open_at(Path::new(CONTROL_PATH))
    }

    /// Opens a control node at `path`.
    pub fn open_at(path: &Path) -> Result<Control, DmError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(DmError::OpenControl)?;
        Ok(Control { file })
    }

    /// Sends one request; grows the buffer and repeats while the kernel says
    /// `DM_BUFFER_FULL_FLAG`.
    fn call(
        &self,
        request: DmRequest,
        mut header: DmIoctl,
        payload: &[u8],
    ) -> Result<Reply, DmError> {
        let mut size = INITIAL_BUFFER.max(align8(DM_IOCTL_SIZE + payload.len()));
        loop {
            if size > MAX_BUFFER {
                return Err(DmError::TooLarge(request));
            }
            let mut buf = Buffer(vec![0u64; size / 8]);
            let bytes = buf.bytes_mut();
            header.data_size = size as u32;
            header.data_start = DM_IOCTL_SIZE as u32;
            bytes[..DM_IOCTL_SIZE].copy_from_slice(&header_bytes(&header));
            bytes[DM_IOCTL_SIZE..DM_IOCTL_SIZE + payload.len()].copy_from_slice(payload);
            // SAFETY: the buffer is 8-byte aligned, `size` bytes long and starts
            // with a dm_ioctl whose data_size is `size`, so the kernel reads and
            // writes only inside it; it lives across the call.
            let rc = unsafe {
                libc::ioctl(
                    self.file.as_raw_fd(),
                    request.code() as _,
                    bytes.as_mut_ptr(),
                )
            };
            if rc < 0 {
                return Err(DmError::Ioctl {
                    request,
                    name: c_str(&header.name),
                    source: nix::Error::last(),
                });
            }
            let out = header_from(bytes);
            if out.flags & DM_BUFFER_FULL_FLAG != 0 {
                size *= 2;
                continue;
            }
            let start = out.data_start as usize;
            let end = (out.data_size as usize).min(size);
            let data = if start >= DM_IOCTL_SIZE && start <= end {
                bytes[start..end].to_vec()
            } else {
                Vec::new()
            };
            return Ok(Reply { header: out, data });
        }
    }

    /// DM_VERSION: the kernel's interface version; fails unless it is 4.x.
    pub fn version(&self) -> Result<[u32; 3], DmError> {
        let r = self.call(DmRequest::Version, new_header("", "", 0), &[])?;
        let [a, b, c] = r.header.version;
        if a != DM_VERSION_MAJOR {
            return Err(DmError::Version(a, b, c));
        }
        Ok(r.header.version)
    }

    /// DM_DEV_CREATE: a device with no table; returns its `dev`.
    pub fn create(&self, name: &str, uuid: &str) -> Result<u64, DmError> {
        check_name(name)?;
        check_uuid(uuid)?;
        let r = self.call(DmRequest::DevCreate, new_header(name, uuid, 0), &[])?;
        Ok(r.header.dev)
    }

    /// DM_TABLE_LOAD: loads `targets` as the device's inactive table.
    pub fn load_table(&self, name: &str, targets: &[Target]) -> Result<(), DmError> {
        check_name(name)?;
        check_table(targets)?;
        let secure = targets.iter().any(Target::carries_key);
        let mut h = new_header(name, "", if secure { DM_SECURE_DATA_FLAG } else { 0 });
        h.target_count = targets.len() as u32;
        let mut payload = encode_table(targets);
        let result = self.call(DmRequest::TableLoad, h, &payload).map(|_| ());
        payload.fill(0);
        std::hint::black_box(&payload);
        result
    }

    /// DM_DEV_SUSPEND with DM_SUSPEND_FLAG: stops I/O to the device.
    pub fn suspend(&self, name: &str) -> Result<(), DmError> {
        check_name(name)?;
        self.call(
            DmRequest::Suspend,
            new_header(name, "", DM_SUSPEND_FLAG),
            &[],
        )
        .map(|_| ())
    }

    /// DM_DEV_SUSPEND without DM_SUSPEND_FLAG: makes the loaded table live.
    pub fn resume(&self, name: &str) -> Result<(), DmError> {
        check_name(name)?;
        self.call(DmRequest::Resume, new_header(name, "", 0), &[])
            .map(|_| ())
    }

    /// DM_DEV_REMOVE.
    pub fn remove(&self, name: &str) -> Result<(), DmError> {
        check_name(name)?;
        self.call(DmRequest::DevRemove, new_header(name, "", 0), &[])
            .map(|_| ())
    }

    /// DM_DEV_STATUS.
    pub fn status(&self, name: &str) -> Result<DeviceStatus, DmError> {
        check_name(name)?;
        let r = self.call(DmRequest::DevStatus, new_header(name, "", 0), &[])?;
        let h = r.header;
        Ok(DeviceStatus {
            name: c_str(&h.name),
            uuid: c_str(&h.uuid),
            dev: h.dev,
            open_count: h.open_count,
            target_count: h.target_count,
            event_nr: h.event_nr,
            suspended: h.flags & DM_SUSPEND_FLAG != 0,
            read_only: h.flags & DM_READONLY_FLAG != 0,
            active_table: h.flags & DM_ACTIVE_PRESENT_FLAG != 0,
            inactive_table: h.flags & DM_INACTIVE_PRESENT_FLAG != 0,
        })
    }

    /// DM_TABLE_STATUS with DM_STATUS_TABLE_FLAG: the live table, as `dmsetup table` prints it.
    pub fn table(&self, name: &str) -> Result<Vec<Target>, DmError> {
        check_name(name)?;
        let r = self.call(
            DmRequest::TableStatus,
            new_header(name, "", DM_STATUS_TABLE_FLAG | DM_SECURE_DATA_FLAG),
            &[],
        )?;
        decode_targets(&r.data, r.header.target_count)
            .ok_or(DmError::BadReply(DmRequest::TableStatus))
    }

    /// DM_LIST_DEVICES (with uuids where the kernel gives them).
    pub fn list(&self) -> Result<Vec<ListedDevice>, DmError> {
        let r = self.call(
            DmRequest::ListDevices,
            new_header("", "", DM_UUID_FLAG),
            &[],
        )?;
        decode_name_list(&r.data).ok_or(DmError::BadReply(DmRequest::ListDevices))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn an_empty_device_list_is_no_devices() {
        // Linux 6.1's list_devices answers no devices with data_size ==
        // data_start: no bytes at all.
        assert_eq!(decode_name_list(&[]), Some(Vec::new()));
        assert_eq!(decode_name_list(&[0u8; 16]), Some(Vec::new()));
    }

    #[test]
    fn ioctl_numbers_match_the_kernel() {
        // _IOWR(0xfd, cmd, struct dm_ioctl): dir 3 << 30, size 312 << 16, type 0xfd << 8.
        assert_eq!(DmRequest::Version.code(), 0xc138_fd00);
        assert_eq!(DmRequest::ListDevices.code(), 0xc138_fd02);
        assert_eq!(DmRequest::DevCreate.code(), 0xc138_fd03);
        assert_eq!(DmRequest::DevRemove.code(), 0xc138_fd04);
        assert_eq!(DmRequest::Suspend.code(), 0xc138_fd06);
        assert_eq!(DmRequest::Resume.code(), 0xc138_fd06);
        assert_eq!(DmRequest::DevStatus.code(), 0xc138_fd07);
        assert_eq!(DmRequest::TableLoad.code(), 0xc138_fd09);
        assert_eq!(DmRequest::TableStatus.code(), 0xc138_fd0c);
    }

    #[test]
    fn struct_layout_matches_the_kernel() {
        assert_eq!(size_of::<DmIoctl>(), 312);
        assert_eq!(offset_of!(DmIoctl, data_size), 12);
        assert_eq!(offset_of!(DmIoctl, data_start), 16);
        assert_eq!(offset_of!(DmIoctl, target_count), 20);
        assert_eq!(offset_of!(DmIoctl, open_count), 24);
        assert_eq!(offset_of!(DmIoctl, flags), 28);
        assert_eq!(offset_of!(DmIoctl, event_nr), 32);
        assert_eq!(offset_of!(DmIoctl, dev), 40);
        assert_eq!(offset_of!(DmIoctl, name), 48);
        assert_eq!(offset_of!(DmIoctl, uuid), 176);
        assert_eq!(offset_of!(DmIoctl, data), 305);
        assert_eq!(size_of::<DmTargetSpec>(), DM_TARGET_SPEC_SIZE);
        assert_eq!(offset_of!(DmTargetSpec, status), 16);
        assert_eq!(offset_of!(DmTargetSpec, next), 20);
        assert_eq!(offset_of!(DmTargetSpec, target_type), 24);
    }

    #[test]
    fn flags_match_the_kernel() {
        assert_eq!(DM_SUSPEND_FLAG, 0x2);
        assert_eq!(DM_STATUS_TABLE_FLAG, 0x10);
        assert_eq!(DM_BUFFER_FULL_FLAG, 0x100);
        assert_eq!(DM_UUID_FLAG, 0x4000);
        assert_eq!(DM_SECURE_DATA_FLAG, 0x8000);
    }

    #[test]
    fn names_and_uuids_are_checked_before_the_kernel_sees_them() {
        assert!(check_name("pool-root").is_ok());
        assert!(check_name(&"a".repeat(127)).is_ok());
        for bad in ["", ".", "..", "a/b", &"a".repeat(128)] {
            assert!(matches!(check_name(bad), Err(DmError::BadName(_))), "{bad}");
        }
        assert!(check_uuid("CRYPT-LUKS2-0123-root").is_ok());
        assert!(check_uuid(&"u".repeat(129)).is_err());
    }

    #[test]
    fn table_lines_parse_and_print_as_dmsetup_has_them() {
        let t = Target::parse("0 2048 linear /dev/vda 4096").unwrap();
        assert_eq!(
            t,
            Target {
                start: 0,
                length: 2048,
                target_type: "linear".into(),
                params: "/dev/vda 4096".into()
            }
        );
        assert_eq!(t.to_string(), "0 2048 linear /dev/vda 4096");
        assert_eq!(Target::parse("0 8 zero").unwrap().params, "");
        assert!(Target::parse("0 x linear /dev/vda 0").is_err());
        assert!(Target::parse("0 8").is_err());
        assert!(matches!(
            check_table(&[Target::parse("0 0 zero").unwrap()]),
            Err(DmError::ZeroLength { index: 0 })
        ));
        assert!(matches!(
            check_table(&[Target::parse("0 8 a-very-long-target").unwrap()]),
            Err(DmError::BadTargetType(_))
        ));
        assert!(matches!(check_table(&[]), Err(DmError::EmptyTable)));
    }

    #[test]
    fn a_bad_crypt_line_does_not_show_its_key() {
        let err = Target::parse("0 x crypt aes-xts-plain64 deadbeef 0 /dev/vda 0").unwrap_err();
        let text = err.to_string();
        assert!(!text.contains("deadbeef"), "{text}");
        assert!(text.contains("<key>"), "{text}");
    }

    #[test]
    fn table_encoding_is_8_byte_aligned_with_relative_next() {
        let targets = [
            Target::parse("0 100 linear 8:0 0").unwrap(),
            Target::parse("100 50 zero").unwrap(),
        ];
        let b = encode_table(&targets);
        // First record: 40 + "8:0 0\0" (6) = 46 → 48.
        assert_eq!(read_u32(&b, 20), Some(48));
        assert_eq!(&b[24..30], b"linear");
        assert_eq!(&b[40..46], b"8:0 0\0");
        // Second record at 48: 40 + "\0" → 48; total 96.
        assert_eq!(read_u64(&b, 48), Some(100));
        assert_eq!(read_u64(&b, 56), Some(50));
        assert_eq!(read_u32(&b, 68), Some(48));
        assert_eq!(b.len(), 96);
        assert_eq!(b.len() % 8, 0);
    }

    #[test]
    fn status_answers_decode_with_next_from_the_data_start() {
        // As retrieve_status writes it: next counts from the start of the data.
        let mut data = Vec::new();
        for (start, len, ty, params) in [(0u64, 100u64, "linear", "8:0 0"), (100, 50, "zero", "")] {
            let mut spec = [0u8; DM_TARGET_SPEC_SIZE];
            spec[0..8].copy_from_slice(&start.to_ne_bytes());
            spec[8..16].copy_from_slice(&len.to_ne_bytes());
            spec[24..24 + ty.len()].copy_from_slice(ty.as_bytes());
            let at = data.len();
            data.extend_from_slice(&spec);
            data.extend_from_slice(params.as_bytes());
            data.push(0);
            data.resize(align8(data.len()), 0);
            let next = data.len() as u32;
            data[at + 20..at + 24].copy_from_slice(&next.to_ne_bytes());
        }
        let t = decode_targets(&data, 2).unwrap();
        assert_eq!(t[0].to_string(), "0 100 linear 8:0 0");
        assert_eq!(t[1].to_string(), "100 50 zero");
        assert!(decode_targets(&data[..30], 1).is_none());
    }

    #[test]
    fn name_lists_decode_with_and_without_uuids() {
        let mut data = Vec::new();
        // Record 1: dev 253:0, name "pool-root", event_nr/flags with uuid.
        let rec = |data: &mut Vec<u8>, dev: u64, name: &str, uuid: Option<&str>, last: bool| {
            let at = data.len();
            data.extend_from_slice(&dev.to_ne_bytes());
            data.extend_from_slice(&[0; 4]);
            data.extend_from_slice(name.as_bytes());
            data.push(0);
            data.resize(align8(data.len()), 0);
            data.extend_from_slice(&7u32.to_ne_bytes());
            let flags = if uuid.is_some() { 1u32 } else { 2 };
            data.extend_from_slice(&flags.to_ne_bytes());
            if let Some(u) = uuid {
                data.extend_from_slice(u.as_bytes());
                data.push(0);
                data.resize(align8(data.len()), 0);
            }
            let next = if last { 0 } else { (data.len() - at) as u32 };
            data[at + 8..at + 12].copy_from_slice(&next.to_ne_bytes());
        };
        rec(
            &mut data,
            libc::makedev(253, 0),
            "pool-root",
            Some("LVM-abc"),
            false,
        );
        rec(&mut data, libc::makedev(253, 1), "cryptroot", None, true);
        let l = decode_name_list(&data).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].name, "pool-root");
        assert_eq!(l[0].uuid.as_deref(), Some("LVM-abc"));
        assert_eq!(libc::minor(l[1].dev), 1);
        assert_eq!(l[1].uuid, None);
        // No devices: the kernel writes a record with dev 0.
        assert_eq!(decode_name_list(&[0u8; 16]).unwrap(), vec![]);
        // No device at all: the kernel answers with no data (data_size == data_start).
        assert_eq!(decode_name_list(&[]).unwrap(), vec![]);
    }

    #[test]
    fn a_missing_control_node_is_a_typed_error() {
        let err = Control::open_at(Path::new("/nonexistent/control")).unwrap_err();
        assert!(matches!(err, DmError::OpenControl(_)));
    }
}
