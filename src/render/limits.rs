//! Discord's limits on a webhook message, and the clamping that keeps every rendered embed inside
//! them. Lengths are Unicode code points (`chars().count()`), as Discord counts them.

use serenity::model::channel::Embed;

/// `content`.
pub const CONTENT: usize = 2000;
/// Embeds in one message.
pub const EMBEDS_PER_MESSAGE: usize = 10;
/// Title, description, field names and values, footer and author name of all embeds of a message.
pub const MESSAGE_EMBED_CHARS: usize = 6000;
pub const TITLE: usize = 256;
pub const DESCRIPTION: usize = 4096;
pub const FIELDS: usize = 25;
pub const FIELD_NAME: usize = 256;
pub const FIELD_VALUE: usize = 1024;
pub const FOOTER: usize = 2048;
pub const AUTHOR: usize = 256;
pub const URL: usize = 2048;

/// What marks a cut.
const ELLIPSIS: char = '…';

/// Unicode's directional isolates (LRI, RLI, FSI) and their terminator (PDI). A cut must not leave
/// one open, or right-to-left text after it in the same line would be laid out wrongly.
const ISOLATE_OPENERS: [char; 3] = ['\u{2066}', '\u{2067}', '\u{2068}'];
const ISOLATE_CLOSER: char = '\u{2069}';

/// `text` cut to at most `max` code points, ending with an ellipsis when it was cut. Isolates that
/// the cut leaves open are closed, within `max`.
pub fn truncate(text: &str, max: usize) -> String {
    if text.char_indices().nth(max).is_none() {
        return text.to_owned();
    }
    let mut keep = max.saturating_sub(1);
    loop {
        let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
        let cut = text[..end].trim_end();
        let open = open_isolates(cut);
        if chars(cut) + 1 + open <= max || keep == 0 {
            let mut out = String::with_capacity(cut.len() + 4 * (open + 1));
            out.push_str(cut);
            if max > 0 {
                out.push(ELLIPSIS);
            }
            out.extend(std::iter::repeat_n(ISOLATE_CLOSER, open));
            return out;
        }
        keep = max.saturating_sub(1 + open).min(keep.saturating_sub(1));
    }
}

/// How many isolates are opened in `text` and not closed.
fn open_isolates(text: &str) -> usize {
    text.chars().fold(0usize, |open, c| match c {
        c if ISOLATE_OPENERS.contains(&c) => open + 1,
        ISOLATE_CLOSER => open.saturating_sub(1),
        _ => open,
    })
}

/// Code points of `text`.
pub fn chars(text: &str) -> usize {
    text.chars().count()
}

/// The characters an embed counts against the 6000 per message.
pub fn embed_chars(embed: &Embed) -> usize {
    let opt = |s: &Option<String>| s.as_deref().map_or(0, chars);
    opt(&embed.title)
        + opt(&embed.description)
        + embed.fields.iter().map(|f| chars(&f.name) + chars(&f.value)).sum::<usize>()
        + embed.footer.as_ref().map_or(0, |f| chars(&f.text))
        + embed.author.as_ref().map_or(0, |a| chars(&a.name))
}

/// Every way `embed` (with `content`) breaks Discord's limits for a message of its own; empty when
/// Discord would accept it.
pub fn violations(content: Option<&str>, embed: &Embed) -> Vec<String> {
    let mut found = Vec::new();
    let over = |found: &mut Vec<String>, what: &str, len: usize, max: usize| {
        if len > max {
            found.push(format!("{what} has {len} characters, more than Discord's {max}"));
        }
    };
    over(&mut found, "content", content.map_or(0, chars), CONTENT);
    over(&mut found, "title", embed.title.as_deref().map_or(0, chars), TITLE);
    over(&mut found, "description", embed.description.as_deref().map_or(0, chars), DESCRIPTION);
    over(&mut found, "footer", embed.footer.as_ref().map_or(0, |f| chars(&f.text)), FOOTER);
    over(&mut found, "author name", embed.author.as_ref().map_or(0, |a| chars(&a.name)), AUTHOR);
    over(&mut found, "url", embed.url.as_deref().map_or(0, chars), URL);
    over(&mut found, "embed", embed_chars(embed), MESSAGE_EMBED_CHARS);
    if embed.fields.len() > FIELDS {
        found.push(format!("{} fields, more than Discord's {FIELDS}", embed.fields.len()));
    }
    for (i, field) in embed.fields.iter().enumerate() {
        over(&mut found, &format!("field {} name", i + 1), chars(&field.name), FIELD_NAME);
        over(&mut found, &format!("field {} value", i + 1), chars(&field.value), FIELD_VALUE);
        if field.name.trim().is_empty() || field.value.trim().is_empty() {
            found.push(format!("field {} has an empty name or value", i + 1));
        }
    }
    if let Some(colour) = embed.colour {
        if colour.0 > 0xFF_FFFF {
            found.push(format!("colour {:#x} is above 0xFFFFFF", colour.0));
        }
    }
    let visible = embed.title.is_some()
        || embed.description.is_some()
        || !embed.fields.is_empty()
        || embed.author.is_some()
        || embed.footer.is_some()
        || embed.image.is_some()
        || embed.thumbnail.is_some();
    if !visible && content.is_none_or(|c| c.trim().is_empty()) {
        found.push("the message would be empty".to_owned());
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_by_code_points_with_an_ellipsis() {
        assert_eq!(truncate("hello", 5), "hello");
        assert_eq!(truncate("hello!", 5), "hell…");
        assert_eq!(truncate("", 5), "");
        assert_eq!(truncate("abc", 0), "");
        // Multi-byte: Persian, Chinese and emoji count one each.
        let persian = "سلام دنیا".repeat(50);
        let cut = truncate(&persian, 256);
        assert_eq!(chars(&cut), 256);
        assert!(cut.ends_with('…'));
        let emoji = "🚀".repeat(300);
        assert_eq!(chars(&truncate(&emoji, 256)), 256);
        assert_eq!(chars(&truncate(&"汉".repeat(4096), 4096)), 4096);
        assert_eq!(chars(&truncate(&"汉".repeat(4097), 4096)), 4096);
    }

    #[test]
    fn a_cut_closes_the_isolates_it_leaves_open() {
        // Persian text with a Latin username isolated in the middle, cut inside the isolate.
        let text = format!("کاربر \u{2068}{}\u{2069} منقضی شد", "user_name_".repeat(30));
        for max in [10, 50, 100, 256] {
            let cut = truncate(&text, max);
            assert!(chars(&cut) <= max, "{max}: {}", chars(&cut));
            assert_eq!(open_isolates(&cut), 0, "{max}: {cut}");
            assert!(cut.ends_with("…\u{2069}"), "{max}: {cut}");
        }
        // Closed isolates cost nothing extra.
        let closed = format!("\u{2068}ab\u{2069}{}", "ت".repeat(300));
        assert_eq!(chars(&truncate(&closed, 256)), 256);
        assert_eq!(open_isolates(&truncate(&closed, 256)), 0);
    }

    #[test]
    fn a_cut_never_ends_in_whitespace_before_the_ellipsis() {
        assert_eq!(truncate("ab  cdef", 4), "ab…");
    }
}
