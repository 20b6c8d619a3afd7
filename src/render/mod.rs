//! Render: an event in, a Discord message part out. Pure: no I/O but reading the templates folder
//! once at load.
//!
//! Each action has a template file (`user_created.toml`, …) and `default` covers unknown actions.
//! The built-in files are compiled into the binary; a file of the same name in `TEMPLATES_DIR`
//! replaces one. Every string of a template is its own minijinja template, rendered with the event
//! as context, so no user text can break the embed's structure. `{{ … }}` output is escaped for
//! Discord markdown unless marked safe; URL and colour leaves are not escaped.
//!
//! Rendering never fails: an admin's template that errors is replaced by the built-in one for the
//! action (and the error logged once with file, line and reason); if even that fails, a minimal
//! embed naming the action and user is sent.
//!
//! This file holds [`Renderer`]'s core: the environment (escaping, filters), compiling a template's
//! leaves and rendering them. Around it: `load` (the templates folder: which files count, and
//! warnings for names no panel sends), `problem` (what went wrong where, with the nearest valid
//! name for an undefined variable), `fallback` (the built-in and minimal fallbacks, and counting
//! them), `check`, `digest` (what a digest template renders), `forum` (post titles) and `report`
//! (scheduled reports).

pub mod audit;
mod builtin;
pub mod changes;
mod check;
mod digest;
mod draft;
pub mod edges;
mod fallback;
pub mod filters;
mod forum;
mod leaves;
pub mod limits;
mod live;
mod load;
mod problem;
pub mod report;
pub mod samples;
mod shape;
pub mod template;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use time::OffsetDateTime;

pub use builtin::Lang;
pub use digest::{Digest, DigestEntry};
pub use draft::{Draft, Part};
use fallback::{minimal_part, Failures};
pub use forum::{PostTitle, THREAD_NAME, TITLES_FILE};
use leaves::Leaves;
pub use live::Templates;
pub use load::Source;
pub(crate) use problem::edit_distance;
pub use problem::Problem;
use problem::{jinja_problem, jinja_reason, leaf_line, problem_at};
pub use report::{
    listed_chars, listed_name, HealthCounts, NodeOutages, ReportContext, UserList, REPORT_ACTION, REPORT_TEMPLATE,
    REPORT_USERNAME_SUFFIX,
};
pub use shape::{Color, Field, Shape};
use template::{Format, Leaf, Spec};

use crate::event::{Event, UserState};

/// The name of the template used for actions without one of their own.
pub const DEFAULT_TEMPLATE: &str = "default";

/// Digest templates are named `digest/<action>` (and `digest/default`), from a `digest/` folder.
pub const DIGEST_PREFIX: &str = "digest/";

/// The custom auto-escape mode applied to text leaves Discord renders markdown in (content, title,
/// description, field names and values).
const MARKDOWN_ESCAPE: &str = "discord-markdown";

/// The custom auto-escape mode of the leaves Discord shows as plain text (`author.name`,
/// `footer.text`): a backslash there would show as a backslash (`eu\_1`), so values are only
/// stripped of hidden characters, not markdown-escaped.
const PLAIN_TEXT: &str = "discord-plain";

/// Leaves Discord shows as plain text, by the end of their template name (a forum post's title
/// too).
const PLAIN_TEXT_LEAVES: [&str; 3] = ["#author.name", "#footer.text", "#thread_name"];

/// A compiled leaf: the name of its template in the environment, where it came from.
#[derive(Debug, Clone)]
struct LeafRef {
    name: String,
    path: String,
    line: Option<usize>,
}

/// One template file, compiled: each leaf is a template in the environment.
#[derive(Debug)]
struct Compiled {
    origin: String,
    shape: Shape<Option<LeafRef>, Option<Color<LeafRef>>, bool>,
}

/// The loaded template set. Cheap to share (`Arc`); replaced as a whole on reload.
pub struct Renderer {
    env: Environment<'static>,
    /// The leaves' sources, compiled into `env` when first rendered.
    leaves: Leaves,
    lang: Lang,
    /// Action name → the template in use (the admin's, or the built-in one).
    active: HashMap<String, Arc<Compiled>>,
    /// Action name → the built-in template, the fallback when the admin's fails.
    builtin: HashMap<String, Arc<Compiled>>,
    /// Renders that fell back since load, and the first failure of each template file (the one
    /// logged at error level).
    failures: Mutex<Failures>,
    /// Template name → a hash of the admin's file that replaced the built-in one, to tell what a
    /// reload changed.
    overrides: BTreeMap<String, u64>,
    /// Forum post titles.
    titles: forum::Titles,
}

