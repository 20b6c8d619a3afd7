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

/// `text` cut to at most `max` code points, ending with an ellipsis when it was cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) if max == 0 => String::new(),
        Some(_) => {
            let keep = text
                .char_indices()
                .nth(max - 1)
                .map_or(text.len(), |(i, _)| i);
            let mut cut = text[..keep].trim_end().to_owned();
            cut.push(ELLIPSIS);
            cut
        }
    }
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
        + embed
            .fields
            .iter()
            .map(|f| chars(&f.name) + chars(&f.value))
            .sum::<usize>()
        + embed.footer.as_ref().map_or(0, |f| chars(&f.text))
        + embed.author.as_ref().map_or(0, |a| chars(&a.name))
}

/// Every way `embed` (with `content`) breaks Discord's limits for a message of its own; empty when
/// Discord would accept it.
pub fn violations(content: Option<&str>, embed: &Embed) -> Vec<String> {
    let mut found = Vec::new();
    let over = |found: &mut Vec<String>, what: &str, len: usize, max: usize| {
        if len > max {
            found.push(format!(
                "{what} has {len} characters, more than Discord's {max}"
            ));
        }
    };
    over(&mut found, "content", content.map_or(0, chars), CONTENT);
    over(
        &mut found,
        "title",
        embed.title.as_deref().map_or(0, chars),
        TITLE,
    );
    over(
        &mut found,
        "description",
        embed.description.as_deref().map_or(0, chars),
        DESCRIPTION,
    );
    over(
        &mut found,
        "footer",
        embed.footer.as_ref().map_or(0, |f| chars(&f.text)),
        FOOTER,
    );
    over(
        &mut found,
        "author name",
        embed.author.as_ref().map_or(0, |a| chars(&a.name)),
        AUTHOR,
    );
    over(
        &mut found,
        "url",
        embed.url.as_deref().map_or(0, chars),
        URL,
    );
    over(&mut found, "embed", embed_chars(embed), MESSAGE_EMBED_CHARS);
    if embed.fields.len() > FIELDS {
        found.push(format!(
            "{} fields, more than Discord's {FIELDS}",
            embed.fields.len()
        ));
    }
    for (i, field) in embed.fields.iter().enumerate() {
        over(
            &mut found,
            &format!("field {} name", i + 1),
            chars(&field.name),
            FIELD_NAME,
        );
        over(
            &mut found,
            &format!("field {} value", i + 1),
            chars(&field.value),
            FIELD_VALUE,
        );
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
    fn a_cut_never_ends_in_whitespace_before_the_ellipsis() {
        assert_eq!(truncate("ab  cdef", 4), "ab…");
    }
}
