//! The shape of the code, checked on every run (docs/architecture.md): one module per stage,
//! dependencies that flow one way, apalis behind the queue, the database backend behind the
//! store, and files and functions small enough to read.
//!
//! The module graph: one node per module (per file), an edge wherever a module names another
//! by path (`crate::…`, `super::…`, `self::…`). A module naming its own descendants (declaring
//! and re-exporting its children) is containment, not a dependency, and is left out; test code
//! (`#[cfg(test)]` modules) is left out too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src is readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&root).expect("under src").to_string_lossy().replace('\\', "/");
            (rel, std::fs::read_to_string(&p).expect("source is UTF-8"))
        })
        .collect()
}

/// `recovery/job.rs` → `recovery::job`, `store/mod.rs` → `store`, `lib.rs` → `` (the root).
fn module_of(file: &str) -> String {
    let path = file.trim_end_matches(".rs");
    let path = path.strip_suffix("/mod").unwrap_or(path);
    if path == "lib" || path == "main" { String::new() } else { path.replace('/', "::") }
}

/// `text` without comments, string and char literals (so only code is searched).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'r' if b.get(i + 1) == Some(&b'#')
                || (b.get(i + 1) == Some(&b'"') && (i == 0 || !b[i - 1].is_ascii_alphanumeric())) =>
            {
                // A raw string: r"…" or r#"…"#.
                let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
                if b.get(i + 1 + hashes) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                let end: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                while i < b.len() && !b[i..].starts_with(&end) {
                    i += 1;
                }
                i += end.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            b'\'' if b.get(i + 2) == Some(&b'\'') || (b.get(i + 1) == Some(&b'\\')) => {
                // A char literal ('x', '\n'); lifetimes ('a) stay.
                i += 1;
                while i < b.len() && b[i] != b'\'' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("' '");
            }
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

/// `code` up to its first `#[cfg(test)]` (test modules sit at the end of a file).
fn without_tests(code: &str) -> &str {
    code.find("#[cfg(test)]").map_or(code, |i| &code[..i])
}

/// Modules declared under `#[cfg(test)]` (`#[cfg(test)] mod fuzz;`): test code.
fn test_modules(files: &[(String, String)]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (file, text) in files {
        let module = module_of(file);
        let code = code_only(text);
        let mut rest = code.as_str();
        while let Some(at) = rest.find("#[cfg(test)]") {
            rest = &rest[at + 12..];
            let decl = rest.trim_start();
            let decl = decl.strip_prefix("#[path = \"\"]").map_or(decl, str::trim_start);
            if let Some(name) =
                decl.strip_prefix("mod ").and_then(|d| d.split(|c: char| !c.is_alphanumeric() && c != '_').next())
            {
                out.insert(if module.is_empty() { name.to_owned() } else { format!("{module}::{name}") });
            }
        }
        if file.ends_with("_tests.rs") {
            out.insert(module);
        }
    }
    out
}

/// Every module each module names, resolved to the longest module path it starts with.
fn dependencies(files: &[(String, String)]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeSet<String> = files.iter().map(|(f, _)| module_of(f)).collect();
    let tests = test_modules(files);
    let resolve = |segments: &[&str]| -> Option<String> {
        (1..=segments.len()).rev().map(|n| segments[..n].join("::")).find(|m| modules.contains(m))
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, text) in files {
        let module = module_of(file);
        if module.is_empty() || tests.iter().any(|t| module == *t || module.starts_with(&format!("{t}::"))) {
            continue;
        }
        let code = code_only(text);
        let code = without_tests(&code);
        let here: Vec<&str> = module.split("::").collect();
        let edges = graph.entry(module.clone()).or_default();
        let words: Vec<&str> =
            code.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).filter(|w| w.contains("::")).collect();
        for word in words {
            let mut parts: Vec<&str> = word.split("::").filter(|p| !p.is_empty()).collect();
            let base: Vec<&str> = match parts.first().copied() {
                Some("crate") => {
                    parts.remove(0);
                    Vec::new()
                }
                Some("super") => {
                    let mut base = here.clone();
                    while parts.first() == Some(&"super") {
                        parts.remove(0);
                        base.pop();
                    }
                    base
                }
                Some("self") => {
                    parts.remove(0);
                    here.clone()
                }
                _ => continue,
            };
            let full: Vec<&str> = base.into_iter().chain(parts).collect();
            if let Some(target) = resolve(&full)
                && target != module
                && !target.starts_with(&format!("{module}::"))
                && !tests.contains(&target)
            {
                edges.insert(target);
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_owned(), 1);
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if !state.contains_key(node.as_str())
            && let Some(c) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn modules_depend_on_each_other_without_cycles() {
    let files = sources();
    let graph = dependencies(&files);
    assert!(graph.len() > 40, "the scan found the crate's modules ({} of them)", graph.len());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("module cycle: {}", cycle.join(" → "));
    }
    // The layers: domain below everything, app below every stage, and the stages in the order
    // data flows through them.
    let top = |m: &str| m.split("::").next().unwrap_or_default().to_owned();
    let uses = |from: &str, to: &str| graph.iter().any(|(m, deps)| top(m) == from && deps.iter().any(|d| top(d) == to));
    for below in ["domain", "crypto"] {
        for (m, deps) in &graph {
            if top(m) == below {
                assert!(
                    deps.iter().all(|d| top(d) == below || d == "domain" || top(d) == "domain"),
                    "{m} reaches up: {deps:?}"
                );
            }
        }
    }
    for stage in ["http", "ingest", "recovery", "worker", "ops", "cli", "outbound"] {
        assert!(!uses("app", stage), "app must not depend on the stage {stage}");
        assert!(!uses("store", stage), "store must not depend on the stage {stage}");
    }
    assert!(!uses("ingest", "recovery") && !uses("recovery", "ingest"), "ingest and recovery are separate stages");
    assert!(!uses("store", "queue"), "the store does not know the queue");
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let files = vec![
        ("a.rs".to_owned(), "use crate::b::X;".to_owned()),
        ("b.rs".to_owned(), "fn f() { crate::c::g() }".to_owned()),
        ("c.rs".to_owned(), "// crate::a is only mentioned\nuse super::a::Y;".to_owned()),
        ("lib.rs".to_owned(), String::new()),
    ];
    let cycle = find_cycle(&dependencies(&files)).expect("a → b → c → a");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4, "{cycle:?}");
}

#[test]
fn apalis_and_its_tables_are_named_only_by_the_queue_and_the_worker() {
    for (file, text) in sources() {
        if file.starts_with("queue/") || file == "worker.rs" {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            // The SQLite queue's table is `Jobs`; the word alone (a page title) is fine.
            let jobs = ["FROM Jobs", "JOIN Jobs", "UPDATE Jobs", "INTO Jobs", "TABLE Jobs"].iter().any(|sql| {
                line.match_indices(sql)
                    .any(|(i, _)| !line[i + sql.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_'))
            });
            assert!(
                !line.contains("apalis") && !jobs,
                "src/{file}:{}: names the queue's library or tables: {line}",
                n + 1
            );
        }
    }
}

#[test]
fn the_database_backend_is_private_to_the_store() {
    for (file, text) in sources() {
        let code = code_only(&text);
        if file.starts_with("store/") {
            assert!(
                !code.contains("pub enum Backend") && !code.contains("pub enum Inner"),
                "src/{file}: the backend enum is public"
            );
            continue;
        }
        for name in ["Backend::", "Inner::", "TxInner", "SqliteConnection", "PgConnection"] {
            assert!(!code.contains(name), "src/{file} reaches the store's backend ({name})");
        }
    }
}

#[test]
fn files_and_functions_stay_small() {
    for (file, text) in sources() {
        let lines = text.lines().count();
        assert!(lines <= 700, "src/{file} has {lines} lines (at most 700)");
        assert!(!text.contains("too_many_arguments"), "src/{file} allows too_many_arguments");
        if !(file.starts_with("recovery/") || file.starts_with("ingest/")) || file.ends_with("_tests.rs") {
            continue;
        }
        let code = code_only(&text);
        let code = without_tests(&code);
        let rows: Vec<&str> = code.lines().collect();
        let mut i = 0;
        while i < rows.len() {
            let row = rows[i].trim_start();
            let is_fn = [
                "fn ",
                "pub fn ",
                "async fn ",
                "pub async fn ",
                "pub(super) fn ",
                "pub(super) async fn ",
                "pub(crate) fn ",
                "pub(crate) async fn ",
            ]
            .iter()
            .any(|p| row.starts_with(p));
            if !is_fn {
                i += 1;
                continue;
            }
            let (start, mut depth, mut opened) = (i, 0i32, false);
            while i < rows.len() {
                for c in rows[i].chars() {
                    match c {
                        '{' => {
                            depth += 1;
                            opened = true;
                        }
                        '}' => depth -= 1,
                        _ => {}
                    }
                }
                if (opened && depth == 0) || (!opened && rows[i].trim_end().ends_with(';')) {
                    break;
                }
                i += 1;
            }
            let len = i - start + 1;
            assert!(len <= 80, "src/{file}:{}: a function of {len} lines (at most 80)", start + 1);
            i += 1;
        }
    }
}
