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
    /// The decimal separator of `bytes`, `percent` and `number`.
    pub decimal: &'static str,
    /// `bytes`' units, each 1024 times the one before: B, KiB, MiB, GiB, TiB, PiB, EiB.
    pub byte_units: [&'static str; 7],
    /// Put between a number and `percent`'s sign, and the sign itself.
    pub percent: (&'static str, &'static str),
    /// `days`' noun in the three forms [`Labels::plural`] chooses from (one, few, many), each
    /// with the space it needs after the number.
    pub days: [&'static str; 3],
    /// Which of three plural forms a count takes: 0 (one), 1 (few) or 2 (many).
    pub plural: fn(u64) -> usize,
    /// `status_text` for `active`, `disabled`, `limited`, `expired`, `on_hold`.
    pub statuses: [&'static str; 5],
    /// `reset_text` for `no_reset`, `day`, `week`, `month`, `year`.
    pub resets: [&'static str; 5],
    /// The names of the fields `changes` lists, in the order of `changes::FIELDS`.
    pub change_fields: [&'static str; 12],
    /// What an expiry of none reads as in `changes`.
    pub never: &'static str,
    /// Between a value before and after in `changes`: pointing the way the language reads.
    pub arrow: &'static str,
    /// `relative_days`: a time N days ahead, N days ago (each with `{}` for the days), and today.
    pub relative: [&'static str; 3],
    /// How far an expiry moved in `changes`: later and earlier, each with `{}` for the days.
    pub moved: [&'static str; 2],
}

/// The statuses, in the order of [`Labels::statuses`].
pub const STATUSES: [&str; 5] = ["active", "disabled", "limited", "expired", "on_hold"];

/// The data limit reset strategies, in the order of [`Labels::resets`].
pub const RESETS: [&str; 5] = ["no_reset", "day", "week", "month", "year"];

/// English, Persian and Chinese nouns after a number: 1 takes the first form, everything else the
/// last (Persian and Chinese nouns do not change at all).
fn one_or_other(n: u64) -> usize {
    if n == 1 {
        0
    } else {
        2
    }
}

/// Russian: 1, 21, 31… день; 2–4, 22–24… дня; 0, 5–20, 25–30… дней.
fn russian_plural(n: u64) -> usize {
    match (n % 10, n % 100) {
        (1, rest) if rest != 11 => 0,
        (2..=4, rest) if !(12..=14).contains(&rest) => 1,
        _ => 2,
    }
}

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
                decimal: ".",
                byte_units: ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
                percent: ("", "%"),
                days: [" day", " days", " days"],
                plural: one_or_other,
                statuses: ["Active", "Disabled", "Limited", "Expired", "On hold"],
                resets: ["Never", "Daily", "Weekly", "Monthly", "Yearly"],
                change_fields: [
                    "Status",
                    "Data limit",
                    "Usage",
                    "Expires",
                    "On hold for",
                    "Hold ends",
                    "Reset",
                    "Protocols",
                    "Groups",
                    "Next plan",
                    "Note",
                    "Owner",
                ],
                never: "Never",
                arrow: "→",
                relative: ["{} left", "{} ago", "today"],
                moved: ["+{}", "−{}"],
            },
            Lang::Ru => Labels {
                unlimited: "Безлимит",
                duration_units: [" дн.", " ч", " мин", " с"],
                duration_separator: " ",
                thousands: "\u{202f}",
                decimal: ",",
                byte_units: ["Б", "КиБ", "МиБ", "ГиБ", "ТиБ", "ПиБ", "ЭиБ"],
                percent: (" ", "%"),
                days: [" день", " дня", " дней"],
                plural: russian_plural,
                statuses: ["Активен", "Отключён", "Лимит исчерпан", "Истёк", "Ожидает"],
                resets: ["Без сброса", "Ежедневно", "Еженедельно", "Ежемесячно", "Ежегодно"],
                change_fields: [
                    "Статус",
                    "Лимит трафика",
                    "Использовано",
                    "Истекает",
                    "Срок после подключения",
                    "Ожидание до",
                    "Сброс трафика",
                    "Протоколы",
                    "Группы",
                    "Следующий тариф",
                    "Заметка",
                    "Владелец",
                ],
                never: "Никогда",
                arrow: "→",
                relative: ["осталось {}", "{} назад", "сегодня"],
                moved: ["+{}", "−{}"],
            },
            Lang::Fa => Labels {
                unlimited: "نامحدود",
                duration_units: [" روز", " ساعت", " دقیقه", " ثانیه"],
                duration_separator: " و ",
                thousands: "٬",
                decimal: "٫",
                byte_units: ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
                percent: ("", "٪"),
                days: [" روز", " روز", " روز"],
                plural: one_or_other,
                statuses: ["فعال", "غیرفعال", "محدود", "منقضی", "در انتظار"],
                resets: ["بدون بازنشانی", "روزانه", "هفتگی", "ماهانه", "سالانه"],
                change_fields: [
                    "وضعیت",
                    "حجم کل",
                    "مصرف",
                    "انقضا",
                    "مدت پس از اولین اتصال",
                    "پایان انتظار",
                    "بازنشانی دوره‌ای",
                    "پروتکل‌ها",
                    "گروه‌ها",
                    "پلن بعدی",
                    "یادداشت",
                    "ادمین مالک",
                ],
                never: "نامحدود",
                arrow: "←",
                relative: ["{} مانده", "{} پیش", "امروز"],
                moved: ["{} بیشتر", "{} کمتر"],
            },
            Lang::Zh => Labels {
                unlimited: "无限制",
                duration_units: ["天", "小时", "分钟", "秒"],
                duration_separator: "",
                thousands: ",",
                decimal: ".",
                byte_units: ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"],
                percent: ("", "%"),
                days: ["天", "天", "天"],
                plural: one_or_other,
                statuses: ["活跃", "已禁用", "已限制", "已过期", "待激活"],
                resets: ["不重置", "每天", "每周", "每月", "每年"],
                change_fields: [
                    "状态",
                    "流量限额",
                    "已用流量",
                    "到期时间",
                    "首次连接后时长",
                    "待激活截止",
                    "流量重置",
                    "协议",
                    "分组",
                    "下一套餐",
                    "备注",
                    "所属管理员",
                ],
                never: "永不过期",
                arrow: "→",
                relative: ["剩余{}", "{}前", "今天"],
                moved: ["+{}", "−{}"],
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
            "node_down", "node_recovered", "node_flapping", "node_added", "node_removed", "node_disabled",
            "node_enabled", "core_down", "core_recovered", "panel_unreachable", "panel_recovered",
            "digest/default", "report",
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

/// The built-in forum post titles (`forum/titles.toml`) of `lang`.
pub fn titles(lang: Lang) -> &'static str {
    match lang {
        Lang::En => include_str!("../../templates/en/forum/titles.toml"),
        Lang::Ru => include_str!("../../templates/ru/forum/titles.toml"),
        Lang::Fa => include_str!("../../templates/fa/forum/titles.toml"),
        Lang::Zh => include_str!("../../templates/zh/forum/titles.toml"),
    }
}
