//! The sets value type. Placeholder: filled in by the sets work (issue 3).

#[derive(Clone, Debug, PartialEq, Default)]
pub struct SetValue {}

impl SetValue {
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        "intset"
    }
}