/// A freshly loaded template set and the problems met while loading it.
pub struct Loaded {
    pub renderer: Renderer,
    pub problems: Vec<Problem>,
    /// What loads but is probably a mistake: a file named after no action the panels send.
    pub warnings: Vec<Problem>,
    /// Files in the templates folder that replaced a built-in template or added one.
    pub overrides: Vec<String>,
}

impl Renderer {
    /// Only the built-in templates of `lang`.
    pub fn builtin(lang: Lang) -> Self {
        let mut renderer = Self::empty(lang);
        for &(name, source) in builtin::templates(lang) {
            let origin = format!("built-in {}/{name}.toml", lang.code());
            let compiled = template::parse(source, Format::Toml)
                .map_err(|message| vec![Problem { origin: origin.clone(), line: None, message }])
                .and_then(|spec| renderer.compile(&origin, spec))
                .unwrap_or_else(|problems| panic!("built-in template is broken: {problems:?}"));
            let compiled = Arc::new(compiled);
            renderer.builtin.insert(name.to_owned(), compiled.clone());
            renderer.active.insert(name.to_owned(), compiled);
        }
        renderer.compile_builtin_titles();
        renderer
    }

    fn empty(lang: Lang) -> Self {
        let mut env = Environment::new();
        let leaves = Leaves::lazy(&mut env);
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_keep_trailing_newline(false);
        env.set_auto_escape_callback(|name| {
            if !is_text_leaf(name) {
                AutoEscape::None
            } else if PLAIN_TEXT_LEAVES.iter().any(|leaf| name.ends_with(leaf)) {
                AutoEscape::Custom(PLAIN_TEXT)
            } else {
                AutoEscape::Custom(MARKDOWN_ESCAPE)
            }
        });
        let rtl = lang.is_rtl();
        env.set_formatter(move |out, state, value| {
            if value.is_none() {
                return Ok(());
            }
            let text_leaf = !matches!(state.auto_escape(), AutoEscape::None);
            let plain = matches!(state.auto_escape(), AutoEscape::Custom(PLAIN_TEXT));
            let text = if value.is_safe() || !text_leaf {
                value.to_string()
            } else if plain {
                filters::strip_invisible(&value.to_string()).into_iter().collect()
            } else {
                filters::escape_markdown(&value.to_string())
            };
            if rtl && text_leaf && !text.is_empty() {
                // First-strong isolate: a Latin username or a number keeps its own direction
                // inside a right-to-left sentence. One per line, so that every line of the leaf
                // stays balanced when it is wrapped in its own right-to-left isolate.
                let isolated: Vec<String> = text.split('\n').map(|line| format!("\u{2068}{line}\u{2069}")).collect();
                out.write_str(&isolated.join("\n")).map_err(Into::into)
            } else {
                out.write_str(&text).map_err(Into::into)
            }
        });
        let labels = lang.labels();
        env.add_filter("bytes", move |value: Value| filters::bytes(&value, &labels));
        env.add_filter("ts", |value: Value, style: Option<String>| filters::ts(&value, style.as_deref()));
        env.add_filter("duration", move |value: Value| filters::duration(&value, &labels));
        env.add_filter("percent", move |value: Value, decimals: Option<usize>| {
            filters::percent(&value, decimals, &labels)
        });
        env.add_filter("days", move |value: Value| filters::days(&value, &labels));
        env.add_filter("relative_days", move |value: Value, from: Value| {
            filters::relative_days(&value, &from, &labels)
        });
        env.add_filter("number", move |value: Value, decimals: Option<usize>| {
            filters::number_filter(&value, decimals, &labels)
        });
        env.add_filter("truncate", |value: Value, length: usize| filters::truncate(&value, length));
        env.add_filter("md", |value: Value| filters::md(&value));
        env.add_filter("raw", |value: Value| filters::raw(&value));
        env.add_filter("status_emoji", |value: Value| filters::status_emoji(&value));
        env.add_filter("status_text", move |value: Value| filters::status_text(&value, &labels));
        env.add_filter("reset_text", move |value: Value| filters::reset_text(&value, &labels));
        Self {
            env,
            leaves,
            lang,
            active: HashMap::new(),
            builtin: HashMap::new(),
            failures: Mutex::new(Failures::default()),
            overrides: BTreeMap::new(),
            titles: forum::Titles::default(),
        }
    }

