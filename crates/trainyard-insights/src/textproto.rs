//! A protobuf text-format reader for the subset of the syntax TFX writes (`schema.pbtxt`):
//! fields `name: scalar`, nested messages `name { ... }` / `name < ... >` (colon optional),
//! lists `name: [a, b]`, quoted strings with C escapes (adjacent strings concatenate),
//! `#` comments and optional `,`/`;` separators. It builds an untyped tree; typed readers
//! (see [`crate::schema`]) pick the fields they know and check their types.

use std::fmt;

use crate::InsightsError;

/// One field value.
#[derive(Debug, Clone, PartialEq)]
pub enum TextValue {
    /// An unquoted token: a number, an enum name, `true`/`false`.
    Token(String),
    /// A quoted string, escapes decoded (as bytes: text format strings may hold any bytes).
    Str(Vec<u8>),
    Message(TextMessage),
}

/// A message: its fields in file order (repeated fields appear once per value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextMessage {
    pub fields: Vec<(String, TextValue)>,
}

impl TextMessage {
    /// Every value of a field, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a TextValue> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The last value of a field (text format: a repeated singular field keeps the last).
    pub fn get(&self, name: &str) -> Option<&TextValue> {
        self.fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

impl TextValue {
    pub fn kind(&self) -> &'static str {
        match self {
            TextValue::Token(_) => "a scalar",
            TextValue::Str(_) => "a string",
            TextValue::Message(_) => "a message",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(Vec<u8>),
    Punct(char),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) => write!(f, "{s:?}"),
            Tok::Str(_) => f.write_str("a string"),
            Tok::Punct(c) => write!(f, "'{c}'"),
        }
    }
}

struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, msg: impl Into<String>) -> InsightsError {
        InsightsError::TextFormat {
            line: self.line,
            message: msg.into(),
        }
    }

    fn skip_space(&mut self) {
        while let Some(&c) = self.src.get(self.pos) {
            match c {
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                b' ' | b'\t' | b'\r' => self.pos += 1,
                b'#' => {
                    while self.src.get(self.pos).is_some_and(|&c| c != b'\n') {
                        self.pos += 1;
                    }
                }
                _ => break,
            }
        }
    }

    fn next(&mut self) -> Result<Option<Tok>, InsightsError> {
        self.skip_space();
        let Some(&c) = self.src.get(self.pos) else {
            return Ok(None);
        };
        if matches!(
            c,
            b'{' | b'}' | b'<' | b'>' | b':' | b',' | b';' | b'[' | b']'
        ) {
            self.pos += 1;
            return Ok(Some(Tok::Punct(c as char)));
        }
        if c == b'"' || c == b'\'' {
            let mut out = Vec::new();
            // adjacent quoted strings are one value
            while let Some(&q) = self.src.get(self.pos).filter(|&&q| q == b'"' || q == b'\'') {
                self.pos += 1;
                self.string_body(q, &mut out)?;
                self.skip_space();
            }
            return Ok(Some(Tok::Str(out)));
        }
        let start = self.pos;
        while self
            .src
            .get(self.pos)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b'+'))
        {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err(format!("unexpected character {:?}", c as char)));
        }
        let s = String::from_utf8_lossy(&self.src[start..self.pos]).into_owned();
        Ok(Some(Tok::Ident(s)))
    }

    fn string_body(&mut self, quote: u8, out: &mut Vec<u8>) -> Result<(), InsightsError> {
        loop {
            let Some(&c) = self.src.get(self.pos) else {
                return Err(self.err("unterminated string"));
            };
            self.pos += 1;
            match c {
                b'\n' => return Err(self.err("newline in string")),
                c if c == quote => return Ok(()),
                b'\\' => {
                    let Some(&e) = self.src.get(self.pos) else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.pos += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'a' => out.push(0x07),
                        b'b' => out.push(0x08),
                        b'f' => out.push(0x0c),
                        b'v' => out.push(0x0b),
                        b'\\' | b'\'' | b'"' | b'?' => out.push(e),
                        b'0'..=b'7' => {
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.src.get(self.pos) {
                                    Some(&d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.pos += 1;
                                    }
                                    _ => break,
                                }
                            }
                            out.push(u8::try_from(v).map_err(|_| self.err("octal escape > 255"))?);
                        }
                        b'x' => {
                            let mut v = 0u32;
                            let mut n = 0;
                            while n < 2 {
                                match self
                                    .src
                                    .get(self.pos)
                                    .and_then(|&d| (d as char).to_digit(16))
                                {
                                    Some(d) => {
                                        v = v * 16 + d;
                                        self.pos += 1;
                                        n += 1;
                                    }
                                    None => break,
                                }
                            }
                            if n == 0 {
                                return Err(self.err("\\x without hex digits"));
                            }
                            out.push(v as u8);
                        }
                        other => {
                            return Err(self.err(format!("unknown escape \\{}", other as char)))
                        }
                    }
                }
                c => out.push(c),
            }
        }
    }
}

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<Option<Tok>>,
}

