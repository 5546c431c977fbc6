//! Reply parser: completed in its own change.
