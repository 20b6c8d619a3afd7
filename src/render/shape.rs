//! The shape of one message part, shared by every stage of rendering: the leaves a template file
//! gives (`template::Spec`), the same leaves compiled into the environment, and their
//! rendered text ([`Draft`](super::Draft)). [`Shape::try_map`] turns one stage into the next, so the
//! parts of an embed are listed here and nowhere else.

use std::fmt;

/// Optional `content` and one embed. `T` is what each string is at a stage, `C` the colour and `S`
/// the timestamp.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape<T, C, S> {
    pub content: T,
    pub title: T,
    pub description: T,
    pub url: T,
    pub color: C,
    pub author_name: T,
    pub author_url: T,
    pub author_icon_url: T,
    pub footer_text: T,
    pub footer_icon_url: T,
    pub thumbnail_url: T,
    pub image_url: T,
    pub fields: Vec<Field<T>>,
    pub timestamp: S,
}

/// One embed field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Field<T = String> {
    pub name: T,
    pub value: T,
    pub inline: bool,
}

/// An embed colour before it is rendered: fixed, or a leaf rendering to `#RRGGBB`, `0xRRGGBB` or a
/// decimal number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Color<L> {
    Fixed(u32),
    Template(L),
}

impl<L> Color<L> {
    /// The same colour with its leaf (if any) mapped by `leaf`.
    pub fn try_map<M, E>(&self, leaf: impl FnOnce(&L) -> Result<M, E>) -> Result<Color<M>, E> {
        Ok(match self {
            Color::Fixed(color) => Color::Fixed(*color),
            Color::Template(template) => Color::Template(leaf(template)?),
        })
    }
}

impl<T, C, S> Shape<T, C, S> {
    /// The next stage of this shape: `color` and `timestamp` as given, every string mapped by
    /// `text`, which is told the string's path as a template file spells it (`title`,
    /// `author.name`, `fields[2].value`). Fields come first, then the rest in declaration order, so
    /// the first failing string is always the same one.
    pub fn try_map<U, D, R, E>(
        &self,
        color: D,
        timestamp: R,
        mut text: impl FnMut(fmt::Arguments<'_>, &T) -> Result<U, E>,
    ) -> Result<Shape<U, D, R>, E> {
        let mut fields = Vec::with_capacity(self.fields.len());
        for (i, field) in self.fields.iter().enumerate() {
            fields.push(Field {
                name: text(format_args!("fields[{i}].name"), &field.name)?,
                value: text(format_args!("fields[{i}].value"), &field.value)?,
                inline: field.inline,
            });
        }
        Ok(Shape {
            content: text(format_args!("content"), &self.content)?,
            title: text(format_args!("title"), &self.title)?,
            description: text(format_args!("description"), &self.description)?,
            url: text(format_args!("url"), &self.url)?,
            color,
            author_name: text(format_args!("author.name"), &self.author_name)?,
            author_url: text(format_args!("author.url"), &self.author_url)?,
            author_icon_url: text(format_args!("author.icon_url"), &self.author_icon_url)?,
            footer_text: text(format_args!("footer.text"), &self.footer_text)?,
            footer_icon_url: text(format_args!("footer.icon_url"), &self.footer_icon_url)?,
            thumbnail_url: text(format_args!("thumbnail.url"), &self.thumbnail_url)?,
            image_url: text(format_args!("image.url"), &self.image_url)?,
            fields,
            timestamp,
        })
    }
}
