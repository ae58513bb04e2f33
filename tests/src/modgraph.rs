//! Which module of a crate uses which: a reader of `crate::…` and `super::…`
//! paths, for the check that the controller's and the agent's modules form no
//! import cycle (issue 20; `cargo test -p landfall-tests --lib modgraph`).
//!
//! The graph has two levels. A **top-level** node per module of the crate's
//! root (`agent/src/disk/` and `agent/src/jobs.rs` are `disk` and `jobs`); an
//! edge A → B when a file of A names `crate::B`. Inside a folder module, a
//! node per **file** (`disk::apply`, `disk::action`); an edge when a file
//! names a sibling by its module path (`super::apply::…`,
//! `crate::disk::apply::…`, `use super::{action, apply}`). A folder's own
//! `mod.rs` is left out of the inner level: it declares and re-exports its
//! files, so every file would otherwise meet it in a cycle.
//!
//! Test code does not count (it may reach anywhere): files named `tests.rs`,
//! and everything from a file's `#[cfg(test)]` onwards (the crate's
//! convention is one test module at the end). Comments are dropped before
//! reading. The reader is textual, not a Rust parser: a `crate::x` inside a
//! string literal would count — none is expected in these crates.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::Path;

/// Module name → the modules it uses.
pub type Graph = BTreeMap<String, BTreeSet<String>>;

/// The two levels of `src` (a crate's `src/` folder).
#[derive(Debug, Default)]
pub struct ModuleGraphs {
    /// Top-level modules.
    pub top: Graph,
    /// Per folder module: its files (`disk::apply`).
    pub inner: BTreeMap<String, Graph>,
}

