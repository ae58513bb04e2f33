//! Which hypervisor this machine runs under, named as `systemd-detect-virt
//! --vm` names it (nixos-generate-config runs that tool and acts on its
//! answer: `kvm`/`qemu`/`bochs` import the qemu-guest profile, `none` the
//! not-detected firmware profile and the microcode updates).
//!
//! The order of the checks is systemd's: DMI first for the hypervisors that
//! run on KVM but should be named themselves (VirtualBox, Xen, Amazon,
//! Parallels, Google), then Xen's /proc/xen, then the CPUID hypervisor
//! signature, then the rest of DMI, then /sys/hypervisor/type. Containers
//! (`systemd-nspawn`) are not detected: the agent is PID 1 of a machine.
//! systemd's UML, device-tree, z/VM and SMBIOS-bit checks are not done
//! either; such machines read as `none` or, with a CPUID hypervisor bit, as
//! `vm-other`.

/// The facts the detection looks at, read by [`super::hardware`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VirtFacts {
    /// /sys/class/dmi/id/{product_name, sys_vendor, board_vendor,
    /// bios_vendor, product_version}, in that order ("" when missing).
    pub dmi: Vec<String>,
    /// The CPUID leaf 0x40000000 vendor signature, when CPUID's hypervisor
    /// bit is set ("" for a hypervisor without a signature).
    pub cpuid_signature: Option<String>,
    /// /proc/xen exists.
    pub proc_xen: bool,
    /// /proc/xen/capabilities says `control_d` (Xen's dom0, not a guest).
    pub xen_dom0: bool,
    /// /sys/hypervisor/type.
    pub sys_hypervisor_type: String,
}

/// systemd's DMI vendor prefixes and the names they stand for.
const DMI_VENDORS: &[(&str, &str)] = &[
    ("KVM", "kvm"),
    ("OpenStack", "kvm"),
    ("KubeVirt", "kvm"),
    ("Amazon EC2", "amazon"),
    ("QEMU", "qemu"),
    ("VMware", "vmware"),
    ("VMW", "vmware"),
    ("innotek GmbH", "oracle"),
    ("VirtualBox", "oracle"),
    ("Oracle Corporation", "oracle"),
    ("Xen", "xen"),
    ("Bochs", "bochs"),
    ("Parallels", "parallels"),
    ("BHYVE", "bhyve"),
    ("Hyper-V", "microsoft"),
    ("Apple Virtualization", "apple"),
    ("Google Compute Engine", "google"),
];

/// systemd's CPUID hypervisor signatures (NULs stripped) and their names.
const CPUID_VENDORS: &[(&str, &str)] = &[
    ("XenVMMXenVMM", "xen"),
    ("KVMKVMKVM", "kvm"),
    ("Linux KVM Hv", "kvm"),
    ("TCGTCGTCGTCG", "qemu"),
    ("VMwareVMware", "vmware"),
    ("Microsoft Hv", "microsoft"),
    ("bhyve bhyve ", "bhyve"),
    ("QNXQVMBSQG", "qnx"),
    ("ACRNACRNACRN", "acrn"),
    ("SRESRESRESRE", "sre"),
    ("Apple VZ", "apple"),
];

/// The hypervisor DMI names, or None.
fn from_dmi(dmi: &[String]) -> Option<&'static str> {
    for value in dmi {
        if let Some((_, name)) = DMI_VENDORS.iter().find(|(p, _)| value.starts_with(p)) {
            return Some(name);
        }
    }
    // Hyper-V's firmware names itself only as a Microsoft virtual machine.
    let field = |i: usize| dmi.get(i).map(String::as_str).unwrap_or("");
    if field(1) == "Microsoft Corporation" && field(0) == "Virtual Machine" {
        return Some("microsoft");
    }
    None
}

fn from_cpuid(signature: &str) -> &'static str {
    let sig = signature.trim_end_matches('\0');
    CPUID_VENDORS
        .iter()
        .find(|(s, _)| *s == sig)
        .map(|(_, n)| *n)
        .unwrap_or("vm-other")
}

