//! An open disk of the layout: the type the resolver makes and the probe,
//! the planner and the runner read. It sits below them all, so the resolver
//! may name the machine's disks ([`super::present`], which probes them) in an
//! error without a cycle.

use std::fs::File;
use std::path::PathBuf;

use landfall_proto::layout::Geometry;

use crate::sys::loopdev::LoopDevice;

/// An open disk of the layout.
#[derive(Debug)]
pub struct OpenDisk {
    /// The layout's disk key.
    pub key: String,
    /// The block device used (`/dev/loop3` for an image).
    pub path: PathBuf,
    /// The image file, when one was attached to `path`.
    pub image: Option<PathBuf>,
    pub file: File,
    pub geometry: Geometry,
    /// Keeps an attached loop device alive (autoclear on drop of the last fd).
    pub loop_device: Option<LoopDevice>,
}
