//! The template set in use, replaceable while the relay runs (on SIGHUP).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use super::{Lang, Loaded, Problem, Renderer};

/// The live template set: what ingest renders with, and how to load it again.
pub struct Templates {
    dir: PathBuf,
    lang: Lang,
    current: RwLock<Arc<Renderer>>,
}

impl Templates {
    /// Loads the set from `dir` over the built-in `lang` templates. Also returns the problems met
    /// (the files concerned fall back to their built-in template) and the files that replaced a
    /// built-in template, for the caller to report.
    pub fn load(dir: PathBuf, lang: Lang) -> (Self, Vec<Problem>, Vec<String>) {
        let Loaded { renderer, problems, warnings, overrides } = Renderer::load(&dir, lang);
        for warning in &warnings {
            log::warn!("template {warning}");
        }
        (Self { dir, lang, current: RwLock::new(Arc::new(renderer)) }, problems, overrides)
    }

    /// The set in use now.
    pub fn current(&self) -> Arc<Renderer> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Reads the folder again. The new set replaces the current one only if it loads and passes
    /// [`Renderer::check`]; otherwise the current set stays and the problems are returned. On
    /// success, returns what changed.
    pub fn reload(&self) -> Result<Vec<String>, Vec<Problem>> {
        let loaded = Renderer::load(&self.dir, self.lang);
        for warning in &loaded.warnings {
            log::warn!("SIGHUP: template {warning}");
        }
        let mut problems = loaded.problems;
        problems.extend(loaded.renderer.check());
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut current = self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let changes = loaded.renderer.changes_since(&current);
        *current = Arc::new(loaded.renderer);
        Ok(changes)
    }
}
