//! The sorted sets value type. Placeholder: filled in by the sorted sets work (issue 3).

#[derive(Clone, Debug, PartialEq, Default)]
pub struct ZSetValue {}

impl ZSetValue {
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }
}
