//! The layout model (proto, pure) and the agent's LUKS2/LVM2 writers read
//! the same words the same way: every cryptsetup argument list, LVM name
//! and LV size below is accepted by both or refused by both, and accepted
//! values agree. Guards the two copies of these rules against drifting.

use landfall_agent::dm::luks2::args::parse_extra_args;
use landfall_agent::dm::lvm2::names::{check_lv_name, check_vg_name, dm_name};
use landfall_agent::dm::lvm2::size::{LvSize as AgentSize, PercentOf};
use landfall_proto::layout::{self, LvSize};

#[test]
fn cryptsetup_arguments_agree() {
    let lists: Vec<Vec<&str>> = vec![
        vec![],
        vec!["--label", "cryptroot"],
        vec!["--label=x", "--pbkdf-memory", "65536", "--iter-time=1000"],
        vec!["-i", "500", "--pbkdf-force-iterations", "5"],
        vec!["--type", "luks2", "--allow-discards"],
        vec!["--perf-no_read_workqueue", "--perf-no_write_workqueue"],
        vec!["--type", "luks1"],
        vec!["--cipher", "aes-cbc-essiv:sha256"],
        vec!["--hash=sha512"],
        vec!["--allow-discards=yes"],
        vec!["--label"],
        vec!["--pbkdf-memory", "lots"],
        vec!["--pbkdf-memory", "31"],
        vec!["--pbkdf-force-iterations", "3"],
        vec!["--iter-time", "0"],
        vec!["--key-size", "256"],
        vec!["-c", "aes"],
    ];
    let long = "x".repeat(48);
    let mut lists = lists;
    lists.push(vec!["--label", &long]);
    lists.push(vec!["--label", &long[..47]]);
    for words in &lists {
        let owned: Vec<String> = words.iter().map(|s| s.to_string()).collect();
        let agent = parse_extra_args(words);
        let proto = layout::parse_luks_args(&owned, "extraFormatArgs");
        assert_eq!(
            agent.is_ok(),
            proto.is_ok(),
            "{words:?}: agent {agent:?}, proto {proto:?}"
        );
        if let (Ok(a), Ok(p)) = (agent, proto) {
            assert_eq!(a.label, p.label, "{words:?}");
            assert_eq!(a.pbkdf_memory_kib, p.pbkdf_memory_kib, "{words:?}");
            assert_eq!(a.iter_time_ms, p.iter_time_ms, "{words:?}");
            assert_eq!(a.force_iterations, p.force_iterations, "{words:?}");
            assert_eq!(
                (a.allow_discards, a.no_read_workqueue, a.no_write_workqueue),
                (p.allow_discards, p.no_read_workqueue, p.no_write_workqueue),
                "{words:?}"
            );
        }
    }
}

#[test]
fn lvm_names_agree() {
    let long = "a".repeat(128);
    let names = [
        "pool",
        "root",
        "home-1",
        "a.b_c+d",
        "-x",
        ".",
        "..",
        "",
        "bad name",
        "ü",
        "a/b",
        "pvmove0",
        "snapshot",
        "x_tmeta",
        "x_rimage_0",
        "_cdata",
        "ok_c",
        &long[..127],
        &long,
    ];
    for n in names {
        assert_eq!(
            check_lv_name(n).is_ok(),
            layout::check_lv_name(n).is_ok(),
            "LV {n:?}"
        );
        assert_eq!(
            check_vg_name(n).is_ok(),
            layout::check_lvm_name(n).is_ok(),
            "VG {n:?}"
        );
    }
    for (vg, lv) in [("pool", "root"), ("my-vg", "my-lv"), ("a", "b--c")] {
        assert_eq!(dm_name(vg, lv), layout::lvm_dm_name(vg, lv));
    }
}

#[test]
fn lv_sizes_agree() {
    for s in [
        "10M", "1.5G", "512k", "16", "4096b", "8s", "2T", "1e", "100%", "50%FREE", "20%VG",
        "30%pvs", "10%F", "", "-1G", "+1G", "G", "1X", "1000b", "1.5%FREE", "10%LV", "10%BOGUS",
        "1e3",
    ] {
        let agent = AgentSize::from_disko(s);
        let proto = LvSize::parse(s);
        assert_eq!(
            agent.is_ok(),
            proto.is_ok(),
            "{s:?}: agent {agent:?}, proto {proto:?}"
        );
        if let (Ok(a), Ok(p)) = (agent, proto) {
            let same = match (a, p) {
                (AgentSize::Sectors(x), LvSize::Sectors(y)) => x == y,
                (AgentSize::Percent { percent, of }, p) => {
                    p == match of {
                        PercentOf::Free => LvSize::PercentFree(percent),
                        PercentOf::Vg => LvSize::PercentVg(percent),
                        PercentOf::Pvs => LvSize::PercentPvs(percent),
                    }
                }
                _ => false,
            };
            assert!(same, "{s:?}: agent {a:?}, proto {p:?}");
        }
    }
}

#[test]
fn extents_agree_with_the_agent_planner() {
    use landfall_agent::dm::lvm2::plan::pv_geometry;
    use landfall_agent::dm::lvm2::DEFAULT_EXTENT_SECTORS;
    // The PV sizes the plan shows are the ones the agent's planner makes.
    for bytes in [
        64u64 << 20,
        1_621_098_496,
        (1546 << 20) - (16 << 20),
        10 << 30,
    ] {
        let agent = pv_geometry("/dev/x", bytes, DEFAULT_EXTENT_SECTORS)
            .unwrap()
            .pe_count;
        let proto = (bytes - layout::LVM_PE_START) / layout::LVM_EXTENT_BYTES;
        assert_eq!(agent, proto, "{bytes}");
    }
    for s in [
        "10M", "1M", "100M", "4097k", "100%", "50%FREE", "20%VG", "150%PVS",
    ] {
        let a = AgentSize::from_disko(s).unwrap();
        let p = LvSize::parse(s).unwrap();
        for (total, free) in [(386, 359), (15, 15), (382, 0), (1000, 3)] {
            assert_eq!(
                a.extents(DEFAULT_EXTENT_SECTORS, total, free),
                layout::lv_extents(p, total, free),
                "{s} in {free}/{total}"
            );
        }
    }
}
