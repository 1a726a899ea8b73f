//! The shape of `src/`, checked: the parts listed in `lib.rs` form layers (each
//! uses only the parts declared before it), files inside one part never use each
//! other both ways, and `lib.rs`'s module docs name every part.
//!
//! "Uses" means a `crate::…` or `super::…` path in the file's text (imports,
//! qualified calls, doc links alike), which is how this codebase refers to
//! other modules. Run alone with `cargo test --test it architecture::`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The watcher's `src/`.
fn watcher_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The simulator crate's `src/`.
fn sim_src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/sim/src")
}

/// A module path (`["store", "claim"]`) for every `.rs` file under `src`.
fn modules(src: &Path) -> BTreeMap<Vec<String>, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files
        .into_iter()
        .filter_map(|file| {
            let rel = file.strip_prefix(src).unwrap().with_extension("");
            let mut path: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            match path.last().map(String::as_str) {
                Some("lib" | "main") if path.len() == 1 => return None,
                Some("mod") => {
                    path.pop();
                }
                _ => {}
            }
            Some((path, std::fs::read_to_string(&file).unwrap()))
        })
        .collect()
}

/// The module paths a file's text refers to, resolved against the known modules
/// (the longest known prefix of each `crate::a::b::Item` or `super::x` path).
fn uses(module: &[String], text: &str, known: &BTreeSet<Vec<String>>) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    for (start, _) in text
        .match_indices("crate::")
        .chain(text.match_indices("super::"))
    {
        if start > 0 && text[..start].ends_with(|c: char| ident(c) || c == ':') {
            continue; // `issuance_watcher::…`, `$crate::…` or the middle of `super::super::`
        }
        let rest = &text[start..];
        let segments: Vec<&str> = rest
            .split("::")
            .map(|s| s.split(|c: char| !ident(c)).next().unwrap_or(""))
            .take_while(|s| !s.is_empty())
            .collect();
        let mut base: Vec<String> = Vec::new();
        let mut i = 1;
        if segments.first() == Some(&"super") {
            // `super` of module `a::b` (file `a/b.rs` or `a/b/mod.rs`) is `a`.
            base = module.to_vec();
            base.pop();
            while segments.get(i) == Some(&"super") {
                base.pop();
                i += 1;
            }
        }
        let mut path = base;
        let mut best = None;
        for segment in &segments[i..] {
            path.push((*segment).to_owned());
            if known.contains(&path) {
                best = Some(path.clone());
            }
        }
        if let Some(best) = best {
            found.insert(best);
        }
    }
    found
}

fn graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules = modules(src);
    let known: BTreeSet<Vec<String>> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, text)| (module.clone(), uses(module, text, &known)))
        .collect()
}

/// The top-level parts in the order `lib.rs` declares them.
fn parts() -> Vec<String> {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    lib.lines()
        .filter_map(|l| l.strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

#[test]
fn each_part_uses_only_the_parts_declared_before_it_in_lib_rs() {
    let parts = parts();
    assert!(parts.len() >= 8, "lib.rs declares {parts:?}");
    let rank = |name: &str| parts.iter().position(|p| p == name);
    let mut wrong = Vec::new();
    for (module, used) in graph(&watcher_src()) {
        let from = &module[0];
        let from_rank = rank(from).unwrap_or_else(|| panic!("{from} is not declared in lib.rs"));
        for target in used {
            let to = &target[0];
            if to == from {
                continue;
            }
            let to_rank = rank(to).unwrap_or_else(|| panic!("{to} is not declared in lib.rs"));
            if to_rank > from_rank {
                wrong.push(format!("{} uses {}", module.join("::"), target.join("::")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "a part uses one declared after it in lib.rs (a cycle or a misplaced module):\n{}",
        wrong.join("\n")
    );
}

/// The cycles among the files of `graph` (as `a -> b -> a`); with
/// `within_parts`, only those that stay inside one top-level part.
fn cycles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>, within_parts: bool) -> Vec<String> {
    let mut cycles = Vec::new();
    // Only modules that are files: a folder's `mod.rs` declares and re-exports
    // its children, which is not a use in this sense.
    let leaves: Vec<&Vec<String>> = graph
        .keys()
        .filter(|m| !graph.keys().any(|o| o.len() > m.len() && o.starts_with(m)))
        .collect();
    // Depth-first search for a path back to the start, over leaf modules only.
    for start in &leaves {
        let mut stack: Vec<(Vec<String>, Vec<Vec<String>>)> =
            vec![((*start).clone(), vec![(*start).clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if !leaves.contains(&next) || (within_parts && next[0] != start[0]) {
                    continue;
                }
                if next == *start {
                    let names: Vec<String> = path.iter().map(|m| m.join("::")).collect();
                    cycles.push(format!("{} -> {}", names.join(" -> "), start.join("::")));
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    cycles
}

#[test]
fn no_two_files_in_one_part_use_each_other() {
    let cycles = cycles(&graph(&watcher_src()), true);
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn no_two_files_of_the_simulator_use_each_other() {
    // The simulator crate has no layers of its own; no cycle at all, then.
    let graph = graph(&sim_src());
    assert!(
        graph.len() >= 10,
        "the simulator's files: {:?}",
        graph.keys()
    );
    let cycles = cycles(&graph, false);
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    // Negative control: two files of one part that name each other.
    let known: BTreeSet<Vec<String>> = [
        vec!["store".into(), "a".into()],
        vec!["store".into(), "b".into()],
    ]
    .into_iter()
    .collect();
    let a = uses(
        &known.iter().next().unwrap().clone(),
        "use super::b::X;",
        &known,
    );
    let b = uses(
        &known.iter().nth(1).unwrap().clone(),
        "crate::store::a::f()",
        &known,
    );
    assert_eq!(
        a,
        BTreeSet::from([vec!["store".to_owned(), "b".to_owned()]])
    );
    assert_eq!(
        b,
        BTreeSet::from([vec!["store".to_owned(), "a".to_owned()]])
    );
    // A cycle across two parts counts only where parts do not matter (the simulator).
    let m = |part: &str, file: &str| vec![part.to_owned(), file.to_owned()];
    let across = BTreeMap::from([
        (m("x", "a"), BTreeSet::from([m("y", "b")])),
        (m("y", "b"), BTreeSet::from([m("x", "a")])),
    ]);
    assert!(cycles(&across, true).is_empty());
    let anywhere = cycles(&across, false);
    assert_eq!(anywhere.len(), 2, "{anywhere:?}");
    // `issuance_watcher::` and `$crate::` are not this crate's paths in source.
    assert!(uses(&["x".into()], "issuance_watcher::store::a", &known).is_empty());
}

#[test]
fn lib_rs_docs_name_every_part() {
    let lib =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs")).unwrap();
    for part in parts() {
        assert!(
            lib.contains(&format!("//! - [`{part}`]")),
            "lib.rs's module docs do not list `{part}`"
        );
    }
}
