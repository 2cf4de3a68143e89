//! Recursive-descent parser from tokens to [`Expr`] plus the trailing
//! `sort` and `limit` clauses. Depth is bounded so hostile input cannot
//! overflow the stack.

use super::MAX_QUERY_BYTES;
use super::SortKey;
use super::ast::{Cmp, Expr};
use super::attribute::{Attribute, AttributeKind, NumberError, parse_number, unit_list};
use super::error::QueryError;
use super::lexer::{Tok, Token, lex};

/// Deepest nesting of `(` and `!` accepted.
pub const MAX_QUERY_DEPTH: usize = 64;

pub(crate) struct Parsed {
    pub expr: Expr,
    pub sort: Vec<SortKey>,
    pub limit: Option<usize>,
}

pub(crate) fn parse(text: &str) -> Result<Parsed, QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryError::new(
            MAX_QUERY_BYTES,
            "",
            format!(
                "query is {} bytes, longer than {MAX_QUERY_BYTES}",
                text.len()
            ),
        ));
    }
    let mut parser = Parser {
        text,
        tokens: lex(text)?,
        at: 0,
        depth: 0,
    };
    parser.query()
}

struct Parser<'t> {
    text: &'t str,
    /// Never empty: the lexer always ends it with `Tok::End`.
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
}

/// A value as written: a bare word or a quoted string.
struct Value {
    text: String,
    quoted: bool,
    token: Token,
}

impl<'t> Parser<'t> {
    fn peek(&self) -> &Token {
        &self.tokens[self.at.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != Tok::End {
            self.at += 1;
        }
        token
    }

    fn source(&self, token: &Token) -> &'t str {
        self.text.get(token.start..token.end).unwrap_or("")
    }

    fn error(&self, token: &Token, message: impl Into<String>) -> QueryError {
        QueryError::new(token.start, self.source(token), message)
    }

