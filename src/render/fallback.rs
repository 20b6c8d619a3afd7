//! When a render fails: the admin's template falls back to the built-in one, and that to a
//! minimal embed; each fallback is counted, and the first failure of each template file is kept
//! and logged at error level (later ones at debug level).

use std::sync::Arc;

use minijinja::value::Value;
use time::OffsetDateTime;

use super::{filters, lookup, Draft, Part, Problem, Renderer};

/// Render failures since load. Holds one problem per template file, so it stays as small as the
/// template set however many events fail.
#[derive(Debug, Default)]
pub(super) struct Failures {
    /// Renders (embeds and forum post titles) that fell back.
    renders: usize,
    /// The first failure of each template file, with the action it was rendering.
    first: Vec<(Problem, String)>,
}

impl Renderer {
    /// Renders with the template in use for `action` (under `prefix`), else with the built-in one;
    /// `None` if both fail.
    pub(super) fn render_or_fall_back(
        &self,
        prefix: &str,
        action: &str,
        context: &Value,
        at: OffsetDateTime,
    ) -> Option<Part> {
        let chosen = lookup(&self.active, prefix, action);
        let problem = match self.render_compiled(chosen, context, at) {
            Ok(part) => return Some(part),
            Err(problem) => problem,
        };
        self.report(&problem, action);
        self.count_fallback();
        let builtin = lookup(&self.builtin, prefix, action);
        if Arc::ptr_eq(builtin, chosen) {
            return None;
        }
        match self.render_compiled(builtin, context, at) {
            Ok(part) => Some(part),
            Err(problem) => {
                self.report(&problem, action);
                None
            }
        }
    }

    /// How many renders fell back (to the built-in template, or to the minimal embed) since the
    /// templates were loaded, and the first failure of each template file, with its action. For
    /// `render`, which must not pass a fallback off as the admin's template.
    pub fn fallbacks(&self) -> (usize, Vec<(Problem, String)>) {
        match self.failures.lock() {
            Ok(failures) => (failures.renders, failures.first.clone()),
            Err(poisoned) => (poisoned.get_ref().renders, poisoned.get_ref().first.clone()),
        }
    }

    /// Counts a render (an embed, or a forum post's title) that fell back.
    pub(super) fn count_fallback(&self) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.renders = failures.renders.saturating_add(1);
        }
    }

    pub(super) fn report(&self, problem: &Problem, action: &str) {
        let first = self
            .failures
            .lock()
            .map(|mut failures| {
                let first = failures.first.iter().all(|(seen, _)| seen.origin != problem.origin);
                if first {
                    failures.first.push((problem.clone(), action.to_owned()));
                }
                first
            })
            .unwrap_or(true);
        if first {
            log::error!(
                "template {problem} (action {action}); using the built-in template instead. Further failures of this \
                 file are logged at debug level until the templates are reloaded"
            );
        } else {
            log::debug!("template {problem} (action {action})");
        }
    }
}

/// The last resort when no template renders: the action and who, nothing else.
pub(super) fn minimal_part(action: &str, who: &str, at: OffsetDateTime) -> Part {
    let mut draft = Draft {
        title: format!("{action} · {}", filters::escape_markdown(who)),
        description: "This event could not be rendered with its template; the relay's log says why.".into(),
        color: Some(0x95A5A6),
        timestamp: Some(at),
        ..Draft::default()
    };
    draft.clamp();
    draft.into_part()
}
