//! Reading PVs from devices and writing a VG onto them.
//!
//! [`apply_vg`] is the one entry point for a layout's `lvm_vg`: on devices
//! that carry no LVM label it writes a fresh VG (what `pvcreate` on each,
//! `vgcreate` and disko's `lvcreate`s leave); on devices that already are the
//! PVs of a VG with the layout's name it adds the missing LVs with one
//! metadata commit (seqno + 1) and leaves existing LVs alone. Anything else (a
//! PV of another VG, an orphan PV, a VG spread over other devices) is refused.
//!
//! Invariant: every check (names, sizes, space, what the devices hold, whether
//! the metadata fits) happens before the first write, so an error leaves
//! every device byte-identical. Writes go text first, then the metadata area
//! header, then (fresh PVs) the label, each step synced, so a crash leaves
//! either the old metadata or the new.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::LvmError;
use super::id::LvmId;
use super::label::{PvLabel, PV_EXT_USED};
use super::mda::{text_crc, MdaHeader, RawLocn, MDA_HEADER_SIZE};
use super::model::{Creation, Lv, Vg};
use super::parse::{parse_vg, ParsedVg};
use super::plan::{plan_additions, plan_vg, LvRequest};
use super::text::{render, Trailer};
use super::{MDA_OFFSET, SECTOR};
use crate::sys::blk;

/// One `lvm_vg` of a layout: its name, the devices of its `lvm_pv`s (in
/// vgcreate's order) and its LVs in disko's creation order.
#[derive(Debug, Clone)]
pub struct VgLayout {
    pub name: String,
    pub pvs: Vec<PathBuf>,
    pub lvs: Vec<LvRequest>,
}

/// What [`apply_vg`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Wrote a new VG.
    Created,
    /// The VG existed; these LVs were added.
    Extended { added: Vec<String> },
    /// The VG existed with every LV of the layout.
    Unchanged,
}

/// The VG as it now is on disk.
#[derive(Debug, Clone)]
pub struct Applied {
    pub vg: Vg,
    /// The device of each of `vg.pvs`, in the same order.
    pub pv_paths: Vec<PathBuf>,
    pub outcome: Outcome,
}

/// A PV as found on a device.
#[derive(Debug, Clone)]
pub struct PvOnDisk {
    pub path: PathBuf,
    pub label: PvLabel,
    pub mda: Option<MdaHeader>,
    /// The committed metadata, if the PV is in a VG.
    pub vg: Option<ParsedVg>,
}

fn io_err<'a>(step: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LvmError + 'a {
    move |source| LvmError::Io {
        step,
        path: path.to_path_buf(),
        source,
    }
}

fn read_at(file: &File, path: &Path, offset: u64, len: u64) -> Result<Vec<u8>, LvmError> {
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(io_err("Cannot read", path))?;
    Ok(buf)
}

