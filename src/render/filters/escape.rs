//! Making panel text inert in Discord: markdown escaping, stripping the characters that hide or
//! reorder text, and the filters that choose how text is printed (`md`, `raw`, `truncate`).

use minijinja::value::Value;
use minijinja::Error;

use super::undefined_check;
use crate::render::limits;

/// Makes panel text inert in Discord: drops the characters that hide or reorder text (see
/// [`strip_invisible`]) and escapes markdown so it shows as written: no bold, links, headings,
/// lists, quotes, mentions (`@everyone`, `<@&1>`), custom emoji or timestamps made from it.
pub fn escape_markdown(text: &str) -> String {
    let chars = strip_invisible(text);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut line_start = true;
    // Only ASCII digits since the start of the line (after its indentation): `1. ` would be a list.
    let mut list_number = false;
    for (i, &ch) in chars.iter().enumerate() {
        // At the very start too: the template may have put the digits just before the value.
        let list_dot = ch == '.'
            && (list_number || (i == 0 && line_start))
            && chars.get(i + 1).is_none_or(|next| next.is_whitespace());
        let special = matches!(ch, '\\' | '*' | '_' | '~' | '`' | '|' | '[' | ']' | '<' | '>' | '@' | '#')
            || (line_start && matches!(ch, '-' | '+'))
            || list_dot;
        if special {
            out.push('\\');
        }
        out.push(ch);
        list_number = ch.is_ascii_digit() && (line_start || list_number);
        line_start = ch == '\n' || (line_start && ch.is_whitespace());
    }
    out
}

/// `text` without the characters that make what Discord shows differ from what was sent:
///
/// * control characters (C0, DEL, C1) other than newline and tab; U+2028 and U+2029 become
///   newlines, so that the line-start escapes see them;
/// * bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069): an override
///   in a username would reverse the text around it. The isolates the relay wraps values in for
///   right-to-left templates are added after this, so they stay;
/// * invisible characters (U+200B, U+2060–U+2064, U+FEFF, U+206A–U+206F), and the ones that
///   draw as nothing though they are not format characters: the soft hyphen (U+00AD), the
///   combining grapheme joiner (U+034F), the Hangul fillers (U+115F, U+1160, U+3164, U+FFA0), the
///   Khmer inherent vowels (U+17B4, U+17B5), the Mongolian vowel separator (U+180E), interlinear
///   annotation marks (U+FFF9–U+FFFB) and musical formatting (U+1D173–U+1D17A). A name made of
///   Hangul fillers would otherwise show as blank;
/// * tag characters (U+E0000–U+E007F), except a run right after a black flag (U+1F3F4) that
///   spells a subdivision flag (🏴󠁧󠁢󠁳󠁣󠁴󠁿): any other run, there too, is hidden text;
/// * zero-width (non-)joiners (U+200C, U+200D), except between two non-ASCII visible characters,
///   where they carry meaning: Persian words (`می‌خواهم`), emoji sequences (`👨‍👩‍👧`). Between
///   Latin letters they only disguise a name.
pub fn strip_invisible(text: &str) -> Vec<char> {
    let chars: Vec<char> = text.chars().collect();
    let mut kept: Vec<char> = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        if is_tag(ch) || is_hidden(ch) {
            continue;
        }
        kept.push(if matches!(ch, '\u{2028}' | '\u{2029}') { '\n' } else { ch });
        if ch == '\u{1F3F4}' {
            // The run ends at its cancel tag: a tag after that is no part of the flag.
            let tags = chars[i..].iter().take_while(|&&c| is_tag(c));
            let run = tags.clone().position(|&c| c == '\u{E007F}').map_or_else(|| tags.count(), |end| end + 1);
            if is_subdivision(&chars[i..i + run]) {
                kept.extend_from_slice(&chars[i..i + run]);
            }
            i += run;
        }
    }
    let joins = |ch: Option<&char>| ch.is_some_and(|&ch| !ch.is_ascii() && !ch.is_whitespace() && !is_joiner(ch));
    kept.iter()
        .enumerate()
        .filter(|&(i, &ch)| !is_joiner(ch) || (i > 0 && joins(kept.get(i - 1)) && joins(kept.get(i + 1))))
        .map(|(_, &ch)| ch)
        .collect()
}

/// Whether `ch` draws as blank space: whitespace, a control character, or the Braille blank
/// (U+2800), which Unicode does not count as whitespace but which draws as nothing: the usual way
/// to make a name look empty on Discord.
pub fn is_blank(ch: char) -> bool {
    ch.is_whitespace() || ch.is_control() || ch == '\u{2800}'
}

