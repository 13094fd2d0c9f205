//! The module layering of ARCHITECTURE.md holds: every `use crate::X` between
//! top-level modules of `src/` is one the table there allows, every module is in
//! the table, and the table has no circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The table between the layering markers: module -> modules it may import.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let start = text
        .find("<!-- layering")
        .expect("ARCHITECTURE.md has a layering table");
    let end = text.find("<!-- end of layering").unwrap();
    let mut table = BTreeMap::new();
    for line in text[start..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | module | layer | may import |
        if cells.len() < 4 || cells[1].is_empty() || cells[1] == "module" || cells[1] == "---" {
            continue;
        }
        let imports = cells[3]
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        assert!(
            table.insert(cells[1].to_owned(), imports).is_none(),
            "{} is twice in the table",
            cells[1]
        );
    }
    table
}

/// The top-level modules of src/ (folders and files, not lib.rs or main.rs).
fn modules() -> BTreeSet<String> {
    std::fs::read_dir(repo().join("src"))
        .unwrap()
        .filter_map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                Some(name)
            } else {
                name.strip_suffix(".rs")
                    .filter(|n| *n != "lib" && *n != "main")
                    .map(str::to_owned)
            }
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::X` in code (comments left out) between two top-level modules:
/// (from, to) -> the first place it is written.
fn imports(modules: &BTreeSet<String>) -> BTreeMap<(String, String), String> {
    let src = repo().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let from = first.trim_end_matches(".rs").to_owned();
        if !modules.contains(&from) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name != from && modules.contains(&name) {
                    edges
                        .entry((from.clone(), name))
                        .or_insert_with(|| format!("src/{}:{}", rel.display(), n + 1));
                }
            }
        }
    }
    edges
}

#[test]
fn every_import_between_modules_is_one_architecture_md_allows() {
    let table = allowed();
    let modules = modules();
    let listed: BTreeSet<String> = table.keys().cloned().collect();
    assert_eq!(
        modules, listed,
        "the modules of src/ and those in ARCHITECTURE.md's table differ"
    );
    let mut wrong = Vec::new();
    for ((from, to), at) in imports(&modules) {
        if !table[&from].contains(&to) {
            wrong.push(format!(
                "{at}: `{from}` imports `{to}`, which ARCHITECTURE.md does not allow"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_layering_has_no_circle() {
    let table = allowed();
    // Kahn: remove modules that import nothing left until none remain.
    let mut left = table.clone();
    loop {
        let free: Vec<String> = left
            .iter()
            .filter(|(_, imports)| imports.iter().all(|i| !left.contains_key(i)))
            .map(|(m, _)| m.clone())
            .collect();
        if free.is_empty() {
            break;
        }
        for m in free {
            left.remove(&m);
        }
    }
    assert!(
        left.is_empty(),
        "a circle among: {:?}",
        left.keys().collect::<Vec<_>>()
    );
    for (m, imports) in &table {
        for i in imports {
            assert!(
                table.contains_key(i),
                "{m} may import {i}, which is not a module"
            );
        }
    }
}