    /// Names of every template in use (actions, plus `default`), sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.active.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    fn template_for(&self, action: &str) -> &Arc<Compiled> {
        lookup(&self.active, "", action)
    }

    /// Renders `event` with its action's template, falling back as the module docs describe, as
    /// the first event of its user the relay sees (`changes` is empty).
    pub fn render(&self, event: &Event) -> Part {
        self.render_after(event, None)
    }

    /// Renders `event` with its action's template, with `changes` listing what differs from
    /// `previous`, the state of its user the relay saw last (`None`: not seen before).
    pub fn render_after(&self, event: &Event, previous: Option<&UserState>) -> Part {
        let context = self.context(event, previous);
        self.render_or_fall_back("", event.action.as_str(), &context, event.event_time)
            .unwrap_or_else(|| minimal_part(event.action.as_str(), &event.username, event.event_time))
    }

    /// Renders `event` with exactly the template in use for its action, without any fallback.
    /// For `check` and previews.
    pub fn try_render(&self, event: &Event) -> Result<Part, Problem> {
        self.try_render_after(event, None)
    }

    /// [`Renderer::try_render`] with `changes` from `previous`, as [`Renderer::render_after`].
    pub fn try_render_after(&self, event: &Event, previous: Option<&UserState>) -> Result<Part, Problem> {
        let context = self.context(event, previous);
        self.render_compiled(self.template_for(event.action.as_str()), &context, event.event_time)
    }

    /// The template context of `event`: the event itself, and `changes` since `previous`.
    pub(crate) fn context(&self, event: &Event, previous: Option<&UserState>) -> Value {
        let changes = previous
            .and_then(|before| Some(changes::describe(&UserState::of(event)?.changes_since(before), self.lang)))
            .unwrap_or_default();
        let changes: Vec<Value> = changes.iter().map(changes::ChangeView::to_value).collect();
        minijinja::context! { changes => changes, ..Value::from_serialize(event) }
    }

    /// Renders one embed of a digest with the digest template of its action (or the default digest
    /// template), falling back like [`Renderer::render`].
    pub fn render_digest(&self, digest: &Digest) -> Part {
        let context = Value::from_serialize(digest);
        let at = OffsetDateTime::from_unix_timestamp_nanos((digest.event_time * 1e9) as i128)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        self.render_or_fall_back(DIGEST_PREFIX, &digest.action, &context, at).unwrap_or_else(|| {
            let who = format!("{} × {}", digest.count, digest.usernames.join(", "));
            minimal_part(&digest.action, &who, at)
        })
    }

    /// `(name, origin)` of every template in use, sorted by name.
    pub fn templates(&self) -> Vec<(&str, &str)> {
        self.names().into_iter().map(|name| (name, self.active[name].origin.as_str())).collect()
    }

    /// What differs in the admin's templates from `previous` to `self`: lines such as
    /// `added user_created`, `changed default`, `removed user_expired`.
    pub fn changes_since(&self, previous: &Renderer) -> Vec<String> {
        let mut changes = Vec::new();
        for (name, hash) in &self.overrides {
            match previous.overrides.get(name) {
                None => changes.push(format!("added {name}")),
                Some(old) if old != hash => changes.push(format!("changed {name}")),
                Some(_) => {}
            }
        }
        for name in previous.overrides.keys().filter(|name| !self.overrides.contains_key(*name)) {
            changes.push(format!("removed {name} (the built-in template is used again)"));
        }
        if previous.lang != self.lang {
            changes.push(format!("language {} → {}", previous.lang, self.lang));
        }
        changes
    }

    fn render_compiled(&self, template: &Compiled, context: &Value, at: OffsetDateTime) -> Result<Part, Problem> {
        let render = |leaf: &LeafRef| self.render_leaf(template, leaf, context);
        let color = match &template.shape.color {
            None => None,
            Some(Color::Fixed(color)) => Some(*color),
            Some(Color::Template(leaf)) => match render(leaf)? {
                rendered if rendered.is_empty() => None,
                rendered => {
                    Some(template::parse_color(&rendered).map_err(|message| problem_at(template, leaf, message))?)
                }
            },
        };
        let timestamp = template.shape.timestamp.then_some(at);
        let mut draft =
            template.shape.try_map(color, timestamp, |_, leaf| leaf.as_ref().map_or(Ok(String::new()), render))?;
        draft.clamp();
        if !draft.is_visible() {
            return Err(Problem {
                origin: template.origin.clone(),
                line: None,
                message: "renders an empty message for this event (Discord would refuse it)".into(),
            });
        }
        Ok(draft.into_part())
    }

    fn render_leaf(&self, template: &Compiled, leaf: &LeafRef, context: &Value) -> Result<String, Problem> {
        let rendered = self.env.get_template(&leaf.name).and_then(|t| t.render(context));
        match rendered {
            Ok(text) if self.lang.is_rtl() && is_text_leaf(&leaf.name) => Ok(right_to_left_lines(text.trim())),
            Ok(text) => Ok(text.trim().to_owned()),
            Err(err) => {
                let mut problem = jinja_problem(template, leaf, &err);
                if err.kind() == minijinja::ErrorKind::UndefinedError {
                    if let Some(hint) = self.undefined_hint(&leaf.name, context) {
                        problem.message = format!("{}: {hint}", problem.message);
                    }
                }
                Err(problem)
            }
        }
    }

    /// Adds every leaf of `spec` to the environment as a template named `<origin>#<path>`,
    /// checking its syntax. Every leaf is checked: the error is each leaf's syntax error, in order.
    fn compile(&mut self, origin: &str, spec: Spec) -> Result<Compiled, Vec<Problem>> {
        let mut errors = Vec::new();
        let mut add = |path: String, leaf: &Leaf| -> Result<LeafRef, Problem> {
            let name = format!("{origin}#{path}");
            if let Err(err) = self.leaves.add(&mut self.env, name.clone(), leaf.source.clone()) {
                errors.push(Problem {
                    origin: origin.to_owned(),
                    line: leaf_line(leaf.line, err.line()),
                    message: format!("{path}: {}", jinja_reason(&err)),
                });
            }
            Ok(LeafRef { name, path, line: leaf.line })
        };
        let color = spec.color.as_ref().map(|color| color.try_map(|leaf| add("color".into(), leaf))).transpose();
        let shape = color.and_then(|color| {
            spec.try_map(color, spec.timestamp, |path, leaf| {
                leaf.as_ref().map(|leaf| add(path.to_string(), leaf)).transpose()
            })
        });
        match shape {
            Ok(shape) if errors.is_empty() => Ok(Compiled { origin: origin.to_owned(), shape }),
            Ok(_) => Err(errors),
            Err(problem) => Err(vec![problem]),
        }
    }
}