/// Whether `text` shows nothing: once hidden characters (and the isolates the relay adds) are
/// stripped, only blanks ([`is_blank`]) are left. Report lists and forum titles both ask this.
pub fn shows_nothing(text: &str) -> bool {
    strip_invisible(text).into_iter().all(is_blank)
}

fn is_tag(ch: char) -> bool {
    matches!(ch, '\u{E0000}'..='\u{E007F}')
}

/// Whether `tags` (the tag characters after a black flag) spell a subdivision, as in 🏴󠁧󠁢󠁳󠁣󠁴󠁿:
/// a region's two letters, one to four letters or digits, and the cancel tag (Unicode's
/// emoji_tag_sequence). Any other run is text no one sees.
fn is_subdivision(tags: &[char]) -> bool {
    let Some((&'\u{E007F}', spec)) = tags.split_last() else { return false };
    let letter = |c: &char| matches!(c, '\u{E0061}'..='\u{E007A}');
    let alphanumeric = |c: &char| letter(c) || matches!(c, '\u{E0030}'..='\u{E0039}');
    (3..=6).contains(&spec.len()) && spec[..2].iter().all(letter) && spec[2..].iter().all(alphanumeric)
}

/// Characters dropped from panel text wherever they are (see [`strip_invisible`]).
fn is_hidden(ch: char) -> bool {
    (ch.is_control() && !matches!(ch, '\n' | '\t'))
        || matches!(
            ch,
            '\u{061C}'
                | '\u{200B}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{00AD}'
                | '\u{034F}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180E}'
                | '\u{3164}'
                | '\u{FFA0}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
        )
}

/// ZERO WIDTH NON-JOINER and ZERO WIDTH JOINER.
fn is_joiner(ch: char) -> bool {
    matches!(ch, '\u{200C}' | '\u{200D}')
}

/// `{{ user.note | truncate(100) }}`: at most `length` characters (code points), ending with `…`
/// when cut. Still escaped when printed.
pub fn truncate(value: &Value, length: usize) -> Result<Value, Error> {
    undefined_check(value)?;
    if value.is_none() {
        return Ok(Value::from(""));
    }
    Ok(Value::from(limits::truncate(&value.to_string(), length)))
}

/// `{{ user.note | md }}`: escaped for Discord markdown now (and not again when printed).
pub fn md(value: &Value) -> Result<Value, Error> {
    undefined_check(value)?;
    if value.is_none() {
        return Ok(Value::from_safe_string(String::new()));
    }
    Ok(Value::from_safe_string(escape_markdown(&value.to_string())))
}

