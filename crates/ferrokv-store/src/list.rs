//! The lists value type. Placeholder: filled in by the lists work (issue 3).

#[derive(Clone, Debug, PartialEq, Default)]
pub struct ListValue {}

impl ListValue {
    /// The name OBJECT ENCODING reports.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }
}