fn bad_mda(path: &Path, reason: impl Into<String>) -> LvmError {
    LvmError::BadMetadataArea {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Read the LVM label, metadata area header and committed metadata of
/// `path`. `Ok(None)`: the device carries no LVM label.
pub fn read_pv(path: &Path) -> Result<Option<PvOnDisk>, LvmError> {
    let file = File::open(path).map_err(io_err("Cannot open", path))?;
    read_pv_from(&file, path)
}

fn read_pv_from(file: &File, path: &Path) -> Result<Option<PvOnDisk>, LvmError> {
    let size = blk::device_size(file).map_err(|e| LvmError::Io {
        step: "Cannot size",
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    if size < 2048 {
        return Ok(None);
    }
    let head = read_at(file, path, 0, 2048)?;
    let label = match PvLabel::find(&head) {
        Ok(Some(label)) => label,
        Ok(None) => return Ok(None),
        Err(reason) => {
            return Err(LvmError::BadLabel {
                path: path.to_path_buf(),
                reason,
            })
        }
    };
    let Some(&(mda_at, _)) = label.metadata_areas.first() else {
        return Ok(Some(PvOnDisk {
            path: path.to_path_buf(),
            label,
            mda: None,
            vg: None,
        }));
    };
    let raw = read_at(file, path, mda_at, MDA_HEADER_SIZE)?;
    let mda = MdaHeader::decode(&raw, mda_at).map_err(|r| bad_mda(path, r))?;
    let vg = match mda.committed {
        None => None,
        Some(locn) => {
            let mut text = Vec::with_capacity(locn.size as usize);
            for (offset, len) in mda.pieces(&locn) {
                text.extend(read_at(file, path, mda.start + offset, len)?);
            }
            if text_crc(&[&text]) != locn.checksum {
                return Err(bad_mda(path, "metadata text checksum mismatch"));
            }
            let text = String::from_utf8_lossy(&text);
            Some(parse_vg(text.trim_end_matches('\0'))?)
        }
    };
    Ok(Some(PvOnDisk {
        path: path.to_path_buf(),
        label,
        mda: Some(mda),
        vg,
    }))
}

/// The host name and `uname` line lvm records.
fn host_and_uname() -> (String, String) {
    match nix::sys::utsname::uname() {
        Ok(u) => {
            let s = |v: &std::ffi::OsStr| v.to_string_lossy().into_owned();
            let host = s(u.nodename());
            let line = format!(
                "{} {} {} {} {}",
                s(u.sysname()),
                host,
                s(u.release()),
                s(u.version()),
                s(u.machine())
            );
            (host, line)
        }
        Err(_) => ("localhost".into(), "Linux".into()),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One planned write.
struct Write {
    file: usize,
    offset: u64,
    bytes: Vec<u8>,
}

/// Make `layout` exist on its devices: create the VG, or add its missing LVs.
pub fn apply_vg(layout: &VgLayout) -> Result<Applied, LvmError> {
    let (host, uname) = host_and_uname();
    let creation = Creation { host, time: now() };
    let mut files = Vec::with_capacity(layout.pvs.len());
    for path in &layout.pvs {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err("Cannot open", path))?;
        files.push(file);
    }
    let found = files
        .iter()
        .zip(&layout.pvs)
        .map(|(f, p)| read_pv_from(f, p))
        .collect::<Result<Vec<_>, _>>()?;

    let (applied, writes) = if found.iter().all(Option::is_none) {
        plan_fresh(layout, &files, &creation, &uname)?
    } else {
        plan_extension(layout, found, &creation, &uname)?
    };

    // Everything is checked; write in the planned order, syncing every
    // device at each phase barrier (text, then headers, then labels).
    for w in &writes {
        if w.bytes.is_empty() {
            sync_all(&files, &layout.pvs)?;
            continue;
        }
        files[w.file]
            .write_all_at(&w.bytes, w.offset)
            .map_err(io_err("Cannot write LVM2 metadata to", &layout.pvs[w.file]))?;
    }
    if !writes.is_empty() {
        sync_all(&files, &layout.pvs)?;
    }
    Ok(applied)
}

fn sync_all(files: &[File], paths: &[PathBuf]) -> Result<(), LvmError> {
    for (f, p) in files.iter().zip(paths) {
        f.sync_all().map_err(io_err("Cannot sync", p))?;
    }
    Ok(())
}

fn barrier() -> Write {
    Write {
        file: 0,
        offset: 0,
        bytes: Vec::new(),
    }
}

fn device_hint(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

fn plan_fresh(
    layout: &VgLayout,
    files: &[File],
    creation: &Creation,
    uname: &str,
) -> Result<(Applied, Vec<Write>), LvmError> {
    let mut sizes = Vec::with_capacity(files.len());
    for (file, path) in files.iter().zip(&layout.pvs) {
        let bytes = blk::device_size(file).map_err(|e| LvmError::Io {
            step: "Cannot size",
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        sizes.push((device_hint(path), bytes));
    }
    let plan = plan_vg(&layout.name, &sizes, &layout.lvs)?;
    let mut ids = Vec::with_capacity(1 + plan.pvs.len() + plan.lvs.len());
    for _ in 0..1 + plan.pvs.len() + plan.lvs.len() {
        ids.push(LvmId::random()?);
    }
    let mut ids = ids.into_iter();
    let vg = Vg::from_plan(
        &plan,
        || ids.next().unwrap_or(LvmId::from_random_bytes([0; 32])),
        creation,
    );
    let text = render(
        &vg,
        &Trailer {
            host: creation.host.clone(),
            uname: uname.to_string(),
            time: creation.time,
            description: format!(
                "Write from landfall-agent (create volume group {})",
                vg.name
            ),
        },
    );
    let pe_start_bytes = vg.pvs[0].pe_start * SECTOR;
    let mda_size = pe_start_bytes - MDA_OFFSET;
    let area = MdaHeader {
        start: MDA_OFFSET,
        size: mda_size,
        committed: None,
    };
    let at = area
        .next_location(text.len() as u64)
        .ok_or(LvmError::MetadataTooLarge {
            vg: vg.name.clone(),
            bytes: text.len() as u64,
            area: mda_size,
        })?;
    let header = MdaHeader {
        committed: Some(RawLocn {
            offset: at,
            size: text.len() as u64,
            checksum: text_crc(&[&text]),
            flags: 0,
        }),
        ..area
    };

    let mut writes = Vec::new();
    for (i, pv) in vg.pvs.iter().enumerate() {
        // Clear the label sectors and the whole metadata area, then the text.
        writes.push(Write {
            file: i,
            offset: 0,
            bytes: vec![0u8; (pv.pe_start * SECTOR) as usize],
        });
        writes.push(Write {
            file: i,
            offset: MDA_OFFSET + at,
            bytes: text.clone(),
        });
    }
    writes.push(barrier());
    for i in 0..vg.pvs.len() {
        writes.push(Write {
            file: i,
            offset: MDA_OFFSET,
            bytes: header.encode().to_vec(),
        });
    }
    writes.push(barrier());
    for (i, pv) in vg.pvs.iter().enumerate() {
        let label = PvLabel {
            id: pv.id,
            device_size: pv.dev_size * SECTOR,
            data_areas: vec![(pv.pe_start * SECTOR, 0)],
            metadata_areas: vec![(MDA_OFFSET, mda_size)],
            ext_version: 2,
            ext_flags: PV_EXT_USED,
        };
        writes.push(Write {
            file: i,
            offset: SECTOR,
            bytes: label.encode().to_vec(),
        });
    }
    Ok((
        Applied {
            vg,
            pv_paths: layout.pvs.clone(),
            outcome: Outcome::Created,
        },
        writes,
    ))
}

fn plan_extension(
    layout: &VgLayout,
    found: Vec<Option<PvOnDisk>>,
    creation: &Creation,
    uname: &str,
) -> Result<(Applied, Vec<Write>), LvmError> {
    let wanted: Vec<String> = layout.pvs.iter().map(|p| p.display().to_string()).collect();
    let mut pvs = Vec::with_capacity(found.len());
    for (pv, path) in found.into_iter().zip(&layout.pvs) {
        let Some(pv) = pv else {
            return Err(LvmError::PvSetMismatch {
                vg: layout.name.clone(),
                existing: Vec::new(),
                wanted,
            });
        };
        match &pv.vg {
            None => return Err(LvmError::OrphanPv { path: path.clone() }),
            Some(parsed) if parsed.vg.name != layout.name => {
                return Err(LvmError::ForeignVg {
                    path: path.clone(),
                    found: parsed.vg.name.clone(),
                    wanted: layout.name.clone(),
                })
            }
            Some(_) => pvs.push(pv),
        }
    }
    // The newest metadata wins, as in lvm; every PV must belong to it.
    let newest = pvs
        .iter()
        .filter_map(|p| p.vg.as_ref())
        .max_by_key(|v| v.vg.seqno)
        .cloned()
        .ok_or_else(|| LvmError::NoPvs(layout.name.clone()))?;
    let vg = newest.vg;
    let mut pv_paths = vec![None; vg.pvs.len()];
    for pv in &pvs {
        match vg.pvs.iter().position(|p| p.id == pv.label.id) {
            Some(i) => pv_paths[i] = Some(pv.path.clone()),
            None => {
                return Err(LvmError::PvSetMismatch {
                    vg: vg.name.clone(),
                    existing: vg.pvs.iter().map(|p| p.device.clone()).collect(),
                    wanted,
                })
            }
        }
    }
    let Some(pv_paths) = pv_paths.into_iter().collect::<Option<Vec<_>>>() else {
        return Err(LvmError::PvSetMismatch {
            vg: vg.name.clone(),
            existing: vg.pvs.iter().map(|p| p.device.clone()).collect(),
            wanted,
        });
    };

    let additions = plan_additions(&vg, &layout.lvs)?;
    if additions.is_empty() {
        return Ok((
            Applied {
                vg,
                pv_paths,
                outcome: Outcome::Unchanged,
            },
            Vec::new(),
        ));
    }
    if !newest.unmodelled.is_empty() {
        return Err(bad_mda(
            &pvs[0].path,
            format!(
                "volume group {} uses features landfall does not rewrite ({}); add the LVs with lvm",
                vg.name,
                newest.unmodelled.join(", ")
            ),
        ));
    }
    let mut next = vg.clone();
    next.seqno += 1;
    let mut ids = Vec::with_capacity(additions.len());
    for _ in &additions {
        ids.push(LvmId::random()?);
    }
    next.lvs.extend(
        additions
            .iter()
            .zip(ids)
            .map(|(plan, id)| Lv::from_plan(plan, id, creation)),
    );
    let text = render(
        &next,
        &Trailer {
            host: creation.host.clone(),
            uname: uname.to_string(),
            time: creation.time,
            description: format!(
                "Write from landfall-agent (add {} to volume group {})",
                additions
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                next.name
            ),
        },
    );

    let mut texts = Vec::new();
    let mut headers = Vec::new();
    for pv in &pvs {
        let file = layout
            .pvs
            .iter()
            .position(|p| p == &pv.path)
            .unwrap_or_default();
        let Some(mda) = &pv.mda else {
            continue;
        };
        let at = mda
            .next_location(text.len() as u64)
            .ok_or(LvmError::MetadataTooLarge {
                vg: next.name.clone(),
                bytes: text.len() as u64,
                area: mda.size,
            })?;
        let locn = RawLocn {
            offset: at,
            size: text.len() as u64,
            checksum: text_crc(&[&text]),
            flags: 0,
        };
        let mut from = 0usize;
        for (offset, len) in mda.pieces(&locn) {
            let mut bytes = text[from..from + len as usize].to_vec();
            from += len as usize;
            // Zero up to the next 512-byte boundary, as lvm does.
            let end = offset + len;
            let pad = end.div_ceil(512) * 512 - end;
            if end + pad <= mda.size {
                bytes.resize(bytes.len() + pad as usize, 0);
            }
            texts.push(Write {
                file,
                offset: mda.start + offset,
                bytes,
            });
        }
        headers.push(Write {
            file,
            offset: mda.start,
            bytes: MdaHeader {
                committed: Some(locn),
                ..mda.clone()
            }
            .encode()
            .to_vec(),
        });
    }
    let added = additions.iter().map(|a| a.name.clone()).collect();
    let mut writes = texts;
    writes.push(barrier());
    writes.extend(headers);
    Ok((
        Applied {
            vg: next,
            pv_paths,
            outcome: Outcome::Extended { added },
        },
        writes,
    ))
}
