//! Loading a template set: the `.toml` and `.json` files of the templates folder (and its
//! `digest/` folder) that replace or add to the built-in ones. A file counts if its name is an
//! action name; of `x.json` and `x.toml` the `.json` one wins; a file named after no action the
//! panels send loads, with a warning naming the nearest known action.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use super::problem::edit_distance;
use super::template::{self, Format};
use super::{Lang, Loaded, Problem, Renderer, DEFAULT_TEMPLATE, DIGEST_PREFIX, REPORT_TEMPLATE};
use crate::event::Action;

impl Renderer {
    /// The built-in templates of `lang`, replaced file by file by the `.toml` and `.json` files of
    /// `dir` (if it exists). A file that fails to load is reported and the built-in one is kept.
    pub fn load(dir: &Path, lang: Lang) -> Loaded {
        let mut problems = Vec::new();
        let files: Vec<TemplateFile> = template_files(dir, "", &mut problems)
            .into_iter()
            .chain(template_files(&dir.join("digest"), DIGEST_PREFIX, &mut problems))
            .collect();
        let warnings: Vec<Problem> = files.iter().filter_map(unknown_action_warning).collect();
        let mut sources = Vec::new();
        for file in files {
            let origin = file.path.display().to_string();
            match std::fs::read_to_string(&file.path) {
                Ok(text) => sources.push(Source { name: file.name, origin, format: file.format, text }),
                Err(err) => problems.push(Problem { origin, line: None, message: format!("cannot read: {err}") }),
            }
        }
        let mut loaded = Self::from_sources(lang, sources);
        loaded.renderer.load_titles(dir, &mut problems, &mut loaded.overrides);
        problems.append(&mut loaded.problems);
        loaded.problems = problems;
        loaded.warnings = warnings;
        loaded
    }

    /// The built-in templates of `lang`, replaced by `sources` (templates given as text).
    pub fn from_sources(lang: Lang, sources: Vec<Source>) -> Loaded {
        let mut renderer = Self::builtin(lang);
        let mut problems = Vec::new();
        let mut overrides = Vec::new();
        for Source { name, origin, format, text } in sources {
            let problem = |message: String| vec![Problem { origin: origin.clone(), line: None, message }];
            let loaded =
                template::parse(&text, format).map_err(problem).and_then(|spec| renderer.compile(&origin, spec));
            match loaded {
                Ok(compiled) => {
                    renderer.active.insert(name.clone(), Arc::new(compiled));
                    renderer.overrides.insert(name, hash(&text));
                    overrides.push(origin);
                }
                Err(mut errors) => problems.append(&mut errors),
            }
        }
        Loaded { renderer, problems, warnings: Vec::new(), overrides }
    }
}

/// A template given as text: its name (`user_created`, `digest/default`), where it comes from (for
/// messages), its format and its text.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub origin: String,
    pub format: Format,
    pub text: String,
}

/// A template file found in the templates folder.
struct TemplateFile {
    /// The template's name: the action it is for (the file stem), prefixed with `digest/` for
    /// digest templates.
    name: String,
    path: std::path::PathBuf,
    format: Format,
}

/// The `.toml` and `.json` files directly in `dir`, sorted, named with `prefix`; none if `dir` does
/// not exist.
/// A hash of an admin's template file, to tell what a reload changed.
pub(super) fn hash(text: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

fn template_files(dir: &Path, prefix: &str, problems: &mut Vec<Problem>) -> Vec<TemplateFile> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(err) => {
            problems.push(Problem {
                origin: dir.display().to_string(),
                line: None,
                message: format!("cannot read the templates folder: {err}"),
            });
            return Vec::new();
        }
    };
    let mut files: Vec<TemplateFile> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()))
        .filter_map(|entry| {
            let file_name = entry.file_name().into_string().ok()?;
            let format = Format::of(&file_name)?;
            let name = file_name.rsplit_once('.')?.0.to_owned();
            Some(TemplateFile { name: format!("{prefix}{name}"), path: entry.path(), format })
        })
        .collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.retain(|file| {
        let valid = Action::parse(file.name.trim_start_matches(prefix)).is_ok();
        if !valid {
            problems.push(Problem {
                origin: file.path.display().to_string(),
                line: None,
                message: "the file name is not an action name (letters, digits, '_' and '-'); it is ignored".into(),
            });
        }
        valid
    });
    let mut seen = HashSet::new();
    files.retain(|file| {
        let first = seen.insert(file.name.clone());
        if !first {
            problems.push(Problem {
                origin: file.path.display().to_string(),
                line: None,
                message: format!(
                    "another file is already the template for {:?} (when both {0}.json and {0}.toml exist, the \
                     .json file wins); this one is ignored",
                    file.name
                ),
            });
        }
        first
    });
    files
}

/// A warning when `file` is named after no action the panels send, nor one node watch raises (nor
/// `default`): it loads but would never be used for the action its author meant. Names the nearest one.
fn unknown_action_warning(file: &TemplateFile) -> Option<Problem> {
    let action = file.name.strip_prefix(DIGEST_PREFIX).unwrap_or(&file.name);
    if file.name == REPORT_TEMPLATE {
        return None;
    }
    let known =
        crate::event::KNOWN_ACTIONS.iter().chain(crate::event::WATCH_ACTIONS).copied().chain([DEFAULT_TEMPLATE]);
    if known.clone().any(|name| name == action) {
        return None;
    }
    let nearest = known.min_by_key(|name| edit_distance(action, name)).expect("there are known actions");
    Some(Problem {
        origin: file.path.display().to_string(),
        line: None,
        message: format!(
            "{action:?} is not an action the panels send, so this template is used only if a panel sends it; \
             did you mean {nearest:?}?"
        ),
    })
}

#[cfg(test)]
mod tests {
    use crate::render::{Lang, Renderer};

    #[test]
    fn a_node_watch_template_is_known_and_a_misspelt_one_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("node_down.toml"), "title = \"{{ username }} is down\"\n").unwrap();
        std::fs::write(dir.path().join("node_dwn.toml"), "title = \"{{ username }}\"\n").unwrap();
        let loaded = Renderer::load(dir.path(), Lang::En);
        let warned: Vec<&str> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(warned[0].contains("\"node_dwn\"") && warned[0].contains("did you mean \"node_down\""), "{warned:?}");
    }
}
