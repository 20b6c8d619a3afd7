//! A request body as a batch: an array or one object, read element by element, good events kept
//! and bad elements described.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use time::OffsetDateTime;

use super::Event;

/// A request body that is not a batch of events at all.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("body is not valid JSON: {0}")]
    NotJson(#[from] serde_json::Error),
    #[error("body must be a JSON array of events or a single event object, not {0}")]
    NotEventOrBatch(&'static str),
}

/// One element of a batch that could not be turned into an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub index: usize,
    pub error: String,
}

/// The largest element of a batch that is looked at: a real event is a few KiB; a bigger one is
/// rejected unread, so one huge element cannot make the relay build a huge tree.
pub const ELEMENT_MAX_BYTES: usize = 1 << 20;

/// How many rejected elements a [`Batch`] describes; the rest are only counted.
pub const REJECTIONS_SHOWN: usize = 100;

/// A parsed request body: the good events, in order, and what was wrong with the bad elements.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    /// The first [`REJECTIONS_SHOWN`] bad elements.
    pub rejected: Vec<Rejection>,
    /// How many elements were bad in all.
    pub rejected_total: usize,
}

impl Batch {
    fn add(&mut self, index: usize, element: &str, received_at: OffsetDateTime, panel: Option<&str>) {
        let event = if element.len() > ELEMENT_MAX_BYTES {
            Err(format!("element is larger than {ELEMENT_MAX_BYTES} bytes"))
        } else {
            serde_json::from_str::<Value>(element)
                .map_err(|err| format!("element is not valid JSON: {err}"))
                .and_then(|element| Event::from_value(element, received_at, panel))
        };
        match event {
            Ok(event) => self.events.push(event),
            Err(error) => {
                self.rejected_total += 1;
                if self.rejected.len() < REJECTIONS_SHOWN {
                    self.rejected.push(Rejection { index, error });
                }
            }
        }
    }
}

/// Parses a webhook body (an array or a single object) into events. Only a body that is not JSON,
/// or JSON that is neither an array nor an object, fails as a whole.
///
/// An array is read one element at a time, so a body of millions of tiny elements costs memory
/// for the events it holds, not for a tree of the whole body.
pub fn parse_batch(body: &[u8], received_at: OffsetDateTime, panel: Option<&str>) -> Result<Batch, BodyError> {
    let mut batch = Batch::default();
    if body.trim_ascii_start().first() != Some(&b'[') {
        let element: &RawValue = serde_json::from_slice(body)?;
        match element.get().trim_start().as_bytes().first() {
            Some(b'{') => batch.add(0, element.get(), received_at, panel),
            Some(b'"') => return Err(BodyError::NotEventOrBatch("a string")),
            Some(b't' | b'f') => return Err(BodyError::NotEventOrBatch("a boolean")),
            Some(b'n') => return Err(BodyError::NotEventOrBatch("null")),
            _ => return Err(BodyError::NotEventOrBatch("a number")),
        }
        return Ok(batch);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde::Deserializer::deserialize_seq(
        &mut deserializer,
        Elements(|index: usize, element: &str| batch.add(index, element, received_at, panel)),
    )?;
    deserializer.end()?;
    Ok(batch)
}

/// Hands each element of a JSON array to a function as soon as it is parsed.
struct Elements<F>(F);

impl<'de, F: FnMut(usize, &str)> serde::de::Visitor<'de> for Elements<F> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while let Some(element) = seq.next_element::<&RawValue>()? {
            (self.0)(index, element.get());
            index += 1;
        }
        Ok(())
    }
}
