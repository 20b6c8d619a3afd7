//! What went wrong in a template, said so that its author can fix it: a [`Problem`] names the
//! file and line; minijinja's errors are given as their kind and detail; an undefined variable
//! comes with the nearest valid name at its level (or why it is undefined).

use std::fmt;

use minijinja::value::Value;

use super::{Compiled, LeafRef, Renderer};

/// A problem with a template: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file (or `built-in <lang>/<name>`).
    pub origin: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.origin, line, self.message),
            None => write!(f, "{}: {}", self.origin, self.message),
        }
    }
}

impl Renderer {
    /// What is undefined in the leaf template `name` for `context`, with the nearest valid name at
    /// that level: "`user_name` is not defined; did you mean `username`?". `None` if it cannot tell.
    pub(super) fn undefined_hint(&self, name: &str, context: &Value) -> Option<String> {
        let template = self.env.get_template(name).ok()?;
        let mut paths: Vec<String> = template.undeclared_variables(true).into_iter().collect();
        paths.sort();
        for path in paths {
            let mut parent = context.clone();
            for (depth, segment) in path.split('.').enumerate() {
                if depth == 0 && self.env.globals().any(|(global, _)| global == segment) {
                    break;
                }
                let value = parent.get_attr(segment).unwrap_or(Value::UNDEFINED);
                if !value.is_undefined() {
                    parent = value;
                    continue;
                }
                let looked_up = path.split('.').take(depth + 1).collect::<Vec<_>>().join(".");
                if parent.is_none() {
                    let owner = path.split('.').take(depth).collect::<Vec<_>>().join(".");
                    return Some(format!(
                        "`{looked_up}` is undefined because `{owner}` is null for this event; guard it with \
                         {{% if {owner} %}}…{{% endif %}} or write `{path} | default('…')`"
                    ));
                }
                let keys: Vec<String> = parent
                    .try_iter()
                    .map(|keys| keys.filter_map(|key| key.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                let nearest = keys.iter().min_by_key(|key| edit_distance(segment, key));
                return Some(match nearest {
                    Some(nearest) => {
                        let suggested = path.split('.').take(depth).chain([nearest.as_str()]).collect::<Vec<_>>();
                        format!("`{looked_up}` is not defined; did you mean `{}`?", suggested.join("."))
                    }
                    None => format!("`{looked_up}` is not defined"),
                });
            }
        }
        None
    }
}

/// The Levenshtein distance between `a` and `b`, in characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substituted = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substituted.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

pub(super) fn leaf_line(leaf_line: Option<usize>, error_line: Option<usize>) -> Option<usize> {
    match (leaf_line, error_line) {
        (Some(start), Some(within)) => Some(start + within.saturating_sub(1)),
        (start, _) => start,
    }
}

pub(super) fn jinja_reason(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    }
}

pub(super) fn jinja_problem(template: &Compiled, leaf: &LeafRef, err: &minijinja::Error) -> Problem {
    Problem {
        origin: template.origin.clone(),
        line: leaf_line(leaf.line, err.line()),
        message: format!("{}: {}", leaf.path, jinja_reason(err)),
    }
}

pub(super) fn problem_at(template: &Compiled, leaf: &LeafRef, message: String) -> Problem {
    Problem { origin: template.origin.clone(), line: leaf.line, message: format!("{}: {message}", leaf.path) }
}
