//! Parse errors of the query language, pointing at the offending token.

use std::fmt;

/// Why a query was refused, and where. `position` is a byte offset into the
/// query text; `token` is the text found there (empty at the end).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct QueryError {
    pub position: usize,
    pub token: String,
    pub message: String,
}

/// Tokens are shown at most this long, so hostile input cannot make a huge
/// error message.
const TOKEN_CHARS_SHOWN: usize = 40;

impl QueryError {
    pub(crate) fn new(position: usize, token: &str, message: impl Into<String>) -> Self {
        QueryError {
            position,
            token: token.chars().take(TOKEN_CHARS_SHOWN).collect(),
            message: message.into(),
        }
    }

    /// Two lines for a terminal: the query, then carets under the token
    /// followed by the message, e.g.
    ///
    /// ```text
    /// cores>=4 && mem>==8GiB
    ///                ^^^ expected a value after `>=`
    /// ```
    ///
    /// Control characters in `text` are shown as spaces so that the carets
    /// stay aligned.
    pub fn render(&self, text: &str) -> String {
        let shown: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let before = text
            .get(..self.position.min(text.len()))
            .map_or(0, |prefix| prefix.chars().count());
        let carets = self.token.chars().count().max(1);
        format!(
            "{shown}\n{}{} {}",
            " ".repeat(before),
            "^".repeat(carets),
            self.message
        )
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.token.is_empty() {
            write!(f, "at {} (end of query): {}", self.position, self.message)
        } else {
            write!(
                f,
                "at {} (`{}`): {}",
                self.position, self.token, self.message
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_position_and_token() {
        let e = QueryError::new(15, ">==", "expected a value after `>=`");
        assert_eq!(e.to_string(), "at 15 (`>==`): expected a value after `>=`");
        let e = QueryError::new(8, "", "expected a value after `>=`");
        assert_eq!(
            e.to_string(),
            "at 8 (end of query): expected a value after `>=`"
        );
    }

    #[test]
    fn render_puts_carets_under_the_token() {
        let text = "cores>=4 && mem>==8GiB";
        let e = QueryError::new(15, ">==", "expected a value after `>=`");
        assert_eq!(
            e.render(text),
            "cores>=4 && mem>==8GiB\n               ^^^ expected a value after `>=`"
        );
    }

    #[test]
    fn render_counts_characters_not_bytes_and_survives_bad_positions() {
        let e = QueryError::new(4, "x", "m");
        assert_eq!(e.render("é=\tx"), "é= x\n   ^ m");
        // A position inside a character or past the end must not panic.
        let e = QueryError::new(1, "", "m");
        assert_eq!(e.render("é"), "é\n^ m");
        let e = QueryError::new(99, "", "m");
        assert_eq!(e.render("ab"), "ab\n  ^ m");
    }
}