impl<'a> Parser<'a> {
    fn peek(&mut self) -> Result<Option<&Tok>, InsightsError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex.next()?);
        }
        Ok(self.peeked.as_ref().and_then(Option::as_ref))
    }

    fn bump(&mut self) -> Result<Option<Tok>, InsightsError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next(),
        }
    }

    /// Fields until `close` (or the end of input when `close` is None).
    fn message(&mut self, close: Option<char>) -> Result<TextMessage, InsightsError> {
        let mut msg = TextMessage::default();
        loop {
            let name = match self.bump()? {
                None if close.is_none() => return Ok(msg),
                None => return Err(self.lex.err("unexpected end inside a message")),
                Some(Tok::Punct(p)) if Some(p) == close => return Ok(msg),
                Some(Tok::Punct('[')) => {
                    // extension or Any type URL: [pkg.name]
                    let mut s = String::from("[");
                    loop {
                        match self.bump()? {
                            Some(Tok::Punct(']')) => break,
                            Some(Tok::Ident(i)) => s.push_str(&i),
                            _ => return Err(self.lex.err("bad extension name")),
                        }
                    }
                    s.push(']');
                    s
                }
                Some(Tok::Ident(n)) => n,
                Some(t) => return Err(self.lex.err(format!("expected a field name, found {t}"))),
            };
            let mut colon = false;
            if self.peek()? == Some(&Tok::Punct(':')) {
                self.bump()?;
                colon = true;
            }
            match self.peek()? {
                Some(Tok::Punct('{')) | Some(Tok::Punct('<')) => {
                    let v = self.nested()?;
                    msg.fields.push((name, v));
                }
                Some(Tok::Punct('[')) if colon => {
                    self.bump()?;
                    if self.peek()? == Some(&Tok::Punct(']')) {
                        self.bump()?;
                    } else {
                        loop {
                            let v = self.value()?;
                            msg.fields.push((name.clone(), v));
                            match self.bump()? {
                                Some(Tok::Punct(',')) => continue,
                                Some(Tok::Punct(']')) => break,
                                _ => return Err(self.lex.err("expected ',' or ']' in a list")),
                            }
                        }
                    }
                }
                _ if colon => {
                    let v = self.value()?;
                    msg.fields.push((name, v));
                }
                _ => {
                    return Err(self
                        .lex
                        .err(format!("field {name}: expected ':' or a message")))
                }
            }
            if matches!(self.peek()?, Some(Tok::Punct(',')) | Some(Tok::Punct(';'))) {
                self.bump()?;
            }
        }
    }

    fn nested(&mut self) -> Result<TextValue, InsightsError> {
        let close = match self.bump()? {
            Some(Tok::Punct('{')) => '}',
            Some(Tok::Punct('<')) => '>',
            _ => return Err(self.lex.err("expected '{' or '<'")),
        };
        Ok(TextValue::Message(self.message(Some(close))?))
    }

    fn value(&mut self) -> Result<TextValue, InsightsError> {
        match self.peek()? {
            Some(Tok::Punct('{')) | Some(Tok::Punct('<')) => self.nested(),
            _ => match self.bump()? {
                Some(Tok::Ident(s)) => Ok(TextValue::Token(s)),
                Some(Tok::Str(s)) => Ok(TextValue::Str(s)),
                Some(t) => Err(self.lex.err(format!("expected a value, found {t}"))),
                None => Err(self.lex.err("expected a value, found the end")),
            },
        }
    }
}

/// Parses a text-format message.
pub fn parse(text: &str) -> Result<TextMessage, InsightsError> {
    let mut p = Parser {
        lex: Lexer {
            src: text.as_bytes(),
            pos: 0,
            line: 1,
        },
        peeked: None,
    };
    p.message(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_messages_lists_strings_and_comments() {
        let m = parse(
            r#"
            # a comment
            feature { name: "a\"b" type: BYTES presence < min_fraction: 1.0 > }
            feature: { name: 'x' 'y' shape { dim { size: 1 } dim { size: -2 } } }
            value: [1, 2e3, -inf]
            oct: "\101\x42\n"; last: true,
            "#,
        )
        .unwrap();
        let feats: Vec<_> = m.all("feature").collect();
        assert_eq!(feats.len(), 2);
        let TextValue::Message(f0) = feats[0] else {
            panic!()
        };
        assert_eq!(f0.get("name"), Some(&TextValue::Str(b"a\"b".to_vec())));
        assert_eq!(f0.get("type"), Some(&TextValue::Token("BYTES".into())));
        let TextValue::Message(f1) = feats[1] else {
            panic!()
        };
        assert_eq!(f1.get("name"), Some(&TextValue::Str(b"xy".to_vec())));
        let values: Vec<_> = m.all("value").collect();
        assert_eq!(
            values,
            vec![
                &TextValue::Token("1".into()),
                &TextValue::Token("2e3".into()),
                &TextValue::Token("-inf".into())
            ]
        );
        assert_eq!(m.get("oct"), Some(&TextValue::Str(b"AB\n".to_vec())));
        assert_eq!(m.get("last"), Some(&TextValue::Token("true".into())));
    }

    #[test]
    fn errors_name_the_line() {
        for (bad, line) in [
            ("a {\n b: 1\n", 3),
            ("a: \"open\n", 1),
            ("x 1", 1),
            ("a {\n\n}}", 3),
            ("s: \"\\q\"", 1),
        ] {
            match parse(bad) {
                Err(InsightsError::TextFormat { line: l, .. }) => assert_eq!(l, line, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
