//! Keeps the documentation true to the code: every setting the code reads is in `.env.example`,
//! every variable of `.env.example` has its row in docs/CONFIGURATION.md (and no row is left over),
//! the messages the docs quote are the code's own words, the README keeps its two commands, and
//! links between the pages lead somewhere. Reads files only; needs nothing outside the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const CONFIGURATION: &str = "docs/CONFIGURATION.md";

/// Variables of `.env.example` that the relay does not read itself: Docker Compose reads the
/// first two (docker-compose.yml), the HTTP client the proxies, the logger `RUST_LOG`.
const READ_OUTSIDE_SRC: &[&str] =
    &["RELAY_IMAGE", "BUILD_JOBS", "HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "RUST_LOG"];

/// Upper-case words passed to a function in `src/` that are not settings (SQL, time zone names,
/// a fallback word).
const NOT_SETTINGS: &[&str] = &["BEGIN", "COMMIT", "ROLLBACK", "UTC", "GMT", "HTTP"];

/// Messages the docs quote, as (page, the code's own pieces of the message in the order the
/// quote shows them). Each piece must be in a string literal under `src/` and in the page, in
/// this order and close together; what lies between pieces is filled in at run time (a path,
/// an operating system's error).
const QUOTED: &[(&str, &[&str])] = &[
    (
        "docs/DEPLOY.md",
        &[
            " cannot be read from ",
            ". The relay's user may not read the file. In the Docker image that user is uid 65532: on the host, \
             run `sudo chown 65532:65532` on the secret file (it can keep mode 0600)",
        ],
    ),
    (
        "docs/DEPLOY.md",
        &[
            "cannot open the outbox (DATA_DIR)",
            "outbox storage error: ",
            "cannot create ",
            ". The relay's user may not write to the data folder. In the Docker image that user is uid 65532: \
             for a bind mount such as ./data:/data, run `sudo chown -R 65532:65532 ./data` on the host (a named \
             volume needs nothing)",
        ],
    ),
    (
        "docs/TEMPLATES.md",
        &["; using the built-in template instead. Further failures of this file are logged at debug level until \
           the templates are reloaded"],
    ),
    ("docs/TEMPLATES.md", &["is null for this event; guard it with "]),
    ("docs/PANELS.md", &["first 503 since start"]),
    ("docs/DELIVERY.md", &["delivered ", " events after ", " s of failures"]),
    ("docs/OPERATIONS.md", &["is paused: "]),
    ("docs/OPERATIONS.md", &["is parked ", "until ", "(another ", " s): "]),
    ("docs/OPERATIONS.md", &["destination ", " waits ", "until ", "(another ", " s): "]),
    ("docs/OPERATIONS.md", &["stopped unexpectedly (", ") and is being restarted"]),
    ("docs/OPERATIONS.md", &["keeps stopping", ": restarted ", " times in the last ", " minutes"]),
];

/// How far apart two pieces of one quoted message may be in a page, in characters.
const QUOTE_SPAN: usize = 400;

#[test]
fn every_variable_of_env_example_has_a_row_in_the_configuration_table() {
    let documented = configuration_rows();
    let missing: Vec<String> = env_example()
        .into_iter()
        .filter(|name| !documented.contains(name))
        .map(|name| {
            format!("{CONFIGURATION} has no row for {name}, which .env.example sets: add `| `{name}` | default | range | meaning |`")
        })
        .collect();
    assert!(missing.is_empty(), "\n{}\n", missing.join("\n"));
}

#[test]
fn every_row_of_the_configuration_table_is_a_variable_of_env_example() {
    let listed = env_example();
    let stale: Vec<String> = configuration_rows()
        .into_iter()
        .filter(|name| !listed.contains(name))
        .map(|name| {
            format!(
                "{CONFIGURATION} has a row for {name}, which .env.example does not list: add it there or drop the row"
            )
        })
        .collect();
    assert!(stale.is_empty(), "\n{}\n", stale.join("\n"));
}

#[test]
fn every_setting_the_code_reads_is_in_env_example() {
    let read = settings_read_in_src();
    // If the way settings are read changes shape, the scan must not go quiet.
    for name in ["WEBHOOK_SECRET", "WEBHOOK_SECRET_FILE", "DISCORD_WEBHOOK_URL", "LISTEN_ADDR", "PANELS", "REPORTS"] {
        assert!(
            read.contains_key(name),
            "tests/docs.rs no longer sees {name} read in src/: settings are read in a new way; teach \
             settings_read_in_src() what a setting's name looks like there"
        );
    }
    let listed = env_example();
    let missing: Vec<String> = read
        .iter()
        .filter(|(name, _)| !listed.contains(*name))
        .map(|(name, at)| {
            format!(
                "{at} reads the setting {name}, but .env.example does not list it: add it there (default, range, \
                 meaning) and a row to {CONFIGURATION}"
            )
        })
        .collect();
    assert!(missing.is_empty(), "\n{}\n", missing.join("\n"));
}

#[test]
fn every_variable_of_env_example_is_read_by_something() {
    let read = settings_read_in_src();
    let compose = text("docker-compose.yml");
    let unread: Vec<String> = env_example()
        .into_iter()
        .filter(|name| !read.contains_key(name) && !READ_OUTSIDE_SRC.contains(&name.as_str()))
        .map(|name| format!(".env.example lists {name}, but nothing in src/ reads it"))
        .collect();
    assert!(unread.is_empty(), "\n{}\n", unread.join("\n"));
    for name in ["RELAY_IMAGE", "BUILD_JOBS"] {
        assert!(compose.contains(&format!("${{{name}")), "docker-compose.yml no longer reads {name}");
    }
}

#[test]
fn messages_the_docs_quote_are_the_codes_own_words() {
    let code = normalise(&src_files().iter().map(|(_, text)| join_continued_strings(text)).collect::<String>());
    let mut problems = Vec::new();
    for (page, pieces) in QUOTED {
        for piece in pieces.iter().map(|piece| normalise(piece)) {
            if !code.contains(&piece) {
                problems.push(format!("{page} quotes {piece:?}, but no string in src/ says it any more"));
            }
        }
        if let Err(problem) = quoted_in_order(&normalise(&text(page)), pieces) {
            problems.push(format!("{page}: {problem}"));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_readme_is_a_front_door_with_its_two_commands() {
    let readme = text("README.md");
    let lines = readme.lines().count();
    assert!(lines <= 300, "README.md has {lines} lines; at most 300: move reference text to docs/");
    for command in ["cargo run --release", "cargo test --locked"] {
        assert!(readme.contains(&format!("```sh\n{command}\n```")), "README.md lost its command `{command}`");
    }
    assert!(
        text(".ci/run").lines().any(|line| line.trim() == "cargo test --locked"),
        ".ci/run no longer runs the README's test command `cargo test --locked`"
    );
}

#[test]
fn the_docs_give_docker_the_compose_files_grace_to_stop() {
    let compose = text("docker-compose.yml");
    let grace = compose
        .lines()
        .find_map(|line| line.trim().strip_prefix("stop_grace_period: ")?.strip_suffix('s')?.parse::<u32>().ok())
        .expect("docker-compose.yml has a stop_grace_period in seconds");
    let mut problems = Vec::new();
    for (page, text) in pages() {
        for flag in ["--stop-timeout ", "docker stop -t "] {
            for (at, _) in text.match_indices(flag) {
                let given: String = text[at + flag.len()..].chars().take_while(char::is_ascii_digit).collect();
                if given != grace.to_string() {
                    problems.push(format!("{page} says `{flag}{given}`; docker-compose.yml gives {grace} s"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn links_between_the_pages_lead_somewhere() {
    let mut problems = Vec::new();
    for (page, text) in pages() {
        let dir = Path::new(&page).parent().unwrap_or(Path::new(""));
        for target in local_links(&text) {
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() { PathBuf::from(&page) } else { normal_path(&dir.join(path)) };
            let shown = file.to_string_lossy().into_owned();
            if !root().join(&file).exists() {
                problems.push(format!("{page} links to {target}, but {shown} does not exist"));
                continue;
            }
            if !anchor.is_empty() && !anchors(&self::text(&shown)).contains(anchor) {
                problems.push(format!("{page} links to {target}, but {shown} has no heading or anchor #{anchor}"));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(path: &str) -> String {
    fs::read_to_string(root().join(path)).unwrap_or_else(|err| panic!("cannot read {path}: {err}"))
}

/// README.md and every page under docs/, by path from the repository's root.
fn pages() -> Vec<(String, String)> {
    let mut names: Vec<String> = fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    names.sort();
    names.insert(0, "README.md".to_owned());
    names.into_iter().map(|name| (name.clone(), text(&name))).collect()
}

/// The variables `.env.example` sets or shows commented out (`NAME=` or `#NAME=` at a line's start).
fn env_example() -> BTreeSet<String> {
    text(".env.example")
        .lines()
        .filter_map(|line| line.trim_start_matches('#').split_once('='))
        .map(|(name, _)| name)
        .filter(|name| is_setting_name(name))
        .map(str::to_owned)
        .collect()
}

/// The variables named in the first column of the configuration table: rows starting `| `NAME``.
fn configuration_rows() -> BTreeSet<String> {
    text(CONFIGURATION)
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|row| row.split(" | ").next())
        .flat_map(|cell| {
            cell.split(['`', ',', ' ']).filter(|name| is_setting_name(name)).map(str::to_owned).collect::<Vec<_>>()
        })
        .collect()
}

fn is_setting_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// Every upper-case name passed as the first argument of a call in `src/` outside tests
/// (`env.parse_or("DIGEST_WINDOW", …)`, `invalid("PANELS", …)`, `std::env::var("X")`), with where it
/// is read first. A name read through `value_or_file` is also read as `NAME_FILE`.
fn settings_read_in_src() -> BTreeMap<String, String> {
    let mut read = BTreeMap::new();
    for (path, text) in src_files() {
        for (open, _) in text.match_indices('(') {
            let Some(literal) = text[open + 1..].trim_start().strip_prefix('"') else { continue };
            let name = &literal[..literal.find('"').unwrap_or(0)];
            let before = text[..open].trim_end_matches(|c: char| c.is_alphanumeric() || c == '_');
            let callee = &text[before.len()..open];
            if callee.is_empty() || !is_setting_name(name) || NOT_SETTINGS.contains(&name) {
                continue;
            }
            let at = format!("{path}:{}", text[..open].lines().count());
            if callee == "value_or_file" {
                read.entry(format!("{name}_FILE")).or_insert_with(|| at.clone());
            }
            read.entry(name.to_owned()).or_insert(at);
        }
    }
    read
}

/// The `.rs` files under `src/` without their tests: `tests.rs` files are left out, and a file's
/// inline `#[cfg(test)] mod … {` is cut off with all that follows it.
fn src_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut folders = vec![root().join("src")];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).expect("src/ is readable").filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") && !path.ends_with("tests.rs") {
                let text = fs::read_to_string(&path).expect("a source file is readable");
                let shown = path.strip_prefix(root()).unwrap_or(&path).to_string_lossy().into_owned();
                files.push((shown, without_inline_tests(&text).to_owned()));
            }
        }
    }
    files.sort();
    files
}

fn without_inline_tests(text: &str) -> &str {
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]").map(|at| at + from) {
        let after = text[at + "#[cfg(test)]".len()..].trim_start();
        let first_line = after.lines().next().unwrap_or("");
        if first_line.starts_with("mod ") && first_line.trim_end().ends_with('{') {
            return &text[..at];
        }
        from = at + 1;
    }
    text
}

/// Rust source with each string continuation (`\` at a line's end, then the next line's leading
/// blanks) joined, so a message wrapped over lines reads as printed.
fn join_continued_strings(text: &str) -> String {
    let mut joined = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek() == Some(&'\n') {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
        } else {
            joined.push(c);
        }
    }
    joined
}

/// Runs of blanks as one space: pages wrap their lines anywhere.
fn normalise(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether `page` holds `pieces` in order, each within [`QUOTE_SPAN`] characters of the one before.
fn quoted_in_order(page: &str, pieces: &[&str]) -> Result<(), String> {
    let pieces: Vec<String> = pieces.iter().map(|piece| normalise(piece)).collect();
    let mut best = (0, pieces[0].clone());
    for (start, _) in page.match_indices(&pieces[0]) {
        let mut end = start + pieces[0].len();
        let mut found = 1;
        for piece in &pieces[1..] {
            let window = &page[end..page.len().min(end + QUOTE_SPAN + piece.len())];
            let Some(at) = window.find(piece.as_str()) else { break };
            end += at + piece.len();
            found += 1;
        }
        if found == pieces.len() {
            return Ok(());
        }
        if found > best.0 {
            best = (found, pieces[found].clone());
        }
    }
    Err(match best {
        (0, first) => format!("no longer quotes {first:?}, which the code says"),
        (n, next) => format!("quotes {:?} but not {next:?} after it, as the code says it", pieces[n - 1]),
    })
}

/// Targets of Markdown links that stay in the repository (not `http…`), outside code blocks.
fn local_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for (at, _) in line.match_indices("](") {
            let target = &line[at + 2..];
            let target = &target[..target.find(')').unwrap_or(target.len())];
            if !target.contains("://") && !target.starts_with("mailto:") {
                links.push(target.to_owned());
            }
        }
    }
    links
}

/// `docs/../README.md` as `README.md`.
fn normal_path(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                normal.pop();
            }
            std::path::Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

/// The anchors a page offers: its headings as GitHub names them (lower case, punctuation
/// dropped, spaces as `-`) and explicit `<a id="…">`.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            let heading = line.trim_start_matches('#').trim();
            let slug: String = heading
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
                .map(|c| if c == ' ' { '-' } else { c })
                .collect();
            anchors.insert(slug);
        }
        for (at, _) in line.match_indices("<a id=\"") {
            let id = &line[at + 7..];
            anchors.insert(id[..id.find('"').unwrap_or(0)].to_owned());
        }
    }
    anchors
}