/// systemd-detect-virt's name for the hypervisor these facts show.
pub fn detect_virtualization(f: &VirtFacts) -> &'static str {
    let dmi = from_dmi(&f.dmi);
    if let Some(d @ ("oracle" | "xen" | "amazon" | "parallels" | "google")) = dmi {
        return d;
    }
    if f.proc_xen && !f.xen_dom0 {
        return "xen";
    }
    let mut other = false;
    match f.cpuid_signature.as_deref().map(from_cpuid) {
        Some("vm-other") => other = true,
        // A Hyper-V signature may be another hypervisor's enlightenment:
        // systemd lets DMI decide first.
        Some("microsoft") => {}
        Some(v) => return v,
        None => {}
    }
    if let Some(d) = dmi {
        return d;
    }
    if f.sys_hypervisor_type == "xen" {
        return "xen";
    }
    if f.cpuid_signature.as_deref().map(from_cpuid) == Some("microsoft") {
        return "microsoft";
    }
    if other {
        return "vm-other";
    }
    "none"
}

/// The CPUID hypervisor signature of the CPU this runs on, when CPUID's
/// hypervisor bit (leaf 1, ECX bit 31) is set.
#[cfg(target_arch = "x86_64")]
pub fn cpuid_hypervisor_signature() -> Option<String> {
    use std::arch::x86_64::__cpuid;
    // `__cpuid` is an unsafe fn before Rust 1.94 and a safe one after; the
    // block is needed for the older compilers this workspace supports.
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86_64 CPU and only reads identification
    // registers; leaves 1 and 0x40000000 are defined (a CPU without a
    // hypervisor leaf returns unrelated values, which the bit check guards).
    let (leaf1, hv) = unsafe { (__cpuid(1), __cpuid(0x4000_0000)) };
    if leaf1.ecx & (1 << 31) == 0 {
        return None;
    }
    let bytes: Vec<u8> = [hv.ebx, hv.ecx, hv.edx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .collect();
    Some(
        String::from_utf8_lossy(&bytes)
            .trim_end_matches('\0')
            .to_string(),
    )
}

/// No CPUID outside x86_64: only DMI and sysfs decide.
#[cfg(not(target_arch = "x86_64"))]
pub fn cpuid_hypervisor_signature() -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dmi(product: &str, vendor: &str) -> Vec<String> {
        vec![
            product.into(),
            vendor.into(),
            "".into(),
            "".into(),
            "".into(),
        ]
    }

    #[test]
    fn qemu_with_kvm_reads_as_kvm_and_without_as_qemu() {
        // Standard PC (Q35 + ICH9, 2009) from QEMU, KVM accelerated.
        let kvm = VirtFacts {
            dmi: dmi("Standard PC (Q35 + ICH9, 2009)", "QEMU"),
            cpuid_signature: Some("KVMKVMKVM".into()),
            ..Default::default()
        };
        assert_eq!(detect_virtualization(&kvm), "kvm");
        let tcg = VirtFacts {
            cpuid_signature: Some("TCGTCGTCGTCG".into()),
            ..kvm.clone()
        };
        assert_eq!(detect_virtualization(&tcg), "qemu");
        // No CPUID hint: the DMI vendor QEMU decides.
        let dmi_only = VirtFacts {
            cpuid_signature: None,
            ..kvm
        };
        assert_eq!(detect_virtualization(&dmi_only), "qemu");
    }

    #[test]
    fn virtualbox_on_kvm_is_virtualbox() {
        let f = VirtFacts {
            dmi: dmi("VirtualBox", "innotek GmbH"),
            cpuid_signature: Some("KVMKVMKVM".into()),
            ..Default::default()
        };
        assert_eq!(detect_virtualization(&f), "oracle");
    }

    #[test]
    fn bare_metal_is_none_and_an_unknown_hypervisor_is_vm_other() {
        let metal = VirtFacts {
            dmi: dmi("X570D4U", "ASRockRack"),
            ..Default::default()
        };
        assert_eq!(detect_virtualization(&metal), "none");
        let other = VirtFacts {
            cpuid_signature: Some("NoSuchHvSig!".into()),
            ..metal
        };
        assert_eq!(detect_virtualization(&other), "vm-other");
    }

    #[test]
    fn hyper_v_and_xen() {
        let hv = VirtFacts {
            dmi: dmi("Virtual Machine", "Microsoft Corporation"),
            cpuid_signature: Some("Microsoft Hv".into()),
            ..Default::default()
        };
        assert_eq!(detect_virtualization(&hv), "microsoft");
        let domu = VirtFacts {
            proc_xen: true,
            ..Default::default()
        };
        assert_eq!(detect_virtualization(&domu), "xen");
        let dom0 = VirtFacts {
            proc_xen: true,
            xen_dom0: true,
            ..Default::default()
        };
        assert_eq!(detect_virtualization(&dom0), "none");
    }

    #[test]
    fn this_cpu_answers_without_crashing() {
        // Whatever the host is, reading CPUID must not fault.
        let _ = cpuid_hypervisor_signature();
    }
}