    fn peek_word(&self) -> Option<&'t str> {
        let token = self.peek();
        (token.kind == Tok::Word).then(|| self.source(token))
    }

    fn at_clause_or_end(&self) -> bool {
        self.peek().kind == Tok::End || matches!(self.peek_word(), Some("sort" | "limit"))
    }

    fn query(&mut self) -> Result<Parsed, QueryError> {
        let expr = if self.at_clause_or_end() {
            Expr::True
        } else {
            self.or()?
        };
        let mut sort = None;
        let mut limit = None;
        loop {
            let token = self.peek().clone();
            match (token.kind.clone(), self.peek_word()) {
                (Tok::End, _) => break,
                (_, Some("sort")) if sort.is_none() => sort = Some(self.sort_clause()?),
                (_, Some("limit")) if limit.is_none() => limit = Some(self.limit_clause()?),
                (_, Some(clause @ ("sort" | "limit"))) => {
                    return Err(self.error(&token, format!("`{clause}` given twice")));
                }
                (Tok::RParen, _) => {
                    return Err(self.error(&token, "unbalanced `)`"));
                }
                _ => {
                    return Err(self.error(
                        &token,
                        "unexpected text; expected `&&`, `||`, `sort`, `limit` or the end of the query",
                    ));
                }
            }
        }
        Ok(Parsed {
            expr,
            sort: sort.unwrap_or_default(),
            limit,
        })
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut terms = vec![self.and()?];
        while self.peek().kind == Tok::Or {
            self.next();
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut terms = Vec::new();
        loop {
            // Flattened so that `named_sites` and summaries see one level.
            match self.unary()? {
                Expr::And(inner) => terms.extend(inner),
                term => terms.push(term),
            }
            if self.peek().kind != Tok::And {
                break;
            }
            self.next();
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn enter(&mut self, token: &Token) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_QUERY_DEPTH {
            return Err(self.error(
                token,
                format!("nesting deeper than {MAX_QUERY_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        let token = self.peek().clone();
        match token.kind {
            Tok::Not => {
                self.enter(&token)?;
                self.next();
                let inner = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(inner)))
            }
            Tok::LParen => {
                self.enter(&token)?;
                self.next();
                let inner = self.or()?;
                let close = self.next();
                if close.kind != Tok::RParen {
                    return Err(self.error(
                        &close,
                        format!("expected `)` to close the `(` at {}", token.start),
                    ));
                }
                self.depth -= 1;
                Ok(inner)
            }
            Tok::Word => {
                self.next();
                self.atom(&token)
            }
            _ => Err(self.error(
                &token,
                "expected a condition such as `cores>=4`, `tag:gpu`, `!` or `(`",
            )),
        }
    }

    fn atom(&mut self, word: &Token) -> Result<Expr, QueryError> {
        let name = self.source(word);
        if self.peek().kind == Tok::Colon {
            self.next();
            return self.selector(word, name);
        }
        let Some(attr) = Attribute::from_name(name) else {
            return Err(self.error(
                word,
                format!(
                    "unknown attribute; known attributes: {}; or use tag:, label:, vo:, service:, role:",
                    Attribute::known_list()
                ),
            ));
        };
        let op = self.next();
        match op.kind {
            Tok::Op => {
                let cmp = self.operator(&op)?;
                let value =
                    self.value(&format!("expected a value after `{}`", self.source(&op)))?;
                self.comparison(attr, cmp, &op, value)
            }
            Tok::Word if self.source(&op) == "in" => self.in_list(attr),
            _ => Err(self.error(
                &op,
                format!("expected an operator (==, !=, <, <=, >, >=) or `in` after `{name}`"),
            )),
        }
    }

    fn operator(&self, op: &Token) -> Result<Cmp, QueryError> {
        let text = self.source(op);
        if let Some(cmp) = Cmp::from_op(text) {
            return Ok(cmp);
        }
        let message = match text {
            "=>" => "unknown operator; did you mean `>=`?".to_owned(),
            "=<" => "unknown operator; did you mean `<=`?".to_owned(),
            // `>==` is most likely `>=` followed by a stray character.
            _ => match [2, 1]
                .into_iter()
                .filter_map(|n| text.get(..n))
                .find(|prefix| Cmp::from_op(prefix).is_some())
            {
                Some(prefix) => format!("expected a value after `{prefix}`"),
                None => "unknown operator; use ==, !=, <, <=, >, >=".to_owned(),
            },
        };
        Err(self.error(op, message))
    }

    fn value(&mut self, missing: &str) -> Result<Value, QueryError> {
        let token = self.peek().clone();
        let (text, quoted) = match &token.kind {
            Tok::Word => (self.source(&token).to_owned(), false),
            Tok::Quoted(s) => (s.clone(), true),
            _ => return Err(self.error(&token, missing)),
        };
        self.next();
        Ok(Value {
            text,
            quoted,
            token,
        })
    }

    fn comparison(
        &self,
        attr: Attribute,
        cmp: Cmp,
        op: &Token,
        value: Value,
    ) -> Result<Expr, QueryError> {
        if attr.kind() == AttributeKind::Text {
            let text = self.text_value(attr, value)?;
            let is = Expr::TextIn {
                attr,
                values: vec![text],
            };
            return match cmp {
                Cmp::Eq => Ok(is),
                Cmp::Ne => Ok(Expr::Not(Box::new(is))),
                _ => Err(self.error(
                    op,
                    format!("`{attr}` is text; compare it with ==, != or in"),
                )),
            };
        }
        Ok(Expr::Number {
            attr,
            cmp,
            value: self.number_value(attr, &value)?,
        })
    }

    fn number_value(&self, attr: Attribute, value: &Value) -> Result<f64, QueryError> {
        let fail = |message: String| Err(self.error(&value.token, message));
        if value.quoted {
            return fail(format!(
                "`{attr}` is numeric; a quoted string cannot be compared with it"
            ));
        }
        match parse_number(&value.text, attr.kind()) {
            // Load and free cores are stored as f32; rounding the bound the
            // same way makes `load<=0.7` hold for a load of 0.7.
            Ok(n) if matches!(attr, Attribute::Load | Attribute::FreeCores) => Ok(n as f32 as f64),
            Ok(n) => Ok(n),
            Err(NumberError::NotANumber) => {
                fail(format!("`{attr}` is numeric and this is not a number"))
            }
            Err(NumberError::UnitNotAllowed(unit)) => fail(format!(
                "size unit `{unit}` on `{attr}`, which is not a size"
            )),
            Err(NumberError::UnknownUnit(unit)) => fail(format!(
                "unknown size unit `{unit}`; use one of {}",
                unit_list()
            )),
        }
    }

    fn text_value(&self, attr: Attribute, value: Value) -> Result<String, QueryError> {
        if attr == Attribute::State && !matches!(value.text.as_str(), "alive" | "dead") {
            return Err(self.error(&value.token, "`state` is `alive` or `dead`"));
        }
        Ok(value.text)
    }

    fn in_list(&mut self, attr: Attribute) -> Result<Expr, QueryError> {
        let open = self.next();
        if open.kind != Tok::LBracket {
            return Err(self.error(&open, "expected `[` after `in`"));
        }
        let mut texts = Vec::new();
        let mut numbers = Vec::new();
        if self.peek().kind == Tok::RBracket {
            self.next();
        } else {
            loop {
                let value = self.value("expected a value in the list")?;
                if attr.kind() == AttributeKind::Text {
                    texts.push(self.text_value(attr, value)?);
                } else {
                    numbers.push(self.number_value(attr, &value)?);
                }
                let sep = self.next();
                match sep.kind {
                    Tok::Comma => continue,
                    Tok::RBracket => break,
                    _ => {
                        return Err(self.error(
                            &sep,
                            format!("expected `,` or `]` to close the `[` at {}", open.start),
                        ));
                    }
                }
            }
        }
        Ok(if attr.kind() == AttributeKind::Text {
            Expr::TextIn {
                attr,
                values: texts,
            }
        } else {
            Expr::NumberIn {
                attr,
                values: numbers,
            }
        })
    }

    fn selector(&mut self, word: &Token, kind: &str) -> Result<Expr, QueryError> {
        if !matches!(kind, "tag" | "label" | "vo" | "service" | "role") {
            return Err(self.error(
                word,
                "unknown selector; use tag:, label:, vo:, service: or role:",
            ));
        }
        let name = self
            .value(&format!("expected a name after `{kind}:`"))?
            .text;
        Ok(match kind {
            "tag" => Expr::Tag(name),
            "vo" => Expr::Vo(name),
            "service" => Expr::Service(name),
            "role" => Expr::Role(name),
            _ => {
                let value = if self.peek().kind == Tok::Op {
                    let op = self.next();
                    if !matches!(self.source(&op), "==" | "=") {
                        return Err(self.error(
                            &op,
                            "labels compare with `==` only; negate with `!label:KEY==VALUE`",
                        ));
                    }
                    Some(self.value("expected a value after `==`")?.text)
                } else {
                    None
                };
                Expr::Label { key: name, value }
            }
        })
    }

    fn sort_clause(&mut self) -> Result<Vec<SortKey>, QueryError> {
        self.next();
        let mut keys = Vec::new();
        loop {
            let token = self.next();
            if token.kind != Tok::Word {
                return Err(self.error(&token, "expected an attribute to sort by, such as `-load`"));
            }
            let key = SortKey::parse(self.source(&token)).map_err(|mut e| {
                e.position += token.start;
                e
            })?;
            keys.push(key);
            if self.peek().kind != Tok::Comma {
                return Ok(keys);
            }
            self.next();
        }
    }

    fn limit_clause(&mut self) -> Result<usize, QueryError> {
        self.next();
        let token = self.next();
        let text = self.source(&token);
        match text.parse::<usize>() {
            Ok(n) if n > 0 && token.kind == Tok::Word => Ok(n),
            _ => Err(self.error(&token, "`limit` needs a positive integer")),
        }
    }
}
