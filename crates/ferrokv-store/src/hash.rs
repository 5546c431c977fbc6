//! The hashes value type. Placeholder: filled in by the hashes work (issue 3).

#[derive(Clone, Debug, PartialEq, Default)]
pub struct HashValue {}

impl HashValue {
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }
}