/// Reads every `.rs` file below `src`.
pub fn read_crate(src: &Path) -> io::Result<ModuleGraphs> {
    let mut top_names = BTreeSet::new();
    let mut children: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for e in fs::read_dir(src)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type()?.is_dir() {
            let mut kids = BTreeSet::new();
            for f in fs::read_dir(e.path())? {
                let f = f?;
                let n = f.file_name().to_string_lossy().into_owned();
                if f.file_type()?.is_dir() {
                    kids.insert(n);
                } else if let Some(stem) = n.strip_suffix(".rs") {
                    if stem != "mod" && stem != "tests" {
                        kids.insert(stem.to_string());
                    }
                }
            }
            children.insert(name.clone(), kids);
            top_names.insert(name);
        } else if let Some(stem) = name.strip_suffix(".rs") {
            if !matches!(stem, "main" | "lib" | "tests") {
                top_names.insert(stem.to_string());
            }
        }
    }
    let mut graphs = ModuleGraphs::default();
    for m in &top_names {
        graphs.top.entry(m.clone()).or_default();
    }
    for (dir, kids) in &children {
        let g = graphs.inner.entry(dir.clone()).or_default();
        for k in kids {
            g.entry(k.clone()).or_default();
        }
    }
    let mut files = Vec::new();
    collect_rs(src, &mut files)?;
    for file in files {
        let rel = file.strip_prefix(src).unwrap_or(&file);
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if parts.last().is_some_and(|l| l == "tests") {
            continue;
        }
        let Some(top) = parts.first().filter(|t| top_names.contains(*t)) else {
            continue; // main.rs, lib.rs: the crate root declares, it is not a module
        };
        // The file's node inside its folder module (None for mod.rs itself).
        let inner = (parts.len() >= 2)
            .then(|| parts[1].clone())
            .filter(|n| n != "mod");
        let text = code_of(&fs::read_to_string(&file)?);
        for path in paths_in(&text) {
            let segs: Vec<&str> = path.split("::").collect();
            match segs.first().copied() {
                Some("crate") => {
                    let Some(target) = segs.get(1).filter(|t| top_names.contains(**t)) else {
                        continue;
                    };
                    if *target != top {
                        graphs.top.get_mut(top).unwrap().insert(target.to_string());
                    } else if let (Some(from), Some(kid)) = (&inner, segs.get(2)) {
                        add_inner(&mut graphs, &children, top, from, kid);
                    }
                }
                Some("super") if parts.len() == 2 => {
                    // A file directly in the folder: super:: is the folder module.
                    if let (Some(from), Some(kid)) = (&inner, segs.get(1)) {
                        add_inner(&mut graphs, &children, top, from, kid);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(graphs)
}

fn add_inner(
    graphs: &mut ModuleGraphs,
    children: &BTreeMap<String, BTreeSet<String>>,
    dir: &str,
    from: &str,
    kid: &str,
) {
    if kid != from && children.get(dir).is_some_and(|k| k.contains(kid)) {
        if let Some(g) = graphs.inner.get_mut(dir) {
            g.entry(from.to_string())
                .or_default()
                .insert(kid.to_string());
        }
    }
}

fn collect_rs(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            collect_rs(&e.path(), out)?;
        } else if e.path().extension().is_some_and(|x| x == "rs") {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(())
}

/// The file's code: without comments, and cut at its test module.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        let code = match line.find(" //") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// Every `crate::…` / `super::…` path in `code`, with `use` groups expanded
/// one level (`use super::{action, apply::X}` → `super::action`, `super::apply::X`).
pub fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            from = at + start.len();
            // A whole word: not `mycrate::`, not `self::super::` tails.
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            let rest = &code[at..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let head = rest[..end].trim_end_matches(':');
            if rest[end..].starts_with('{') && rest[..end].ends_with("::") {
                let close = rest[end..].find('}').map_or(rest.len(), |c| end + c);
                for item in rest[end + 1..close].split(',') {
                    let item = item.trim().trim_start_matches('{').trim();
                    let name: String = item
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    if !name.is_empty() && name != "self" {
                        out.push(format!("{head}::{}", name.trim_end_matches(':')));
                    }
                }
            } else {
                out.push(head.to_string());
            }
        }
    }
    out
}

/// The strongly connected components of more than one node (Tarjan), each
/// sorted: every import cycle of `g`.
pub fn cycles(g: &Graph) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// Every cycle of a crate, named for a person: `top: a → b → a` style lists.
pub fn crate_cycles(src: &Path) -> io::Result<Vec<String>> {
    let g = read_crate(src)?;
    let mut out: Vec<String> = cycles(&g.top)
        .into_iter()
        .map(|c| format!("top level: {}", c.join(", ")))
        .collect();
    for (dir, inner) in &g.inner {
        for c in cycles(inner) {
            out.push(format!("inside {dir}/: {}", c.join(", ")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    }

    #[test]
    fn paths_are_read_from_uses_groups_and_inline_paths() {
        let code = "use crate::disk::{apply::X, action};\nuse super::{events, self};\nlet e = crate::jobs::reason(x);\nlet f = mycrate::no;";
        let p = paths_in(code);
        assert!(p.contains(&"crate::disk::apply::X".to_string()), "{p:?}");
        assert!(p.contains(&"crate::disk::action".to_string()), "{p:?}");
        assert!(p.contains(&"super::events".to_string()), "{p:?}");
        assert!(p.contains(&"crate::jobs::reason".to_string()), "{p:?}");
        assert!(!p.iter().any(|x| x.contains("no")), "{p:?}");
    }

    #[test]
    fn a_cycle_is_found_and_a_chain_is_not() {
        assert!(cycles(&graph(&[("a", "b"), ("b", "c")])).is_empty());
        assert_eq!(
            cycles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")])),
            vec![vec!["a".to_string(), "b".into(), "c".into()]]
        );
    }

    #[test]
    fn a_crate_on_disk_is_read_at_both_levels_and_test_code_does_not_count() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path();
        fs::create_dir(src.join("disk")).unwrap();
        fs::write(
            src.join("main.rs"),
            "mod disk; mod jobs; use crate::jobs::x;",
        )
        .unwrap();
        fs::write(src.join("jobs.rs"), "use crate::disk::apply::Y;").unwrap();
        fs::write(
            src.join("disk/mod.rs"),
            "mod apply; mod action; pub use apply::Y;",
        )
        .unwrap();
        fs::write(
            src.join("disk/apply.rs"),
            "use super::action::Z; // crate::jobs\n",
        )
        .unwrap();
        fs::write(
            src.join("disk/action.rs"),
            "pub struct Z;\n#[cfg(test)]\nmod tests { use super::super::apply; use crate::jobs; }",
        )
        .unwrap();
        assert!(crate_cycles(src).unwrap().is_empty());
        // A real cycle at each level.
        fs::write(
            src.join("disk/action.rs"),
            "use super::apply::Y; use crate::jobs::x;",
        )
        .unwrap();
        let found = crate_cycles(src).unwrap();
        assert_eq!(
            found,
            vec![
                "top level: disk, jobs".to_string(),
                "inside disk/: action, apply".to_string()
            ]
        );
    }

    /// The check itself: the controller's and the agent's modules form no cycle.
    #[test]
    fn the_controller_and_the_agent_have_no_import_cycles() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = Vec::new();
        for krate in ["controller/src", "agent/src"] {
            for c in crate_cycles(&root.join(krate)).unwrap() {
                found.push(format!("{krate}: {c}"));
            }
        }
        assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
    }
}
