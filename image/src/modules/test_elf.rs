//! Builds minimal module-like ELF files for unit tests.

/// A minimal relocatable ELF64 LE with sections: null, .modinfo, .shstrtab.
pub(crate) fn tiny_elf(modinfo: &[u8]) -> Vec<u8> {
    let names = b"\0.modinfo\0.shstrtab\0";
    let mut out = vec![0u8; 64];
    out[..4].copy_from_slice(b"\x7fELF");
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    let modinfo_off = out.len() as u64;
    out.extend_from_slice(modinfo);
    let names_off = out.len() as u64;
    out.extend_from_slice(names);
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let shoff = out.len() as u64;
    let mut section = |name: u32, offset: u64, size: u64| {
        let mut sh = [0u8; 64];
        sh[0..4].copy_from_slice(&name.to_le_bytes());
        sh[4..8].copy_from_slice(&1u32.to_le_bytes());
        sh[24..32].copy_from_slice(&offset.to_le_bytes());
        sh[32..40].copy_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&sh);
    };
    section(0, 0, 0);
    section(1, modinfo_off, modinfo.len() as u64);
    section(10, names_off, names.len() as u64);
    out[0x28..0x30].copy_from_slice(&shoff.to_le_bytes());
    out[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
    out[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
    out[0x3E..0x40].copy_from_slice(&2u16.to_le_bytes());
    out
}