/// `{{ user.note | raw }}`: printed with its markdown working, but still without the control,
/// bidirectional and invisible characters [`strip_invisible`] drops (`safe` keeps even those).
pub fn raw(value: &Value) -> Result<Value, Error> {
    undefined_check(value)?;
    if value.is_none() {
        return Ok(Value::from_safe_string(String::new()));
    }
    Ok(Value::from_safe_string(strip_invisible(&value.to_string()).into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markdown_and_mentions() {
        assert_eq!(escape_markdown("**bold** _x_ `c`"), r"\*\*bold\*\* \_x\_ \`c\`");
        assert_eq!(escape_markdown("@everyone <@&1>"), r"\@everyone \<\@&1\>");
        assert_eq!(escape_markdown("[link](http://x)"), r"\[link\](http://x)");
        assert_eq!(escape_markdown("# head\n- item\n> quote"), "\\# head\n\\- item\n\\> quote");
        assert_eq!(escape_markdown("a-b"), "a-b");
        assert_eq!(escape_markdown("ünïcødé 🚀"), "ünïcødé 🚀");
    }

    #[test]
    fn escapes_what_would_become_markdown_structure_at_the_start_of_a_line() {
        assert_eq!(escape_markdown("1. first"), r"1\. first");
        assert_eq!(escape_markdown("note:\n  42. item\n1.5 GiB\nv1. x"), "note:\n  42\\. item\n1.5 GiB\nv1. x");
        assert_eq!(escape_markdown("7."), r"7\.");
        assert_eq!(escape_markdown("- a\n* b\n> c\n# d\n## e\n-# f\n+ g\n>>> h"), {
            "\\- a\n\\* b\n\\> c\n\\# d\n\\#\\# e\n\\-\\# f\n\\+ g\n\\>\\>\\> h"
        });
        assert_eq!(escape_markdown("a 1. b"), "a 1. b");
        assert_eq!(escape_markdown(". after the template's digits"), r"\. after the template's digits");
    }

    #[test]
    fn drops_bidi_overrides_and_control_and_invisible_characters() {
        // U+202E would show "admin\u{202E}gpj.exe" as "adminexe.jpg".
        assert_eq!(escape_markdown("admin\u{202E}gpj.exe"), "admingpj.exe");
        for bidi in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'] {
            assert_eq!(escape_markdown(&format!("a{bidi}b")), "ab", "U+{:04X}", bidi as u32);
        }
        for hidden in ['\u{200B}', '\u{200E}', '\u{200F}', '\u{2060}', '\u{FEFF}', '\u{061C}'] {
            assert_eq!(escape_markdown(&format!("a{hidden}b")), "ab", "U+{:04X}", hidden as u32);
        }
        for blank in ['\u{00AD}', '\u{034F}', '\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}', '\u{180E}', '\u{E0041}'] {
            assert_eq!(escape_markdown(&format!("a{blank}{blank}b")), "ab", "U+{:04X}", blank as u32);
        }
        // After a black flag, only a subdivision's tags stay: no hidden text rides on the flag.
        let tags = |text: &str| text.chars().map(|c| char::from_u32(c as u32 + 0xE0000).unwrap()).collect::<String>();
        let smuggled = format!("\u{1F3F4}{}\u{E007F}", tags("ignore the admins"));
        assert_eq!(escape_markdown(&format!("bob{smuggled}")), "bob\u{1F3F4}");
        assert_eq!(escape_markdown(&format!("bob\u{1F3F4}{}x", tags("gbsct"))), "bob\u{1F3F4}x", "not ended");
        assert_eq!(escape_markdown(&format!("\u{1F3F4}{}\u{E007F}", tags("gbsctland"))), "\u{1F3F4}", "too long");
        // A name of Hangul fillers is empty, not a blank that looks like a name.
        assert_eq!(escape_markdown("\u{3164}\u{3164}"), "");
        // Tag characters spell a subdivision flag after a black flag, and only there.
        let scotland = "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}";
        assert_eq!(escape_markdown(&format!("{scotland} fan")), format!("{scotland} fan"));
        assert_eq!(escape_markdown("x\u{E0067}\u{E0062}\u{E007F}"), "x");
        assert_eq!(escape_markdown(&format!("{scotland}\u{E0067}")), scotland);
        assert_eq!(escape_markdown("bob\0\x1b[31mred\x07\u{85}\u{9b}\r\nnext\tcol"), "bob\\[31mred\nnext\tcol");
        assert_eq!(escape_markdown("line\u{2028}- item"), "line\n\\- item");
        // A control character cannot hide a line start from the list escape either.
        assert_eq!(escape_markdown("x\n\x001. y"), "x\n1\\. y");
    }

    #[test]
    fn keeps_joiners_only_where_they_join_non_latin_text() {
        assert_eq!(escape_markdown("می\u{200C}خواهم"), "می\u{200C}خواهم");
        assert_eq!(escape_markdown("👨\u{200D}👩\u{200D}👧"), "👨\u{200D}👩\u{200D}👧");
        assert_eq!(escape_markdown("❤\u{FE0F}\u{200D}🔥"), "❤\u{FE0F}\u{200D}🔥");
        assert_eq!(escape_markdown("ad\u{200D}min"), "admin");
        assert_eq!(escape_markdown("\u{200C}سلام\u{200C}"), "سلام");
        assert_eq!(escape_markdown("م\u{200C}\u{200C}ی"), "می");
    }

    #[test]
    fn raw_keeps_markdown_but_not_hidden_characters() {
        assert_eq!(raw(&Value::from("**x**\u{202E}\0")).unwrap().to_string(), "**x**");
    }

    #[test]
    fn truncates_by_code_points() {
        assert_eq!(truncate(&Value::from("ünïcødé 🚀 text"), 9).unwrap().to_string(), "ünïcødé…");
        assert_eq!(truncate(&Value::from("short"), 10).unwrap().to_string(), "short");
        assert!(!truncate(&Value::from("**x**"), 10).unwrap().is_safe(), "still escaped when printed");
    }

    #[test]
    fn md_escapes_and_raw_does_not() {
        let md = md(&Value::from("**x** @everyone")).unwrap();
        assert!(md.is_safe());
        assert_eq!(md.to_string(), r"\*\*x\*\* \@everyone");
        let raw = raw(&Value::from("**x**")).unwrap();
        assert!(raw.is_safe());
        assert_eq!(raw.to_string(), "**x**");
    }
}
