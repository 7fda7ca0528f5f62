//! The LDF's tokens: words, quoted strings and punctuation, each with its line; comments
//! (`//` and `/* */`) skipped. A character no LDF holds, an unclosed comment or string is an
//! [`LdfError`] naming the line.
//!
//! Owns: characters to tokens. Must not touch the grammar (the parser's).

use std::fmt;

use super::LdfError;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Word(String),
    Str(String),
    Punct(char),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Word(w) => write!(f, "`{w}`"),
            Tok::Str(s) => write!(f, "\"{s}\""),
            Tok::Punct(c) => write!(f, "`{c}`"),
        }
    }
}

pub(super) fn tokenize(text: &str) -> Result<Vec<(Tok, usize)>, LdfError> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let start = line;
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        Some('\n') => line += 1,
                        Some('/') if prev == '*' => break,
                        Some(c) => prev = c,
                        None => {
                            return Err(LdfError {
                                line: start,
                                reason: "a comment that is never closed".into(),
                            })
                        }
                    }
                    if prev == '\n' {
                        prev = ' ';
                    }
                }
            }
            '"' => {
                let start = line;
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\n') | None => {
                            return Err(LdfError {
                                line: start,
                                reason: "a string that is never closed".into(),
                            })
                        }
                        Some(c) => s.push(c),
                    }
                }
                tokens.push((Tok::Str(s), start));
            }
            '{' | '}' | ';' | ':' | ',' | '=' => tokens.push((Tok::Punct(c), line)),
            c if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' => {
                let mut w = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_ascii_alphanumeric() || n == '_' || n == '.' {
                        w.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push((Tok::Word(w), line));
            }
            other => {
                return Err(LdfError {
                    line,
                    reason: format!("unexpected character `{other}`"),
                })
            }
        }
    }
    Ok(tokens)
}
