//! Imports run one way (docs/ARCHITECTURE.md, "The direction of imports"): reads every source file
//! under `src/`, collects the `crate::…` and `super::…` paths outside `#[cfg(test)]` items and
//! test files, and fails naming the file and the import that runs back up a layer, or that closes
//! a cycle between modules or between files. Also fails naming each source file over 400 lines,
//! its tests aside.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer: a module may import its own layer and the ones below, never a
/// higher one. Keep in step with docs/ARCHITECTURE.md and the layout map in src/lib.rs.
const LAYERS: &[(&str, u8)] = &[
    // The vocabulary every stage shares, and the metrics they count in.
    ("event", 0),
    ("destination", 0),
    ("discord", 0),
    ("secret", 0),
    ("metrics", 0),
    // Pure rendering, and the only module that speaks SQL.
    ("outbox", 1),
    ("render", 1),
    // Which destinations get what, the panel API client, delivery to Discord.
    ("routing", 2),
    ("panel", 2),
    ("deliver", 2),
    // What makes events: the panel's webhooks, the Discord application, the relay's own producers.
    ("ingest", 3),
    ("bot", 3),
    ("reports", 3),
    ("nodes", 3),
    // Wiring and settings from the environment.
    ("startup", 4),
    ("config", 4),
    // The commands.
    ("cli", 5),
];

/// A module: its path below the crate root (`["deliver", "worker"]`).
type Module = Vec<String>;

#[test]
fn imports_run_one_way_and_close_no_cycle() {
    let sources = read_sources();
    let problems = check(&sources);
    assert!(problems.is_empty(), "imports that break the direction:\n{}", problems.join("\n"));
}

#[test]
fn the_check_names_an_upward_import_and_a_cycle() {
    let sources = vec![
        ("routing/mod.rs".to_owned(), "use crate::reports::ReportKind;\n".to_owned()),
        ("reports/mod.rs".to_owned(), "use crate::routing::{self, Router};\n".to_owned()),
        ("deliver/a.rs".to_owned(), "use super::b::B;\n#[cfg(test)]\nmod tests { use crate::cli; }\n".to_owned()),
        (
            "deliver/b.rs".to_owned(),
            "// crate::cli in a comment\nfn f() { super::a::A::new(\"crate::cli\"); }\n".to_owned(),
        ),
        ("deliver/mod.rs".to_owned(), "pub(crate) mod a;\n".to_owned()),
        ("cli/mod.rs".to_owned(), String::new()),
    ];
    let problems = check(&sources);
    assert!(
        problems.iter().any(|p| p.contains("src/routing/mod.rs") && p.contains("crate::reports::ReportKind")),
        "{problems:#?}"
    );
    assert!(problems.iter().any(|p| p.contains("modules") && p.contains("reports") && p.contains("routing")));
    assert!(problems.iter().any(|p| p.contains("deliver/a.rs") && p.contains("deliver/b.rs")), "{problems:#?}");
    assert!(!problems.iter().any(|p| p.contains("crate::cli")), "test code, comments and strings count: {problems:#?}");
    // The upward import, and the cycle it closes as files and as modules; the files cycle of deliver.
    assert_eq!(problems.len(), 4, "{problems:#?}");
}

/// The most lines a source file may have, its tests aside; a longer one is split where a reader
/// would look for the thing, not only to meet the number.
const MAX_LINES: usize = 400;

