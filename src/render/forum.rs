//! Forum post titles (`forum/titles.toml`): the `thread_name` of the posts forum mode creates, one
//! template for a user's post, one for a day's digest post and one for a scheduled report's post. Plain text like `author.name` (no
//! markdown escaping; hidden characters stripped), one line, Persian in a right-to-left isolate
//! with values in first-strong isolates, and cut to Discord's 100 characters with isolates kept
//! balanced. A template that fails falls back to the built-in one, then to the bare username.

use std::path::Path;

use minijinja::value::Value;
use serde::Serialize;

use super::filters::{self, shows_nothing};
use super::{builtin, limits, Problem, Renderer};

/// Discord's limit on a post's title (`thread_name`).
pub const THREAD_NAME: usize = 100;

/// The file in the templates folder that replaces the built-in titles.
pub const TITLES_FILE: &str = "forum/titles.toml";

/// The title of the post of a user whose username shows as nothing (empty, blank, or only
/// characters the relay strips), when the template gives none either.
const NO_USERNAME: &str = "(no username)";

/// The name of the titles in the overrides (what a reload reports as changed).
const TITLES_NAME: &str = "forum/titles";

/// The titles, by index in [`Titles`].
const KINDS: [&str; 3] = ["post", "digest", "report"];

/// The compiled titles: template names in the environment, the admin's and the built-in ones.
#[derive(Debug, Clone, Default)]
pub struct Titles {
    active: [String; 3],
    builtin: [String; 3],
    origin: String,
}

/// What a title template renders.
#[derive(Debug, Clone, Serialize)]
pub struct PostTitle {
    pub username: Option<String>,
    pub panel: Option<String>,
    pub several_panels: bool,
    pub action: String,
    pub date: Option<String>,
    /// The report of a report's post: `daily`, `weekly`, `custom`.
    pub report: Option<String>,
}

impl PostTitle {
    /// The title of `username`'s post (on `panel`), created by `action`.
    pub fn user(username: &str, panel: Option<&str>, action: &str) -> Self {
        Self {
            username: Some(username.to_owned()),
            panel: panel.map(str::to_owned),
            several_panels: false,
            action: action.to_owned(),
            date: None,
            report: None,
        }
    }

    /// The title of the digest post of `date` (UTC, `2026-11-28`), created by a burst of `action`.
    pub fn digest(date: &str, action: &str) -> Self {
        Self { date: Some(date.into()), ..Self::user("", None, action).without_username() }
    }

    /// The title of the post of the report named `report` (`daily`, `weekly`, `custom`), made by
    /// a message of `action`.
    pub fn report(report: &str, action: &str) -> Self {
        Self { report: Some(report.into()), ..Self::user("", None, action).without_username() }
    }

    fn without_username(self) -> Self {
        Self { username: None, ..self }
    }

    pub fn several_panels(self, several_panels: bool) -> Self {
        Self { several_panels, ..self }
    }

    fn kind(&self) -> usize {
        match (&self.username, &self.report) {
            (Some(_), _) => 0,
            (None, None) => 1,
            (None, Some(_)) => 2,
        }
    }

