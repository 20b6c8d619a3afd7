//! What the benchmarks share: the real events of `tests/fixtures/`.

use std::path::Path;

use serde_json::Value;

/// Every event of the captures of `panels` (folder names under `tests/fixtures/`), in file order.
pub fn real_events(panels: &[&str]) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut events = Vec::new();
    for panel in panels {
        let mut files: Vec<_> = std::fs::read_dir(root.join(panel))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
            .collect();
        files.sort();
        for file in files {
            match serde_json::from_str::<Value>(&std::fs::read_to_string(file).unwrap()).unwrap() {
                Value::Array(batch) => events.extend(batch),
                event => events.push(event),
            }
        }
    }
    events
}

/// Gives an event the username `name`, at the top and in its user.
pub fn rename(event: &mut Value, name: &str) {
    if event.get("username").is_some() {
        event["username"] = Value::from(name);
    }
    if event["user"].is_object() {
        event["user"]["username"] = Value::from(name);
    }
}

/// Where `needle` stands in `body`, as byte offsets (for the benches that write names into a
/// request body; render and drain do not).
#[allow(dead_code)]
pub fn offsets(body: &[u8], needle: &str) -> Vec<usize> {
    let needle = needle.as_bytes();
    body.windows(needle.len()).enumerate().filter(|(_, window)| *window == needle).map(|(at, _)| at).collect()
}