#[test]
fn no_source_file_is_over_400_lines() {
    let sources = read_sources();
    let long = too_long(&sources);
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines (tests aside); split where a reader would look:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_length_check_names_a_long_file_and_leaves_its_tests_aside() {
    let lines = |n: usize| "fn f() {}\n".repeat(n);
    let sources = vec![
        ("deliver/long.rs".to_owned(), lines(MAX_LINES + 1)),
        ("deliver/full.rs".to_owned(), lines(MAX_LINES)),
        (
            "deliver/tested.rs".to_owned(),
            format!("{}#[cfg(test)]\nmod tests {{\n{}}}\n", lines(MAX_LINES - 2), lines(50)),
        ),
        ("deliver/mod.rs".to_owned(), format!("#[cfg(test)]\nmod tests;\n{}", lines(MAX_LINES))),
        ("deliver/tests.rs".to_owned(), lines(MAX_LINES * 2)),
    ];
    let long = too_long(&sources);
    assert_eq!(long.len(), 2, "{long:#?}");
    assert!(long[0].contains("src/deliver/long.rs") && long[0].contains("401"), "{long:#?}");
    assert!(long[1].contains("src/deliver/mod.rs"), "a `mod tests;` line does not end the count: {long:#?}");
}

/// The files of `sources` (path below `src/`, text) over [`MAX_LINES`], with their lengths.
fn too_long(sources: &[(String, String)]) -> Vec<String> {
    sources
        .iter()
        .filter(|(path, _)| !is_test_file(path))
        .map(|(path, text)| (path, lines_outside_tests(text)))
        .filter(|(_, lines)| *lines > MAX_LINES)
        .map(|(path, lines)| format!("src/{path}: {lines} lines"))
        .collect()
}

/// The lines of `text` up to its inline `#[cfg(test)] mod … {` block (the tests at the end of a
/// file), or all of them. A `#[cfg(test)] mod tests;` declaring a test file does not end the count.
fn lines_outside_tests(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let opens_tests = |pair: &[&str]| {
        pair[0].trim() == "#[cfg(test)]" && pair[1].contains("mod ") && pair[1].trim_end().ends_with('{')
    };
    lines.windows(2).position(opens_tests).unwrap_or(lines.len())
}

/// Every source file under `src/` that is not a test file: its path below `src/`, and its text.
fn read_sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&src, &mut files);
    let sources: Vec<(String, String)> = files
        .iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).unwrap().to_string_lossy().replace('\\', "/");
            (rel, std::fs::read_to_string(path).unwrap())
        })
        .collect();
    assert!(sources.len() > 20, "found only {} source files under {}", sources.len(), src.display());
    sources
}

/// Every `.rs` file below `dir` that is not a test file.
fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") && !is_test_file(&path.to_string_lossy()) {
            files.push(path);
        }
    }
}

fn is_test_file(path: &str) -> bool {
    let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
    name == "tests.rs" || name == "test.rs" || name.ends_with("_tests.rs") || name.ends_with("_test.rs")
}

/// The problems of `sources` (path below `src/`, text): upward imports and cycles.
fn check(sources: &[(String, String)]) -> Vec<String> {
    let modules: BTreeMap<Module, &str> = sources
        .iter()
        .filter(|(path, _)| !is_test_file(path))
        .map(|(path, _)| (module_of(path), path.as_str()))
        .filter(|(module, _)| !module.is_empty())
        .collect();
    let layer = |module: &Module| LAYERS.iter().find(|(name, _)| *name == module[0]).map(|(_, layer)| *layer);
    let mut problems = Vec::new();
    let mut file_edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, path) in &modules {
        let Some(from) = layer(module) else {
            problems.push(format!(
                "src/{path}: module `{}` has no layer; add it to LAYERS in tests/architecture.rs",
                module[0]
            ));
            continue;
        };
        let text = &sources.iter().find(|(p, _)| p == path).unwrap().1;
        let imports: BTreeSet<String> = paths(&code_outside_tests(text)).into_iter().collect();
        for import in imports {
            let Some(target) = resolve(module, &import, &modules) else { continue };
            if target == *module {
                continue;
            }
            if let Some(to) = layer(&target).filter(|to| *to > from) {
                problems.push(format!(
                    "src/{path}: `{import}` runs back up: `{}` (layer {from}) may not import `{}` (layer {to})",
                    module[0], target[0]
                ));
            }
            file_edges.entry(module.clone()).or_default().insert(target);
        }
    }
    for cycle in cycles(&file_edges) {
        let files: Vec<String> = cycle.iter().map(|m| format!("src/{}", modules[m])).collect();
        problems.push(format!("files import each other: {}", files.join(" <-> ")));
    }
    let mut top: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, targets) in &file_edges {
        for to in targets.iter().filter(|to| to[0] != from[0]) {
            top.entry(vec![from[0].clone()]).or_default().insert(vec![to[0].clone()]);
        }
    }
    for cycle in cycles(&top) {
        let names: Vec<&str> = cycle.iter().map(|m| m[0].as_str()).collect();
        problems.push(format!("modules import each other: {}", names.join(" <-> ")));
    }
    problems
}

