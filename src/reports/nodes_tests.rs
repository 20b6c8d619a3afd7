//! The nodes section from outages stored as node watch stores them: counted within the period,
//! open ones up to its end, a panel with outages and no events in a part of its own, every
//! language, and no section when no node was down.

use std::sync::Arc;

use super::tests::at;
use super::*;
use crate::outbox::{OutageRecord, Outbox};
use crate::render::{Lang, Part, Templates};

const HOUR_MS: i64 = 3_600_000;

fn nodes_field(part: &Part, lang: Lang) -> Option<String> {
    let name = match lang {
        Lang::En => "Nodes down",
        Lang::Ru => "Сбои узлов",
        Lang::Fa => "قطعی نودها",
        Lang::Zh => "节点中断",
    };
    part.embed.fields.iter().find(|field| field.name.contains(name)).map(|field| field.value.clone())
}

async fn store(outbox: &Outbox, panel: Option<&str>, id: i64, name: &str, from: i64, to: Option<i64>) {
    let outage = OutageRecord { node_id: id, name: name.into(), started_ms: from, ended_ms: to };
    outbox.store_watch(panel.map(str::to_owned), "{}".into(), Vec::new(), vec![outage], Vec::new()).await.unwrap();
}

#[tokio::test]
async fn the_nodes_section_counts_outages_and_minutes_down_within_the_period() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let period = Period { start: at("2026-12-01T00:00:00Z"), end: at("2026-12-02T00:00:00Z") };
    let (from, to) = (period.start.as_millisecond(), period.end.as_millisecond());
    // de-1: began an hour before the period, over 30 min into it; down again for the last 2 h,
    // still open.
    store(&outbox, Some("eu"), 1, "de-1", from - HOUR_MS, Some(from + HOUR_MS / 2)).await;
    store(&outbox, Some("eu"), 1, "de-1", to - 2 * HOUR_MS, None).await;
    // Before the period: not counted.
    store(&outbox, Some("eu"), 2, "nl-2", from - 3 * HOUR_MS, Some(from - 2 * HOUR_MS)).await;
    // A node deleted, and a new one given its id (Marzban on SQLite): two nodes, not one.
    store(&outbox, Some("eu"), 3, "old-3", from + HOUR_MS, Some(from + 2 * HOUR_MS)).await;
    store(&outbox, Some("eu"), 3, "new-3", from + 3 * HOUR_MS, Some(from + 3 * HOUR_MS + 60_000)).await;
    // us sent no event in the period: a part of its own; its outage ended after the period.
    store(&outbox, Some("us"), 5, "ny-5", from + HOUR_MS, Some(to + HOUR_MS)).await;

    let report = Report::read(&outbox, "daily", period).await.unwrap();
    let panels: Vec<Option<&str>> = report.parts.iter().map(|part| part.panel.as_deref()).collect();
    assert_eq!(panels, [Some("eu"), Some("us")]);
    let eu = &report.parts[0].nodes;
    let shown: Vec<(&str, i64, i64, bool)> =
        eu.iter().map(|node| (node.name.as_str(), node.outages, node.down, node.open)).collect();
    assert_eq!(shown, [("de-1", 2, 9_000, true), ("old-3", 1, 3_600, false), ("new-3", 1, 60, false)]);
    let us = &report.parts[1].nodes;
    assert_eq!((us[0].outages, us[0].down, us[0].open), (1, 23 * 3_600, true), "counted up to the end");

    let templates = Templates::load(dir.path().join("none"), Lang::En).0;
    let part = report.rows("default", &templates.current(), 0).remove(0);
    let part: Part = serde_json::from_str(&part.part).unwrap();
    let field = nodes_field(&part, Lang::En).unwrap();
    assert_eq!(field.lines().next().unwrap(), "🔴 de-1: 2 outages, down 2h 30m (still down)", "{field}");
    for lang in [Lang::Ru, Lang::Fa, Lang::Zh] {
        let renderer = Arc::new(Templates::load(dir.path().join("none"), lang).0).current();
        let shown = nodes_field(&renderer.render_report(&report.parts[1]), lang);
        assert!(shown.as_ref().is_some_and(|value| value.contains("ny-5")), "{lang:?}: {shown:?}");
    }
}

#[tokio::test]
async fn no_nodes_section_when_no_node_was_down() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(dir.path()).unwrap();
    let period = Period { start: at("2026-12-01T00:00:00Z"), end: at("2026-12-02T00:00:00Z") };
    store(&outbox, None, 1, "a", period.start.as_millisecond() - 2 * HOUR_MS, Some(period.start.as_millisecond()))
        .await;
    let report = Report::read(&outbox, "daily", period).await.unwrap();
    assert_eq!(report.parts.len(), 1);
    assert!(report.parts[0].nodes.is_empty());
    let renderer = Templates::load(dir.path().join("none"), Lang::En).0.current();
    assert_eq!(nodes_field(&renderer.render_report(&report.parts[0]), Lang::En), None, "the section is left out");
}

#[test]
fn many_nodes_down_are_listed_as_far_as_the_field_holds_and_counted() {
    let outage = |i: i64| crate::outbox::PastOutage {
        panel: None,
        node_id: i,
        name: format!("{}{i}", "ü".repeat(100)),
        started_ms: i,
        ended_ms: None,
    };
    let outages: Vec<_> = (0..1000).map(outage).collect();
    let (nodes, more) = super::nodes::node_outages(&outages, "", 0, 86_400_000);
    assert!(!nodes.is_empty() && nodes.len() <= NODES_SHOWN);
    assert_eq!(nodes.len() as i64 + more, 1000);
    assert!(nodes[0].down >= nodes[nodes.len() - 1].down, "the longest first");
}