/// Whether the leaf named `name` (`<origin>#<path>`) is text a reader reads (not a URL or a colour).
fn is_text_leaf(name: &str) -> bool {
    !(name.ends_with("url") || name.ends_with("#color"))
}

/// Each non-empty line of `text` in a right-to-left isolate (U+2067 … U+2069). Discord lays a
/// message out left to right; isolated, a Persian line keeps its own order (the full stop at its
/// end, the colon after its label, a count before its noun) whether the client lays the paragraph
/// out left to right or by its first strong character. Clamping closes an isolate a cut leaves open.
fn right_to_left_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| if line.trim().is_empty() { line.to_owned() } else { format!("\u{2067}{line}\u{2069}") })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The template named `prefix` + `action` in `set`, or `prefix` + `default`. The report template is
/// never an event's: an event named `report` gets the default one.
fn lookup<'a>(set: &'a HashMap<String, Arc<Compiled>>, prefix: &str, action: &str) -> &'a Arc<Compiled> {
    let action = if prefix.is_empty() && action == REPORT_TEMPLATE { DEFAULT_TEMPLATE } else { action };
    set.get(&format!("{prefix}{action}"))
        .or_else(|| set.get(&format!("{prefix}{DEFAULT_TEMPLATE}")))
        .expect("the built-in set always has default templates")
}
