//! Thin, typed wrappers over the kernel interfaces the agent uses: one module per
//! interface. Every unsafe call is here, each with a `// SAFETY:` comment, and
//! every ioctl number is unit-tested against the value the kernel headers give.

pub mod blk;
pub mod blkpg;
pub mod btrfs;
pub mod dm;
pub mod kexec;
pub mod loopdev;
pub mod mount;
pub mod mountinfo;
pub mod rlimit;
pub mod sysfs;
pub mod uname;
