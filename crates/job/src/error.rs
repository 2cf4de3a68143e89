//! The one error type of job descriptions: what is wrong, and with which
//! field.

use std::fmt;

/// Why a job description (or a job id, size, duration, signal) was refused.
///
/// `field` is a dotted path into the description as the user wrote it:
/// `resources.cores`, `env.FOO`, `args[3]`, `checkpoint.files[0]`; for JSDL
/// it is the element path, e.g. `JobDescription/Resources/FileSystem`. It is
/// empty for errors about the document as a whole (a TOML syntax error, a
/// document that is too large).
///
/// Displayed as `{field}: {message}`, or just `{message}` when `field` is
/// empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

/// Values quoted in messages are cut to this many characters, so that
/// hostile input cannot make a huge error message.
const QUOTED_CHARS_MAX: usize = 60;

impl SpecError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> SpecError {
        SpecError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error about `field` (used when a helper that does not know
    /// where its input came from, such as [`crate::parse_size`], fails).
    pub fn at(mut self, field: impl Into<String>) -> SpecError {
        self.field = field.into();
        self
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// `text` quoted for an error message (Debug escaping, cut when long).
pub(crate) fn quote(text: &str) -> String {
    if text.chars().count() <= QUOTED_CHARS_MAX {
        format!("{text:?}")
    } else {
        let cut: String = text.chars().take(QUOTED_CHARS_MAX).collect();
        format!("{cut:?}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_field_unless_document_level() {
        let e = SpecError::new("resources.cores", "must be a positive integer");
        assert_eq!(e.to_string(), "resources.cores: must be a positive integer");
        let e = SpecError::new("", "document is empty");
        assert_eq!(e.to_string(), "document is empty");
        assert_eq!(e.at("name").to_string(), "name: document is empty");
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let long = "x".repeat(500);
        assert!(quote(&long).len() < 80);
        assert!(quote(&long).ends_with("..."));
    }
}
