//! The leaves' templates, compiled when first rendered rather than at load. minijinja gives every
//! compiled template room for 256 instructions and 128 line entries whatever its length (about
//! 8 KiB in all), and a language's set has hundreds of leaves, most of which an idle relay never
//! renders: compiled eagerly they were about 3 MiB of its memory. Each leaf is still compiled once
//! at load, and then dropped, so that a syntax error is reported then, as before.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use minijinja::Environment;

/// The sources of the leaves added to one environment, by template name.
#[derive(Clone, Default)]
pub(super) struct Leaves(Arc<RwLock<HashMap<String, String>>>);

impl Leaves {
    /// Makes `env` compile each leaf added here on its first use (and keep it).
    pub(super) fn lazy(env: &mut Environment<'static>) -> Self {
        let leaves = Self::default();
        let sources = leaves.0.clone();
        env.set_loader(move |name| Ok(sources.read().unwrap_or_else(PoisonError::into_inner).get(name).cloned()));
        leaves
    }

    /// Checks that `source` compiles as template `name` of `env`, then keeps it to compile on
    /// first use.
    pub(super) fn add(
        &self,
        env: &mut Environment<'static>,
        name: String,
        source: String,
    ) -> Result<(), minijinja::Error> {
        env.add_template_owned(name.clone(), source.clone())?;
        env.remove_template(&name);
        self.0.write().unwrap_or_else(PoisonError::into_inner).insert(name, source);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use crate::render::{samples, Lang, Renderer};

    #[test]
    fn a_loaded_set_compiles_a_leaf_only_when_an_event_renders_it() {
        let renderer = Renderer::builtin(Lang::En);
        assert_eq!(renderer.env.templates().count(), 0, "every leaf was compiled at load");

        let event = samples::event_for("user_created", OffsetDateTime::now_utc()).unwrap();
        let part = renderer.try_render(&event).unwrap();

        let compiled: Vec<String> = renderer.env.templates().map(|(name, _)| name.to_owned()).collect();
        assert!(
            !compiled.is_empty() && compiled.iter().all(|name| name.contains("/user_created.toml#")),
            "{compiled:?}"
        );
        let again = renderer.try_render(&event).unwrap();
        assert_eq!(format!("{again:?}"), format!("{part:?}"));
    }
}
