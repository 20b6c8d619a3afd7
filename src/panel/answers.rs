//! The panel's answers, read as hostile input: any JSON shape is survived, unknown fields are
//! ignored (PasarGuard's node answer carries the node's `api_key`: it is never read), every text is
//! cut to a documented length and stripped of control characters, and at most [`MAX_NODES`] nodes
//! are kept.

use serde_json::Value;

use super::Family;
use crate::discord::redact;

/// The most nodes read from one panel; more are ignored (and logged by the watcher). Real panels
/// have a few dozen.
pub const MAX_NODES: usize = 1000;

/// A node's name is cut to this many characters (Marzban allows 256).
pub const NAME_MAX_CHARS: usize = 100;

/// A node's address is cut to this many characters.
pub const ADDRESS_MAX_CHARS: usize = 128;

/// The panel's message about a node (why it is not connected) is cut to this many characters.
pub const MESSAGE_MAX_CHARS: usize = 300;

/// A node's connection as the panel reports it, in the relay's words.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    /// Marzban's and PasarGuard's `connected`, Marzneshin's `healthy`.
    Connected,
    /// `connecting`: the panel is (re)trying.
    Connecting,
    /// `error` (Marzban, PasarGuard), `unhealthy` (Marzneshin).
    Error,
    /// `disabled`: an admin turned the node off.
    Disabled,
    /// PasarGuard's `limited`: the node used up its data limit, the panel stopped it.
    Limited,
    /// Anything else (cut to 32 characters): not connected.
    Other(String),
}

impl NodeStatus {
    fn parse(value: &str) -> Self {
        match value {
            "connected" | "healthy" => Self::Connected,
            "connecting" => Self::Connecting,
            "error" | "unhealthy" => Self::Error,
            "disabled" => Self::Disabled,
            "limited" => Self::Limited,
            other => Self::Other(clean(other, 32)),
        }
    }

    /// The status word templates see.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Connected => "connected",
            Self::Connecting => "connecting",
            Self::Error => "error",
            Self::Disabled => "disabled",
            Self::Limited => "limited",
            Self::Other(other) => other,
        }
    }

    /// Turned off on purpose (by an admin, or by the panel for its data limit): not an outage.
    pub fn is_off(&self) -> bool {
        matches!(self, Self::Disabled | Self::Limited)
    }
}

/// One node as the panel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: i64,
    pub name: String,
    pub address: String,
    pub port: Option<u16>,
    pub status: NodeStatus,
    /// Why it is not connected (`[Errno 111] Connection refused`), redacted and cut.
    pub message: Option<String>,
}

/// The panel's core, where the family has one on the panel (Marzban).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreStatus {
    pub started: bool,
    pub version: Option<String>,
}

/// The nodes of one page of `GET /api/nodes`, and whether more pages follow; `Err` when the shape
/// is none of the families'. Also tells which family's shape it was.
pub fn nodes_page(answer: &Value) -> Result<(Vec<Node>, Family, Option<u64>), String> {
    let (items, family, total) = match answer {
        Value::Array(items) => (items, Family::Marzban, None),
        Value::Object(map) => match (map.get("nodes"), map.get("items")) {
            (Some(Value::Array(items)), _) => (items, Family::PasarGuard, map.get("total").and_then(Value::as_u64)),
            (_, Some(Value::Array(items))) => (items, Family::Marzneshin, map.get("total").and_then(Value::as_u64)),
            _ => return Err("an object without a list of nodes".to_owned()),
        },
        _ => return Err("neither a list nor an object".to_owned()),
    };
    Ok((items.iter().take(MAX_NODES).filter_map(node).collect(), family, total))
}

/// One node of the list; `None` for an element without an id or a status.
fn node(value: &Value) -> Option<Node> {
    let map = value.as_object()?;
    let id = map.get("id")?.as_i64()?;
    let status = NodeStatus::parse(map.get("status")?.as_str()?);
    let text = |key: &str, max: usize| map.get(key).and_then(Value::as_str).map(|s| clean(s, max));
    Some(Node {
        id,
        name: text("name", NAME_MAX_CHARS).filter(|name| !name.is_empty()).unwrap_or_else(|| format!("node {id}")),
        address: text("address", ADDRESS_MAX_CHARS).unwrap_or_default(),
        port: map.get("port").and_then(Value::as_u64).and_then(|port| u16::try_from(port).ok()),
        status,
        message: text("message", MESSAGE_MAX_CHARS).map(|m| redact(&m, None)).filter(|m| !m.trim().is_empty()),
    })
}

