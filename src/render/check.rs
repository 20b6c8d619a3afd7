//! `check` for a template set: every template in use rendered, with no fallback, against the
//! events it can meet (the samples, a stressed copy, and the edge events the panels really send),
//! every result held to Discord's limits.

use minijinja::value::Value;
use time::OffsetDateTime;

use super::{
    edges, limits, report, samples, Color, Compiled, LeafRef, Problem, Renderer, DIGEST_PREFIX, REPORT_TEMPLATE,
};

/// A problem and the events it showed on.
struct Found {
    problem: Problem,
    /// The first event it showed on.
    event: String,
    /// How many other events it showed on.
    more: usize,
}

impl Renderer {
    /// Renders every template in use against the sample event of its action, a stressed copy
    /// (long, multi-byte, right-to-left text) and every edge event of its action (see [`edges`];
    /// `default` and actions without edge events of their own against all of them), with no
    /// fallback, and checks each result against Discord's limits. Digest templates are rendered
    /// against sample and edge digests. Each problem is reported once, naming the first event it
    /// showed on. Empty when all is well.
    pub fn check(&self) -> Vec<Problem> {
        let now = OffsetDateTime::now_utc();
        let edge_events = edges::events(now);
        let mut found: Vec<Found> = Vec::new();
        let mut note = |problem: Problem, event: &str| match found.iter_mut().find(|f| f.problem == problem) {
            Some(known) if known.event != event => known.more += 1,
            Some(_) => {}
            None => found.push(Found { problem, event: event.to_owned(), more: 0 }),
        };
        for name in self.names() {
            let template = &self.active[name];
            let contexts = match name.strip_prefix(DIGEST_PREFIX) {
                Some(action) => digest_contexts(action, now),
                None if name == REPORT_TEMPLATE => report_contexts(now),
                None => match self.event_contexts(name, now, &edge_events) {
                    Ok(contexts) => contexts,
                    Err(message) => {
                        note(Problem { origin: template.origin.clone(), line: None, message }, "");
                        continue;
                    }
                },
            };
            for (event, context) in &contexts {
                match self.render_compiled(template, context, now) {
                    Ok(part) => {
                        for message in limits::violations(part.content.as_deref(), &part.embed) {
                            note(Problem { origin: template.origin.clone(), line: None, message }, event);
                        }
                    }
                    Err(problem) => {
                        // Not only the first error: every leaf that fails, each once.
                        for problem in std::iter::once(problem).chain(self.leaf_problems(template, context)) {
                            note(problem, event);
                        }
                    }
                }
            }
        }
        let mut problems: Vec<Problem> = found.into_iter().map(Found::into_problem).collect();
        problems.extend(self.check_titles());
        problems
    }

    /// The render error of every leaf of `template` for `context` (not only the first, as
    /// [`Self::render_compiled`] stops at), in the order of the file.
    fn leaf_problems(&self, template: &Compiled, context: &Value) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut render = |leaf: &LeafRef| {
            if let Err(problem) = self.render_leaf(template, leaf, context) {
                problems.push(problem);
            }
        };
        let _ = template.shape.try_map((), (), |_, leaf| {
            leaf.iter().for_each(&mut render);
            Ok::<_, Problem>(())
        });
        if let Some(Color::Template(leaf)) = &template.shape.color {
            render(leaf);
        }
        problems
    }
}

impl Found {
    fn into_problem(self) -> Problem {
        let Found { mut problem, event, more } = self;
        if !event.is_empty() {
            let others = match more {
                0 => String::new(),
                1 => " and 1 more".to_owned(),
                n => format!(" and {n} more"),
            };
            problem.message = format!("{} [on {event}{others}]", problem.message);
        }
        problem
    }
}

/// The sample reports (daily and weekly, several panels, long user lists) the report template is
/// checked against.
fn report_contexts(now: OffsetDateTime) -> Vec<(String, Value)> {
    ["daily", "weekly"]
        .into_iter()
        .flat_map(|kind| report::samples(kind, now.unix_timestamp()).into_iter().flatten())
        .map(|context| {
            (
                format!("a sample {} report of panel {:?}", context.report, context.panel),
                Value::from_serialize(&context),
            )
        })
        .collect()
}

impl Renderer {
    /// The events the template of `action` is checked against, each with what it is: the sample
    /// (plain, and stressed with long text) seen after an earlier state that differs in every
    /// field, so that every line of `changes` is rendered, and the edge events as first seen.
    fn event_contexts(
        &self,
        action: &str,
        now: OffsetDateTime,
        edge_events: &[edges::Edge],
    ) -> Result<Vec<(String, Value)>, String> {
        let sample = samples::event_for(action, now)?;
        let stressed = samples::stressed(&sample);
        let (earlier, stressed_earlier) = (samples::earlier_state(&sample), samples::earlier_state(&stressed));
        let mut contexts = vec![
            (
                format!("the sample {} event, stressed with long multi-byte text", sample.action),
                self.context(&stressed, stressed_earlier.as_ref()),
            ),
            (format!("the sample {} event", sample.action), self.context(&sample, earlier.as_ref())),
        ];
        let own: Vec<&edges::Edge> = edge_events.iter().filter(|edge| edge.event.action.as_str() == action).collect();
        if own.is_empty() {
            // `default`, or an action no panel is known to send: whatever any event carries.
            for edge in edge_events {
                let mut event = edge.event.clone();
                event.action = sample.action.clone();
                contexts.push((format!("edge event {} as {}", edge.what, sample.action), self.context(&event, None)));
            }
        } else {
            contexts.extend(
                own.into_iter().map(|edge| (format!("edge event {}", edge.what), self.context(&edge.event, None))),
            );
        }
        Ok(contexts)
    }
}

/// The digests the digest template of `action` is checked against, each with what it is.
fn digest_contexts(action: &str, now: OffsetDateTime) -> Vec<(String, Value)> {
    let action = if action == super::DEFAULT_TEMPLATE { samples::UNKNOWN_ACTION } else { action };
    let sampled = samples::digests(action, now).into_iter().map(|digest| {
        let what = format!("the sample digest part {}/{} of {} users", digest.part, digest.parts, digest.total);
        (what, Value::from_serialize(&digest))
    });
    let edge = edges::digests(action, now).into_iter().map(|(what, digest)| (what, Value::from_serialize(&digest)));
    sampled.chain(edge).collect()
}
