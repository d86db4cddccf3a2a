//! The Incus API filter language (`?filter=`): `eq`, `ne`, `not`, `and`, `or` and parentheses
//! over dotted keys of an object's JSON (`name`, `status`, `config.image.os`,
//! `expanded_devices.root.pool`). Values may be quoted with `"`. Comparisons of strings are
//! case-insensitive; a key that does not exist matches nothing with `eq`.

use crate::error::{Error, Result};
use serde_json::Value;

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `key eq value` (`ne` is `Not(Eq)`).
    Eq(String, String),
    /// `not expr`.
    Not(Box<Filter>),
    /// `a and b`.
    And(Box<Filter>, Box<Filter>),
    /// `a or b`.
    Or(Box<Filter>, Box<Filter>),
}

fn tokenize(s: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '(' || c == ')' {
            out.push(c.to_string());
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut v = String::new();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => v.extend(chars.next()),
                    Some(ch) => v.push(ch),
                    None => return Err(Error::invalid("Invalid filter: unterminated quote")),
                }
            }
            out.push(format!("\"{v}"));
        } else {
            let mut v = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() || ch == '(' || ch == ')' {
                    break;
                }
                v.push(ch);
                chars.next();
            }
            out.push(v);
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<String>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.toks.get(self.pos).map(String::as_str)
    }

    fn next(&mut self) -> Option<String> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn or(&mut self) -> Result<Filter> {
        let mut left = self.and()?;
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("or")) {
            self.next();
            left = Filter::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter> {
        let mut left = self.unary()?;
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("and")) {
            self.next();
            left = Filter::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Filter> {
        match self.peek() {
            Some(t) if t.eq_ignore_ascii_case("not") => {
                self.next();
                Ok(Filter::Not(Box::new(self.unary()?)))
            }
            Some("(") => {
                self.next();
                let f = self.or()?;
                if self.next().as_deref() != Some(")") {
                    return Err(Error::invalid("Invalid filter: missing )"));
                }
                Ok(f)
            }
            _ => {
                let key = self
                    .next()
                    .ok_or_else(|| Error::invalid("Invalid filter: expected a key"))?;
                let op = self.next().ok_or_else(|| {
                    Error::invalid(format!("Invalid filter: missing operator after {key:?}"))
                })?;
                let value = self.next().ok_or_else(|| {
                    Error::invalid(format!("Invalid filter: missing value after {key:?} {op}"))
                })?;
                let value = value.strip_prefix('"').map(str::to_string).unwrap_or(value);
                match op.to_ascii_lowercase().as_str() {
                    "eq" => Ok(Filter::Eq(key, value)),
                    "ne" => Ok(Filter::Not(Box::new(Filter::Eq(key, value)))),
                    other => Err(Error::invalid(format!(
                        "Invalid filter: unknown operator {other:?}"
                    ))),
                }
            }
        }
    }
}

/// Parses a filter; an empty string means "no filter" (`None`).
pub fn parse(s: &str) -> Result<Option<Filter>> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    let mut p = Parser {
        toks: tokenize(s)?,
        pos: 0,
    };
    let f = p.or()?;
    if p.pos < p.toks.len() {
        return Err(Error::invalid(format!(
            "Invalid filter: unexpected {:?}",
            p.toks[p.pos]
        )));
    }
    Ok(Some(f))
}

fn lookup<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    // Map keys may themselves contain dots (`config.image.os`): try the longest match first.
    if let Some(found) = v.get(key) {
        return Some(found);
    }
    let parts: Vec<&str> = key.split('.').collect();
    for i in (1..parts.len()).rev() {
        let head = parts[..i].join(".");
        if let Some(inner) = v.get(&head)
            && let Some(found) = lookup(inner, &parts[i..].join("."))
        {
            return Some(found);
        }
    }
    None
}

impl Filter {
    /// Whether the object (as JSON) matches.
    pub fn matches(&self, obj: &Value) -> bool {
        match self {
            Filter::Eq(k, want) => match lookup(obj, k) {
                Some(Value::String(s)) => s.eq_ignore_ascii_case(want),
                Some(Value::Bool(b)) => b.to_string() == want.to_ascii_lowercase(),
                Some(Value::Number(n)) => n.to_string() == *want,
                Some(Value::Null) | None => want.is_empty(),
                Some(_) => false,
            },
            Filter::Not(f) => !f.matches(obj),
            Filter::And(a, b) => a.matches(obj) && b.matches(obj),
            Filter::Or(a, b) => a.matches(obj) || b.matches(obj),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_matches() {
        let c1 = json!({"name": "c1", "status": "Running", "config": {"image.os": "busybox"}, "ephemeral": false});
        let c2 = json!({"name": "c2", "status": "Stopped", "config": {}, "ephemeral": true});
        let f = |s: &str| parse(s).unwrap().unwrap();
        assert!(parse("").unwrap().is_none());
        assert!(f("name eq c1").matches(&c1));
        assert!(!f("name eq c1").matches(&c2));
        assert!(f("status eq running").matches(&c1), "case-insensitive");
        assert!(f("config.image.os eq busybox").matches(&c1));
        assert!(!f("config.image.os eq busybox").matches(&c2));
        assert!(f("name ne c1").matches(&c2));
        assert!(f("not (name eq c1 or name eq c3)").matches(&c2));
        assert!(f("name eq c2 and ephemeral eq true").matches(&c2));
        assert!(f("name eq \"c1\"").matches(&c1));
        for bad in [
            "name",
            "name eq",
            "name like c1",
            "(name eq c1",
            "name eq c1 c2",
            "name eq \"c1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