/// Marzban's `GET /api/core`: `{version, started, logs_websocket}`.
pub fn core_status(answer: &Value) -> Result<CoreStatus, String> {
    let started = answer.get("started").and_then(Value::as_bool).ok_or("no `started` in the core's status")?;
    let version = answer.get("version").and_then(Value::as_str).map(|v| clean(v, 32));
    Ok(CoreStatus { started, version })
}

/// The login's `access_token`.
pub fn access_token(answer: &Value) -> Option<String> {
    answer.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty() && t.len() <= 8192).map(str::to_owned)
}

/// `text` without control characters, cut to `max` characters. Markdown, mentions and bidi
/// controls stay: templates escape and isolate them like usernames.
fn clean(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_each_familys_node_list() {
        let marzban = json!([{"id": 1, "name": "eu-1", "address": "10.0.0.1", "port": 62050, "api_port": 62051,
            "usage_coefficient": 1.0, "xray_version": null, "status": "error",
            "message": "[Errno 111] Connection refused"}]);
        let (nodes, family, _) = nodes_page(&marzban).unwrap();
        assert_eq!(family, Family::Marzban);
        assert_eq!(nodes[0].status, NodeStatus::Error);
        assert_eq!(nodes[0].message.as_deref(), Some("[Errno 111] Connection refused"));

        let pasarguard = json!({"nodes": [{"id": 2, "name": "de", "address": "de.example", "status": "limited",
            "api_key": "6f1c2b7e-0a4d-4c1e-9d1f-3a5b7c9e1f20", "message": null}], "total": 1});
        let (nodes, family, total) = nodes_page(&pasarguard).unwrap();
        assert_eq!((family, total), (Family::PasarGuard, Some(1)));
        assert!(nodes[0].status.is_off());
        assert!(!format!("{nodes:?}").contains("6f1c2b7e"), "the node's api_key is never read");

        let marzneshin = json!({"items": [{"id": 3, "name": "fi", "address": "fi.example", "port": 53042,
            "status": "healthy"}], "total": 1, "page": 1, "size": 100, "pages": 1});
        let (nodes, family, _) = nodes_page(&marzneshin).unwrap();
        assert_eq!((family, &nodes[0].status), (Family::Marzneshin, &NodeStatus::Connected));
    }

    #[test]
    fn survives_hostile_answers() {
        assert!(nodes_page(&json!("nodes")).is_err());
        assert!(nodes_page(&json!({"nodes": 5})).is_err());
        let odd = json!([
            {"id": "1", "status": "connected"},
            {"id": 2},
            {"id": 3, "status": 7},
            {"id": 4, "status": "on fire", "name": "x".repeat(5000), "port": 99999, "message": "\u{0}\u{7}"},
        ]);
        let (nodes, _, _) = nodes_page(&odd).unwrap();
        assert_eq!(nodes.len(), 1, "elements without an id or status are skipped");
        assert_eq!(nodes[0].name.chars().count(), NAME_MAX_CHARS);
        assert_eq!((nodes[0].port, &nodes[0].message), (None, &None));
        assert_eq!(nodes[0].status, NodeStatus::Other("on fire".into()));
        let many: Vec<Value> = (0..5000).map(|id| json!({"id": id, "status": "connected"})).collect();
        assert_eq!(nodes_page(&Value::Array(many)).unwrap().0.len(), MAX_NODES);
    }

    #[test]
    fn a_message_with_a_token_is_redacted() {
        let answer = json!([{"id": 1, "status": "error",
            "message": "GET https://x/api?key=eyJhbGciOiJIUzI1NiJ9abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOP failed"}]);
        let message = nodes_page(&answer).unwrap().0[0].message.clone().unwrap();
        assert!(!message.contains("eyJhbGciOiJIUzI1NiJ9abcdef"), "{message}");
    }
}
