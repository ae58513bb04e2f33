//! `landfall disk plan|apply`: the disk layout from the laptop's side. Without an
//! agent, `plan` validates the layout and lists what it will create; with one, the
//! agent plans on the real disks (what exists and will be destroyed, exact sectors).

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use landfall_proto::layout::{Content, Layout, Size};
use landfall_proto::v1::agent_client::AgentClient;
use landfall_proto::v1::{JobEvent, LayoutRequest, PlanReply, StepState};
use tonic::transport::Channel;

use crate::sanitize::{line, text};

/// Parses `NAME=PATH` overrides.
pub fn parse_disk_overrides(args: &[String]) -> anyhow::Result<HashMap<String, String>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("--disk {a}: expected NAME=PATH, e.g. --disk main=/dev/sda"),
        })
        .collect()
}

/// What a validated layout will create, without looking at any disk.
pub fn describe(layout: &Layout) -> String {
    let mut s = String::new();
    for d in &layout.disks {
        s += &format!("disk {} ({}): GPT\n", d.key, d.device);
        for p in &d.partitions {
            let size = match &p.size {
                Size::Rest => "rest of disk".to_string(),
                Size::Fixed(v) => v.clone(),
            };
            let what = p
                .content
                .as_ref()
                .map(content_text)
                .unwrap_or_else(|| "(no filesystem)".to_string());
            s += &format!(
                "  {}. {:<24} {:<12} type {}  {}\n",
                p.number, p.label, size, p.type_code, what
            );
        }
    }
    for vg in &layout.lvm_vgs {
        s += &format!("LVM volume group {}\n", vg.name);
        for lv in &vg.lvs {
            s += &format!(
                "  LV {:<24} {:<12} {}\n",
                lv.name,
                lv.size,
                lv.content
                    .as_ref()
                    .map(content_text)
                    .unwrap_or_else(|| "(no filesystem)".to_string())
            );
        }
    }
    for n in &layout.nodev {
        s += &format!(
            "nodev {}: {} at {}\n",
            n.key,
            n.fs_type,
            n.mountpoint.as_deref().unwrap_or("-")
        );
    }
    s
}

/// One content for a person: the filesystem and where it is mounted, or
/// what device-mapper device it makes and what that holds.
fn content_text(c: &Content) -> String {
    match c {
        Content::Filesystem(f) => format!(
            "{} {}",
            f.format.as_str(),
            f.mountpoint.as_deref().unwrap_or("(not mounted)")
        ),
        Content::Swap(_) => "swap".to_string(),
        Content::Btrfs(b) => {
            let subs: Vec<String> = b
                .subvolumes
                .iter()
                .map(|s| match &s.mountpoint {
                    Some(m) => format!("{}→{m}", s.name),
                    None => s.name.clone(),
                })
                .collect();
            format!(
                "btrfs {}{}",
                b.mountpoint.as_deref().unwrap_or("(top level not mounted)"),
                if subs.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", subs.join(", "))
                }
            )
        }
        Content::LvmPv(pv) => format!("LVM physical volume of VG {}", pv.vg),
        Content::Luks(l) => format!(
            "LUKS2 /dev/mapper/{}{}",
            l.name,
            l.content
                .as_deref()
                .map(|c| format!(" holding {}", content_text(c)))
                .unwrap_or_default()
        ),
    }
}

/// Asks on the terminal; refuses when there is none.
/// What to ask before applying `plan`: the disks that hold the layout but
/// were not formatted by this install are named, since nothing else in the
/// question says why a disk that already looks right is wiped.
pub fn destroy_question(plan: &PlanReply) -> String {
    let foreign: Vec<String> =
        serde_json::from_str::<landfall_proto::layout::Plan>(&plan.plan_json)
            .map(|p| {
                p.disks
                    .into_iter()
                    .filter(|d| d.foreign_layout)
                    .map(|d| format!("{} ({})", line(&d.key), line(&d.path)))
                    .collect()
            })
            .unwrap_or_default();
    if foreign.is_empty() {
        "This destroys the data listed above.".to_string()
    } else {
        format!(
            "This destroys the data listed above. {} {}; --keep-existing keeps it.",
            foreign.join(", "),
            landfall_proto::layout::FOREIGN_LAYOUT
        )
    }
}

pub fn confirm(question: &str) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("Refusing to destroy data without --yes: there is no terminal to ask on");
    }
    eprint!("{question} Type \"yes\" to continue: ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if line.trim() != "yes" {
        bail!("Not confirmed; nothing was changed");
    }
    Ok(())
}

pub async fn plan(
    client: &mut AgentClient<Channel>,
    req: LayoutRequest,
) -> anyhow::Result<PlanReply> {
    Ok(client
        .plan_layout(req)
        .await
        .map_err(crate::agent_error::AgentError::from)
        .context("The agent could not plan the layout")?
        .into_inner())
}

