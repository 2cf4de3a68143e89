//! Splits query text into tokens with their byte spans.

use super::error::QueryError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// `[A-Za-z0-9_.-]+`: attribute names, keywords, bare values.
    Word,
    /// A double-quoted string, unescaped.
    Quoted(String),
    /// A run of `=<>!` characters such as `>=` (maybe invalid, like `>==`;
    /// the parser says why).
    Op,
    Not,
    And,
    Or,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Colon,
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub kind: Tok,
    pub start: usize,
    pub end: usize,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

fn is_op_byte(b: u8) -> bool {
    matches!(b, b'=' | b'<' | b'>' | b'!')
}

/// Tokenizes all of `text`; the last token is always [`Tok::End`].
pub(crate) fn lex(text: &str) -> Result<Vec<Token>, QueryError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let kind = match b {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => single(&mut i, Tok::LParen),
            b')' => single(&mut i, Tok::RParen),
            b'[' => single(&mut i, Tok::LBracket),
            b']' => single(&mut i, Tok::RBracket),
            b',' => single(&mut i, Tok::Comma),
            b':' => single(&mut i, Tok::Colon),
            b'&' | b'|' => {
                if bytes.get(i + 1) != Some(&b) {
                    let double = if b == b'&' { "&&" } else { "||" };
                    return Err(QueryError::new(
                        i,
                        &text[i..i + 1],
                        format!("expected `{double}`"),
                    ));
                }
                i += 2;
                if b == b'&' { Tok::And } else { Tok::Or }
            }
            // `!` alone negates; `!=` (and longer runs) is an operator.
            b'!' if bytes.get(i + 1) != Some(&b'=') => single(&mut i, Tok::Not),
            b if is_op_byte(b) => {
                while i < bytes.len() && is_op_byte(bytes[i]) {
                    i += 1;
                }
                Tok::Op
            }
            b'"' => Tok::Quoted(quoted(text, &mut i)?),
            b if is_word_byte(b) => {
                while i < bytes.len() && is_word_byte(bytes[i]) {
                    i += 1;
                }
                Tok::Word
            }
            _ => {
                let c = text[i..].chars().next().unwrap_or('?');
                return Err(QueryError::new(
                    i,
                    &c.to_string(),
                    "unexpected character; values with spaces or symbols need double quotes",
                ));
            }
        };
        tokens.push(Token {
            kind,
            start,
            end: i,
        });
    }
    tokens.push(Token {
        kind: Tok::End,
        start: text.len(),
        end: text.len(),
    });
    Ok(tokens)
}

fn single(i: &mut usize, kind: Tok) -> Tok {
    *i += 1;
    kind
}

/// Reads a string starting at the opening quote at `*i`; `\"` and `\\` are
/// the only escapes.
fn quoted(text: &str, i: &mut usize) -> Result<String, QueryError> {
    let start = *i;
    let mut out = String::new();
    let mut chars = text[start + 1..].char_indices();
    while let Some((offset, c)) = chars.next() {
        match c {
            '"' => {
                *i = start + 1 + offset + 1;
                return Ok(out);
            }
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                Some((at, other)) => {
                    let pos = start + 1 + at - 1;
                    return Err(QueryError::new(
                        pos,
                        &format!("\\{other}"),
                        "unknown escape; only \\\" and \\\\ are allowed",
                    ));
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(QueryError::new(start, "\"", "unterminated string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Tok, &str)> {
        lex(text)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, &text[t.start..t.end]))
            .collect()
    }

    #[test]
    fn splits_comparisons_and_connectives() {
        assert_eq!(
            kinds("cores>=4&&!tag:gpu"),
            vec![
                (Tok::Word, "cores"),
                (Tok::Op, ">="),
                (Tok::Word, "4"),
                (Tok::And, "&&"),
                (Tok::Not, "!"),
                (Tok::Word, "tag"),
                (Tok::Colon, ":"),
                (Tok::Word, "gpu"),
                (Tok::End, ""),
            ]
        );
    }

    #[test]
    fn operator_runs_stay_together() {
        assert_eq!(kinds("a>==b")[1], (Tok::Op, ">=="));
        assert_eq!(kinds("a != b")[1], (Tok::Op, "!="));
        assert_eq!(kinds("!!a")[..2], [(Tok::Not, "!"), (Tok::Not, "!")]);
    }

    #[test]
    fn quoted_strings_unescape() {
        let toks = lex(r#"os=="Debian \"12\" \\ x""#).unwrap();
        assert_eq!(toks[2].kind, Tok::Quoted(r#"Debian "12" \ x"#.into()));
        assert_eq!(toks[3].kind, Tok::End);
    }

    #[test]
    fn errors_point_at_the_bad_character() {
        let e = lex("cores>4 & x").unwrap_err();
        assert_eq!((e.position, e.token.as_str()), (8, "&"));
        let e = lex("a==\"open").unwrap_err();
        assert_eq!((e.position, e.message.as_str()), (3, "unterminated string"));
        let e = lex("a==\"x\\n\"").unwrap_err();
        assert_eq!((e.position, e.token.as_str()), (5, "\\n"));
        let e = lex("name==é").unwrap_err();
        assert_eq!((e.position, e.token.as_str()), (6, "é"));
    }
}
