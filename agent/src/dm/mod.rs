//! Device-mapper targets the agent builds natively: the on-disk formats whose
//! devices become dm tables (LUKS2 → `crypt`). The dm ioctls themselves live in
//! `sys/`; this layer only produces and reads on-disk metadata and table lines.

pub mod luks2;