/// Who each planned disk is — model, serial, size, from the agent's inventory —
/// so the confirmation names the hardware, not just a device path.
pub fn identities(plan: &PlanReply, inv: &landfall_proto::v1::InventoryReply) -> String {
    let Ok(parsed) = serde_json::from_str::<landfall_proto::layout::Plan>(&plan.plan_json) else {
        return String::new();
    };
    let mut s = String::from("Disks on the target this layout uses:\n");
    for d in &parsed.disks {
        let found = inv.disks.iter().find(|x| x.path == d.path);
        let who = match found {
            Some(x) => identity_line(x),
            None => "not in the agent's inventory".to_string(),
        };
        let fate = if d.already_applied {
            "kept (already holds this layout)"
        } else if d.existing.table.is_none() && d.existing.signatures.is_empty() {
            "blank"
        } else {
            "EVERYTHING ON IT WILL BE DESTROYED"
        };
        s += &format!("  {} = {}: {who} — {fate}\n", line(&d.key), line(&d.path));
    }
    s
}

/// `QEMU NVMe Ctrl, serial landfall-vm-0, 4.0 GiB, 2 partition(s): vfat "ESP", ext4`.
pub fn identity_line(d: &landfall_proto::v1::Disk) -> String {
    let mut parts = vec![
        if d.model.is_empty() {
            "unknown model".to_string()
        } else {
            line(&d.model).into_owned()
        },
        if d.serial.is_empty() {
            "no serial".to_string()
        } else {
            format!("serial {}", line(&d.serial))
        },
        crate::render::human_bytes(d.size_bytes),
    ];
    if !d.partitions.is_empty() {
        let fs: Vec<String> = d
            .partitions
            .iter()
            .map(
                |p| match (p.filesystem.is_empty(), p.filesystem_label.is_empty()) {
                    (false, false) => {
                        format!("{} \"{}\"", line(&p.filesystem), line(&p.filesystem_label))
                    }
                    (false, true) => line(&p.filesystem).into_owned(),
                    _ => "no filesystem".into(),
                },
            )
            .collect();
        parts.push(format!(
            "{} partition(s): {}",
            d.partitions.len(),
            fs.join(", ")
        ));
    }
    parts.join(", ")
}

/// [`identities`] of a plan, asking the agent for its inventory ("" if it cannot answer).
pub async fn identities_of(client: &mut AgentClient<Channel>, plan: &PlanReply) -> String {
    match client
        .inventory(landfall_proto::v1::InventoryRequest {})
        .await
    {
        Ok(inv) => identities(plan, &inv.into_inner()),
        Err(_) => String::new(),
    }
}

/// Plans on the agent and prints (to stderr) the plan with the disks' identities.
pub async fn plan_and_show(
    client: &mut AgentClient<Channel>,
    req: LayoutRequest,
) -> anyhow::Result<PlanReply> {
    let plan = plan(client, req).await?;
    eprint!("{}", text(&plan.rendered));
    eprint!("{}", identities_of(client, &plan).await);
    Ok(plan)
}

/// One progress line for a job event, its strings (the closure installer's
/// output among them) escaped by [`crate::sanitize`].
pub fn event_line(e: &JobEvent) -> Option<String> {
    let n = format!("[{}/{}]", e.index.saturating_add(1), e.total);
    let (what, why) = (line(&e.description), line(&e.reason));
    match StepState::try_from(e.state).unwrap_or(StepState::Unspecified) {
        StepState::Started => Some(format!("{n} {what} …")),
        StepState::Finished => Some(format!(
            "{n} {what} ✓ {:.2} s",
            e.duration_ms as f64 / 1000.0
        )),
        StepState::Skipped => Some(format!("{n} {what} (already done: {why})")),
        StepState::Failed => Some(format!("{n} {what} FAILED: {why}")),
        StepState::Done => Some(text(&e.summary).into_owned()),
        StepState::Output => Some(format!("  | {what}")),
        StepState::Unspecified => None,
    }
}

/// Follows a job's event stream, printing each step to stderr; returns the
/// DONE summary. `failed` words the error when the job fails.
pub async fn follow_job(
    mut stream: tonic::Streaming<JobEvent>,
    failed: &str,
) -> anyhow::Result<String> {
    let mut summary = String::new();
    loop {
        match stream.message().await {
            Ok(Some(e)) => {
                if let Some(line) = event_line(&e) {
                    eprintln!("{line}");
                }
                if e.state == StepState::Done as i32 {
                    summary = e.summary;
                }
            }
            Ok(None) => break,
            Err(s) => {
                return Err(crate::agent_error::AgentError::from(s)).context(failed.to_string())
            }
        }
    }
    if summary.is_empty() {
        bail!("The agent's stream ended before the job finished ({failed})");
    }
    Ok(summary)
}