/// `deliver/worker.rs` → `deliver::worker`; `deliver/mod.rs` → `deliver`; the crate roots → empty.
fn module_of(path: &str) -> Module {
    let mut parts: Vec<String> = path.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|last| last == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// The module file that `import` (a path seen in `module`) names: the longest prefix of it that is
/// a module with a file.
fn resolve(module: &Module, import: &str, modules: &BTreeMap<Module, &str>) -> Option<Module> {
    let mut segments: Vec<&str> = import.split("::").collect();
    let mut base: Module = match segments[0] {
        "crate" => {
            segments.remove(0);
            Vec::new()
        }
        _ => {
            let mut base = module.clone();
            while segments.first() == Some(&"super") {
                base.pop();
                segments.remove(0);
            }
            if segments.first() == Some(&"self") {
                segments.remove(0);
            }
            base
        }
    };
    let mut best = modules.contains_key(&base).then(|| base.clone());
    for segment in segments {
        base.push(segment.to_owned());
        if modules.contains_key(&base) {
            best = Some(base.clone());
        }
    }
    best
}

/// The text with comments, string and char literals blanked and `#[cfg(test)]` items removed.
fn code_outside_tests(text: &str) -> String {
    let code = blank_comments_and_literals(text);
    let mut kept = String::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        kept.push_str(&rest[..at]);
        rest = &rest[at + "#[cfg(test)]".len()..];
        let semicolon = rest.find(';');
        let brace = rest.find('{');
        let end = match (semicolon, brace) {
            (Some(s), Some(b)) if s < b => s + 1,
            (Some(s), None) => s + 1,
            (_, Some(b)) => b + matching_brace(&rest[b..]),
            (None, None) => rest.len(),
        };
        rest = &rest[end..];
    }
    kept.push_str(rest);
    kept
}

/// The length of the block that `text` (starting with `{`) opens, its closing brace included.
fn matching_brace(text: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// Replaces comments and the contents of string and char literals with spaces, so a path in a doc
/// comment or a message is not an import.
fn blank_comments_and_literals(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if let Some(end) = raw_string_end(&chars, i) {
            out.push_str("\"\"");
            i = end;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A char literal ('x', '\n', '\u{..}'); a lifetime ('a) has no closing quote.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Where the raw string (`r"…"`, `r#"…"#`, `br"…"`) starting at `i` ends, if one starts there.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    if i > 0 && ident(chars[i - 1]) {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|c| **c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && chars[j + 1..].iter().take(hashes).filter(|c| **c == '#').count() == hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

/// Every `crate::…`, `super::…` and `self::…` path in `code`, use-tree groups expanded
/// (`crate::a::{b, c::d}` gives `crate::a::b` and `crate::a::c::d`).
fn paths(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == ':');
        let word: String = chars[i..].iter().take_while(|c| ident(**c)).collect();
        if starts_word && ["crate", "super", "self"].contains(&word.as_str()) && at(&chars, i + word.len(), "::") {
            let (end, trees) = tree(&chars, i);
            found.extend(trees);
            i = end.max(i + 1);
        } else {
            i += word.len().max(1);
        }
    }
    found
}

/// Whether `chars` has `text` at `i`.
fn at(chars: &[char], i: usize, text: &str) -> bool {
    text.chars().enumerate().all(|(k, c)| chars.get(i + k) == Some(&c))
}

/// The use tree starting at `i`: where it ends and the paths it names.
fn tree(chars: &[char], mut i: usize) -> (usize, Vec<String>) {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    let mut prefix: Vec<String> = Vec::new();
    loop {
        skip_space(&mut i);
        if chars.get(i) == Some(&'{') {
            i += 1;
            let mut all = Vec::new();
            loop {
                skip_space(&mut i);
                match chars.get(i) {
                    None => return (i, all),
                    Some('}') => return (i + 1, all),
                    Some(',') => i += 1,
                    Some(_) => {
                        let (end, inner) = tree(chars, i);
                        let joined = |p: &String| {
                            let tail = p.strip_suffix("::self").unwrap_or(p);
                            if tail == "self" {
                                prefix.join("::")
                            } else {
                                format!("{}::{tail}", prefix.join("::"))
                            }
                        };
                        all.extend(inner.iter().map(joined));
                        i = if end > i { end } else { i + 1 };
                    }
                }
            }
        }
        let word: String = chars[i.min(chars.len())..].iter().take_while(|c| ident(**c) || **c == '*').collect();
        if word.is_empty() {
            return (i, vec![prefix.join("::")].into_iter().filter(|p| !p.is_empty()).collect());
        }
        prefix.push(word.clone());
        i += word.chars().count();
        skip_space(&mut i);
        if !at(chars, i, "::") {
            return (i, vec![prefix.join("::")]);
        }
        i += 2;
    }
}

/// The strongly connected components of more than one module (Tarjan), each sorted.
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Search<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        found: Vec<Vec<Module>>,
    }
    impl Search<'_> {
        fn visit(&mut self, v: &Module) {
            let n = self.index.len();
            self.index.insert(v.clone(), n);
            self.low.insert(v.clone(), n);
            self.stack.push(v.clone());
            for w in self.graph.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v.clone(), low);
                } else if self.stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v.clone(), low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    let done = w == *v;
                    component.push(w);
                    if done {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut search =
        Search { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in graph.keys() {
        if !search.index.contains_key(v) {
            search.visit(v);
        }
    }
    search.found
}
