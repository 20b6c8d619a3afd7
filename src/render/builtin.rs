//! The default templates, compiled into the binary from `templates/<lang>/`.

use std::fmt;
use std::str::FromStr;

/// A language of the built-in template set (Marzban's own UI languages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Ru,
    Fa,
    Zh,
}

/// Words and conventions that filters use on their own, in a template set's language.
#[derive(Debug, Clone, Copy)]
pub struct Labels {
    /// What `bytes` prints for no limit.
    pub unlimited: &'static str,
    /// `duration`'s units: days, hours, minutes, seconds (appended to the number).
    pub duration_units: [&'static str; 4],
    /// Put between `duration`'s two parts.
    pub duration_separator: &'static str,
    /// `number`'s thousands separator.
    pub thousands: &'static str,
    /// `status_text` for `active`, `disabled`, `limited`, `expired`, `on_hold`.
    pub statuses: [&'static str; 5],
    /// `reset_text` for `no_reset`, `day`, `week`, `month`, `year`.
    pub resets: [&'static str; 5],
}

/// The statuses, in the order of [`Labels::statuses`].
pub const STATUSES: [&str; 5] = ["active", "disabled", "limited", "expired", "on_hold"];

/// The data limit reset strategies, in the order of [`Labels::resets`].
pub const RESETS: [&str; 5] = ["no_reset", "day", "week", "month", "year"];

impl Lang {
    pub const ALL: &'static [Lang] = &[Lang::En, Lang::Ru, Lang::Fa, Lang::Zh];

    /// The code used in `TEMPLATE_LANG` and in `templates/<code>/`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ru => "ru",
            Lang::Fa => "fa",
            Lang::Zh => "zh",
        }
    }

    /// Whether the language is written right to left: interpolated values are then wrapped in
    /// Unicode isolates so that Latin usernames and numbers do not scramble the sentence.
    pub fn is_rtl(self) -> bool {
        self == Lang::Fa
    }

    pub fn labels(self) -> Labels {
        match self {
            Lang::En => Labels {
                unlimited: "Unlimited",
                duration_units: ["d", "h", "m", "s"],
                duration_separator: " ",
                thousands: ",",
                statuses: ["Active", "Disabled", "Limited", "Expired", "On hold"],
                resets: ["Never", "Daily", "Weekly", "Monthly", "Yearly"],
            },
            Lang::Ru => Labels {
                unlimited: "Безлимит",
                duration_units: [" д", " ч", " мин", " с"],
                duration_separator: " ",
                thousands: "\u{202f}",
                statuses: ["Активен", "Отключён", "Лимит исчерпан", "Истёк", "Ожидает"],
                resets: ["Без сброса", "Ежедневно", "Еженедельно", "Ежемесячно", "Ежегодно"],
            },
            Lang::Fa => Labels {
                unlimited: "نامحدود",
                duration_units: [" روز", " ساعت", " دقیقه", " ثانیه"],
                duration_separator: " و ",
                thousands: "٬",
                statuses: ["فعال", "غیرفعال", "محدود", "منقضی", "در انتظار"],
                resets: ["بدون بازنشانی", "روزانه", "هفتگی", "ماهانه", "سالانه"],
            },
            Lang::Zh => Labels {
                unlimited: "无限制",
                duration_units: ["天", "小时", "分钟", "秒"],
                duration_separator: "",
                thousands: ",",
                statuses: ["活跃", "已禁用", "已限制", "已过期", "待激活"],
                resets: ["不重置", "每天", "每周", "每月", "每年"],
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
        Lang::ALL.iter().copied().find(|lang| lang.code().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
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

/// Every built-in template of one language, by name.
macro_rules! language {
    ($lang:literal) => {
        template_set!($lang:
            "default", "user_created", "user_updated", "user_deleted", "user_limited", "user_expired",
            "user_enabled", "user_disabled", "data_usage_reset", "data_reset_by_next", "subscription_revoked",
            "reached_usage_percent", "reached_days_left", "user_activated", "user_deactivated",
            "digest/default",
        )
    };
}

const EN: &[(&str, &str)] = language!("en");
const RU: &[(&str, &str)] = language!("ru");
const FA: &[(&str, &str)] = language!("fa");
const ZH: &[(&str, &str)] = language!("zh");

/// `(name, TOML source)` of every built-in template of `lang`.
pub fn templates(lang: Lang) -> &'static [(&'static str, &'static str)] {
    match lang {
        Lang::En => EN,
        Lang::Ru => RU,
        Lang::Fa => FA,
        Lang::Zh => ZH,
    }
}