    /// The title when no template renders one that shows anything: the username (stripped of
    /// hidden characters), or the date; [`NO_USERNAME`] when the username shows as nothing, since
    /// Discord refuses a post without a title.
    fn fallback(&self) -> String {
        let text = self.username.as_deref().map(|name| filters::strip_invisible(name).into_iter().collect::<String>());
        let text = text.or_else(|| self.date.clone().map(|date| format!("Digest {date}")));
        let text = text.or_else(|| self.report.clone().map(|report| format!("{report} report"))).unwrap_or_default();
        let text = if shows_nothing(&text) { NO_USERNAME } else { text.trim() };
        limits::truncate(text, THREAD_NAME)
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TitlesSpec {
    post: Option<String>,
    digest: Option<String>,
    report: Option<String>,
}

impl Renderer {
    /// Compiles the built-in titles of the renderer's language.
    pub(super) fn compile_builtin_titles(&mut self) {
        let origin = format!("built-in {}/{TITLES_FILE}", self.lang.code());
        let names = self
            .compile_titles(&origin, builtin::titles(self.lang))
            .unwrap_or_else(|problems| panic!("built-in titles are broken: {problems:?}"));
        let names = names.map(|name| name.unwrap_or_default());
        self.titles = Titles { active: names.clone(), builtin: names, origin };
    }

    /// Replaces the titles by the admin's `forum/titles.toml` in `dir`, if there is one.
    pub(super) fn load_titles(&mut self, dir: &Path, problems: &mut Vec<Problem>, overrides: &mut Vec<String>) {
        let path = dir.join(TITLES_FILE);
        let origin = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
            Err(err) => {
                problems.push(Problem { origin, line: None, message: format!("cannot read: {err}") });
                return;
            }
        };
        match self.compile_titles(&origin, &text) {
            Ok(names) => {
                for (slot, name) in self.titles.active.iter_mut().zip(names) {
                    if let Some(name) = name {
                        *slot = name;
                    }
                }
                self.titles.origin = origin.clone();
                self.overrides.insert(TITLES_NAME.to_owned(), super::load::hash(&text));
                overrides.push(origin);
            }
            Err(mut errors) => problems.append(&mut errors),
        }
    }

    /// Adds the titles of `text` to the environment; their names, by kind (none: not given).
    fn compile_titles(&mut self, origin: &str, text: &str) -> Result<[Option<String>; 3], Vec<Problem>> {
        let problem = |message: String| vec![Problem { origin: origin.to_owned(), line: None, message }];
        let spec: TitlesSpec = toml::from_str(text).map_err(|err| problem(err.message().to_owned()))?;
        let mut names = [None, None, None];
        let mut errors = Vec::new();
        for (i, source) in [spec.post, spec.digest, spec.report].into_iter().enumerate() {
            let Some(source) = source else { continue };
            let name = format!("{origin}#{}#thread_name", KINDS[i]);
            match self.leaves.add(&mut self.env, name.clone(), source) {
                Ok(()) => names[i] = Some(name),
                Err(err) => errors.extend(problem(format!("{}: {}", KINDS[i], super::jinja_reason(&err)))),
            }
        }
        if errors.is_empty() {
            Ok(names)
        } else {
            Err(errors)
        }
    }

    /// The title (`thread_name`) of a new post, never empty and at most 100 characters.
    pub fn thread_name(&self, title: &PostTitle) -> String {
        let context = Value::from_serialize(title);
        let kind = title.kind();
        let candidates = [&self.titles.active[kind], &self.titles.builtin[kind]];
        for (i, name) in candidates.into_iter().enumerate() {
            if i == 1 && candidates[0] == candidates[1] {
                break;
            }
            match self.render_title(name, &context) {
                Ok(text) if !shows_nothing(&text) => return text,
                Ok(_) => {}
                Err(message) => {
                    let problem = Problem { origin: self.titles.origin.clone(), line: None, message };
                    self.report(&problem, &title.action);
                    self.count_fallback();
                }
            }
        }
        title.fallback()
    }

    /// Renders the title template `name`: one line, right to left in Persian, cut to 100.
    fn render_title(&self, name: &str, context: &Value) -> Result<String, String> {
        let rendered = self.env.get_template(name).and_then(|t| t.render(context));
        let text = rendered
            .map_err(|err| format!("{}: {}", name.rsplit('#').nth(1).unwrap_or("title"), super::jinja_reason(&err)))?;
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let line = if self.lang.is_rtl() && !line.is_empty() { right_to_left_title(&line) } else { line };
        Ok(limits::truncate(&line, THREAD_NAME))
    }

    /// Problems of the titles in use with sample contexts (for `check` and reloads).
    pub(super) fn check_titles(&self) -> Vec<Problem> {
        let samples = [
            PostTitle::user(&"user_name_".repeat(12), Some("eu-1"), "user_created").several_panels(true),
            PostTitle::user("ali", None, "user_limited"),
            PostTitle::digest("2026-11-28", "user_expired"),
            PostTitle::report("daily", "report"),
            PostTitle::report("weekly", "report"),
        ];
        let mut problems = Vec::new();
        for sample in samples {
            let context = Value::from_serialize(&sample);
            let problem = match self.render_title(&self.titles.active[sample.kind()], &context) {
                Ok(text) if shows_nothing(&text) => "renders an empty title (Discord would refuse the post)".to_owned(),
                Ok(_) => continue,
                Err(message) => message,
            };
            let problem = Problem { origin: self.titles.origin.clone(), line: None, message: problem };
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
        problems
    }
}

/// A Persian title's line in a right-to-left isolate, its values in first-strong ones; a line
/// with no right-to-left letter at all (a Latin username alone) needs no isolate and gets none:
/// they would only be characters a forum search or a copied title carries for nothing.
fn right_to_left_title(line: &str) -> String {
    if line.chars().any(is_right_to_left) {
        format!("\u{2067}{line}\u{2069}")
    } else {
        line.chars().filter(|c| !('\u{2066}'..='\u{2069}').contains(c)).collect()
    }
}

/// Whether `c` is a letter of a right-to-left script (Hebrew, Arabic, Syriac, Thaana, N'Ko and
/// their presentation forms).
fn is_right_to_left(c: char) -> bool {
    matches!(c, '\u{0590}'..='\u{08FF}' | '\u{FB1D}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Lang;

    #[test]
    fn titles_a_post_with_the_username_and_the_panel_when_several_post() {
        let renderer = Renderer::builtin(Lang::En);
        assert_eq!(renderer.thread_name(&PostTitle::user("ali_r", Some("eu"), "user_created")), "ali_r");
        let shared = PostTitle::user("ali_r", Some("eu"), "user_created").several_panels(true);
        assert_eq!(renderer.thread_name(&shared), "ali_r · eu", "plain text: no markdown escaping");
        assert_eq!(renderer.thread_name(&PostTitle::digest("2026-11-28", "user_expired")), "📋 Digest 2026-11-28");
        assert_eq!(renderer.thread_name(&PostTitle::report("weekly", "report")), "📊 Weekly report");
        assert!(renderer.check_titles().is_empty());
    }

    #[test]
    fn a_reports_post_is_titled_in_the_reports_language() {
        let titles: Vec<String> = Lang::ALL
            .iter()
            .map(|lang| Renderer::builtin(*lang).thread_name(&PostTitle::report("daily", "report")))
            .collect();
        assert_eq!(titles, ["📊 Daily report", "📊 Отчёт за день", "\u{2067}📊 گزارش روزانه\u{2069}", "📊 每日报告"]);
    }

    #[test]
    fn a_long_persian_title_is_cut_to_100_with_its_isolates_closed() {
        for lang in Lang::ALL {
            let renderer = Renderer::builtin(*lang);
            let title = renderer.thread_name(&PostTitle::user(&"x".repeat(300), None, "user_created"));
            assert_eq!(limits::chars(&title), THREAD_NAME, "{lang}");
            let opened = title.chars().filter(|c| ('\u{2066}'..='\u{2068}').contains(c)).count();
            let closed = title.chars().filter(|c| *c == '\u{2069}').count();
            assert_eq!(opened, closed, "{lang}: {title:?}");
            assert!(!renderer.thread_name(&PostTitle::digest("2026-11-28", "user_expired")).is_empty());
        }
        let fa = Renderer::builtin(Lang::Fa);
        assert_eq!(fa.thread_name(&PostTitle::user("ali", None, "user_created")), "ali", "Latin alone: no isolate");
        assert_eq!(
            fa.thread_name(&PostTitle::user("ali", Some("eu-1"), "user_created").several_panels(true)),
            "ali · eu-1"
        );
        assert_eq!(
            fa.thread_name(&PostTitle::user("علی", None, "user_created")),
            "\u{2067}\u{2068}علی\u{2069}\u{2069}"
        );
        let digest = fa.thread_name(&PostTitle::digest("2026-11-28", "user_expired"));
        assert_eq!(digest, "\u{2067}📋 خلاصهٔ \u{2068}2026-11-28\u{2069}\u{2069}", "Persian with a date: isolated");
    }

    #[test]
    fn a_username_that_shows_as_nothing_still_makes_a_title_discord_takes() {
        let blank = ["", "   ", "\n\t", "\u{200B}\u{2060}", "\u{202E}\u{2066}", "\u{3164}\u{115F}", "\u{2800}\u{2800}"];
        for lang in Lang::ALL {
            let renderer = Renderer::builtin(*lang);
            for username in blank {
                let title = renderer.thread_name(&PostTitle::user(username, None, "user_created"));
                // The relay's own isolates (Persian) aside, nothing hidden and something shown.
                let bare: String = title.chars().filter(|c| !('\u{2067}'..='\u{2069}').contains(c)).collect();
                let shown: String = super::super::filters::strip_invisible(&bare).into_iter().collect();
                assert!(!shows_nothing(&shown), "{lang}: {username:?} made the title {title:?}");
                assert_eq!(shown, bare, "{lang}: {username:?}: no hidden characters in {title:?}");
            }
        }
    }

    #[test]
    fn a_title_of_braille_blanks_counts_as_empty_as_in_a_report_list() {
        // U+2800 draws as nothing: Discord's usual "invisible name", as a username or a title.
        let braille = "\u{2800}\u{2800}\u{2800}";
        let renderer = Renderer::builtin(Lang::En);
        assert_eq!(renderer.thread_name(&PostTitle::user(braille, None, "user_created")), NO_USERNAME);
        assert_eq!(crate::render::listed_name(braille, Lang::En), NO_USERNAME, "one notion of blank");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("forum")).unwrap();
        std::fs::write(dir.path().join(TITLES_FILE), "post = \"\\u2800 \\u2800\"\n").unwrap();
        let renderer = Renderer::load(dir.path(), Lang::En).renderer;
        assert_eq!(renderer.thread_name(&PostTitle::user("ali", None, "user_created")), "ali", "built-in");
        let problems = renderer.check_titles();
        assert!(problems.iter().any(|p| p.message.contains("empty title")), "{problems:?}");
    }

    #[test]
    fn an_admins_title_replaces_the_built_in_one_and_a_broken_one_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("forum")).unwrap();
        std::fs::write(dir.path().join(TITLES_FILE), "post = \"{{ username }} ({{ action }})\"\n").unwrap();
        let loaded = Renderer::load(dir.path(), Lang::En);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let renderer = loaded.renderer;
        assert_eq!(renderer.thread_name(&PostTitle::user("ali", None, "user_created")), "ali (user_created)");
        assert_eq!(renderer.thread_name(&PostTitle::digest("2026-11-28", "x")), "📋 Digest 2026-11-28", "kept");

        std::fs::write(dir.path().join(TITLES_FILE), "post = \"{{ user.nope.deeper }}\"\n").unwrap();
        let renderer = Renderer::load(dir.path(), Lang::En).renderer;
        assert_eq!(renderer.thread_name(&PostTitle::user("ali", None, "user_created")), "ali", "built-in");
        assert!(!renderer.check_titles().is_empty());
    }
}
