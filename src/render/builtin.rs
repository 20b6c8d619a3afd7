//! The default templates, compiled into the binary from `templates/<lang>/`.

use std::fmt;
use std::str::FromStr;

/// A language of the built-in template set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
}

/// Words that filters print on their own, in a template set's language.
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    /// What `bytes` prints for no limit.
    pub unlimited: &'static str,
}

impl Lang {
    pub const ALL: &'static [Lang] = &[Lang::En];

    /// The code used in `TEMPLATE_LANG` and in `templates/<code>/`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
        }
    }

    pub fn labels(self) -> Labels {
        match self {
            Lang::En => Labels {
                unlimited: "Unlimited",
            },
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Lang {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Lang::ALL
            .iter()
            .copied()
            .find(|lang| lang.code().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let codes: Vec<&str> = Lang::ALL.iter().map(|l| l.code()).collect();
                format!("{s:?} is not one of {}", codes.join(", "))
            })
    }
}

/// Declares the built-in set of one language: every action's file, plus `default`.
macro_rules! template_set {
    ($lang:literal: $($name:literal),+ $(,)?) => {
        &[$(($name, include_str!(concat!("../../templates/", $lang, "/", $name, ".toml")))),+]
    };
}

const EN: &[(&str, &str)] = template_set!("en":
    "default", "user_created", "user_updated", "user_deleted", "user_limited", "user_expired",
    "user_enabled", "user_disabled", "data_usage_reset", "data_reset_by_next", "subscription_revoked",
    "reached_usage_percent", "reached_days_left", "user_activated", "user_deactivated",
);

/// `(name, TOML source)` of every built-in template of `lang`.
pub fn templates(lang: Lang) -> &'static [(&'static str, &'static str)] {
    match lang {
        Lang::En => EN,
    }
}