/// Applies the layout, printing each step; returns the agent's summary.
pub async fn apply(
    client: &mut AgentClient<Channel>,
    req: LayoutRequest,
) -> anyhow::Result<String> {
    let stream = client
        .apply_layout(req)
        .await
        .map_err(crate::agent_error::AgentError::from)
        .context("The agent refused to apply the layout")?
        .into_inner();
    follow_job(stream, "Applying the layout failed").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_question_names_a_disk_this_install_did_not_format() {
        use landfall_proto::layout::{plan_with, Layout, PlanOptions};
        let l = Layout::from_json(
            r#"{"disk":{"main":{"device":"/dev/vda","content":{"type":"gpt","partitions":{
            "root":{"size":"100%","content":{"type":"filesystem","format":"ext4"}}}}}}}"#,
        )
        .unwrap();
        let mut facts = landfall_proto::layout::blank_disk_facts(&l, 1 << 30);
        let blank = plan_with(&l, &facts, &PlanOptions::install("new", false)).unwrap();
        let reply = |p: &landfall_proto::layout::Plan| PlanReply {
            plan_json: serde_json::to_string(p).unwrap(),
            destructive: p.is_destructive(),
            ..Default::default()
        };
        assert_eq!(
            destroy_question(&reply(&blank)),
            "This destroys the data listed above."
        );
        // The same layout, formatted by another install.
        let f = facts.get_mut("main").unwrap();
        f.existing.table = Some("gpt".into());
        f.existing.disk_guid = Some(landfall_proto::layout::install_disk_guid("old", "main"));
        f.existing.partitions = blank.disks[0]
            .partitions
            .iter()
            .map(|p| landfall_proto::layout::ExistingPartition {
                number: p.number,
                first_lba: p.first_lba,
                last_lba: p.last_lba,
                type_guid: p.type_guid.clone(),
                label: p.label.clone(),
                part_uuid: "00000000-0000-0000-0000-000000000001".into(),
                fs_type: Some("ext4".into()),
                fs_label: None,
                fs_uuid: None,
            })
            .collect();
        let foreign = plan_with(&l, &facts, &PlanOptions::install("new", false)).unwrap();
        let q = destroy_question(&reply(&foreign));
        assert!(q.contains("main (/dev/main)"), "{q}");
        assert!(q.contains(landfall_proto::layout::FOREIGN_LAYOUT), "{q}");
    }

    #[test]
    fn installer_output_and_plans_from_the_target_are_escaped() {
        let e = JobEvent {
            state: StepState::Output as i32,
            description: "\u{1b}[1A\u{1b}[2Kblank".into(),
            ..Default::default()
        };
        assert_eq!(event_line(&e).unwrap(), "  | \\x1b[1A\\x1b[2Kblank");
        let e = JobEvent {
            index: u32::MAX,
            total: 3,
            state: StepState::Failed as i32,
            description: "mkfs".into(),
            reason: "no\rspace\u{7}".into(),
            ..Default::default()
        };
        assert_eq!(
            event_line(&e).unwrap(),
            "[4294967295/3] mkfs FAILED: no\\x0dspace\\x07"
        );
    }

    /// The confirmation's identity lines, from a hostile inventory: the
    /// model cannot hide the "DESTROYED" verdict that follows it.
    #[test]
    fn the_confirmation_shows_a_hostile_model_escaped() {
        let d = landfall_proto::v1::Disk {
            path: "/dev/sda".into(),
            model: "X\u{1b}[2K\r\u{1b}[32mblank".into(),
            serial: "\u{9b}8m".into(),
            size_bytes: 1 << 30,
            ..Default::default()
        };
        assert_eq!(
            identity_line(&d),
            "X\\x1b[2K\\x0d\\x1b[32mblank, serial \\x9b8m, 1.0 GiB"
        );
    }

    #[test]
    fn overrides_parse_and_reject_garbage() {
        let m = parse_disk_overrides(&["main=/dev/vda".into()]).unwrap();
        assert_eq!(m["main"], "/dev/vda");
        assert!(parse_disk_overrides(&["main".into()]).is_err());
        assert!(parse_disk_overrides(&["=/dev/vda".into()]).is_err());
    }

    #[test]
    fn seed_layout_is_described_in_disko_order() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/layouts/seed.evaluated.json"
        ))
        .unwrap();
        let layout = Layout::from_json(&text).unwrap();
        let d = describe(&layout);
        let boot = d.find("disk-main-boot").unwrap();
        let esp = d.find("disk-main-ESP").unwrap();
        let root = d.find("disk-main-root").unwrap();
        assert!(boot < esp && esp < root, "{d}");
        assert!(d.contains("vfat /boot") && d.contains("ext4 /"), "{d}");
    }

    #[test]
    fn luks_lvm_layout_is_described_with_its_vg_and_lvs() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/layouts/disko-luks-lvm.json"
        ))
        .unwrap();
        let d = describe(&Layout::from_json(&text).unwrap());
        assert!(
            d.contains("disk-main-luks")
                && d.contains("LUKS2 /dev/mapper/crypted holding LVM physical volume of VG pool"),
            "{d}"
        );
        let vg = d.find("LVM volume group pool").expect(&d);
        let home = d.find("LV home").expect(&d);
        let raw = d.find("LV raw").expect(&d);
        let root = d.find("LV root").expect(&d);
        assert!(vg < home && home < raw && raw < root, "{d}");
        let root_line = d.lines().find(|l| l.contains("LV root")).unwrap();
        assert!(
            root_line.contains("100%") && root_line.contains("ext4 /"),
            "{d}"
        );
    }
}
