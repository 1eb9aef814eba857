//! Reading a webhook's JSON with the path of every value kept beside it,
//! so that a payload that does not fit its schema is refused with the
//! exact place (`entry[0].changes[1].value.statuses[3].id`) an operator
//! reading the dead letter has to look at.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::Unusable;
use crate::protocol::events::json_type;

/// Longest piece of a payload value quoted in an error or a skip reason:
/// enough to recognise an id, never a whole message body in a log line.
const MAX_QUOTED: usize = 64;

/// A value of the payload and where it is.
#[derive(Debug, Clone)]
pub(super) struct Node<'a> {
    pub value: &'a Value,
    pub path: String,
}

/// Parses a body: UTF-8 first (to say so when it is not), then JSON.
/// serde_json stops at 128 levels of nesting, so a hostile body cannot
/// exhaust the stack.
pub(super) fn parse(body: &[u8]) -> Result<Value, Unusable> {
    let text = std::str::from_utf8(body).map_err(|e| {
        Unusable(format!(
            "the body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    serde_json::from_str(text).map_err(|e| Unusable(format!("the body is not JSON: {e}")))
}

impl<'a> Node<'a> {
    /// The whole body.
    pub fn root(value: &'a Value) -> Node<'a> {
        Node {
            value,
            path: String::new(),
        }
    }

    /// Where this value is, for messages; the root is "the body".
    pub fn at(&self) -> &str {
        if self.path.is_empty() {
            "the body"
        } else {
            &self.path
        }
    }

    /// A refusal naming this value's path.
    pub fn unusable(&self, problem: impl std::fmt::Display) -> Unusable {
        Unusable(format!("{} {problem}", self.at()))
    }

    /// A field of this object; `None` when absent or null (the platforms
    /// write both for "not there").
    pub fn get(&self, name: &str) -> Option<Node<'a>> {
        let value = self.value.get(name).filter(|v| !v.is_null())?;
        let path = if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        };
        Some(Node { value, path })
    }

    /// A field that the schema requires.
    pub fn req(&self, name: &str) -> Result<Node<'a>, Unusable> {
        self.get(name).ok_or_else(|| self.missing(name))
    }

    /// The refusal for a required field that is absent (or null).
    pub fn missing(&self, name: &str) -> Unusable {
        if self.path.is_empty() {
            Unusable(format!("{name} is missing"))
        } else {
            Unusable(format!("{}.{name} is missing", self.path))
        }
    }

    /// This value as an object.
    pub fn object(&self) -> Result<&'a serde_json::Map<String, Value>, Unusable> {
        self.value.as_object().ok_or_else(|| {
            self.unusable(format!("is {}, expected an object", json_type(self.value)))
        })
    }

    /// This value as a non-empty string.
    pub fn str(&self) -> Result<&'a str, Unusable> {
        match self.value.as_str() {
            Some("") => Err(self.unusable("is empty")),
            Some(s) => Ok(s),
            None => Err(self.unusable(format!("is {}, expected a string", json_type(self.value)))),
        }
    }

    /// A field that, when present, is a non-empty string.
    pub fn opt_str(&self, name: &str) -> Result<Option<&'a str>, Unusable> {
        self.get(name).map(|n| n.str()).transpose()
    }

    /// This value as an id: the platforms write some ids as strings and
    /// some as numbers.
    pub fn id(&self) -> Result<String, Unusable> {
        match self.value {
            Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
            _ => self.str().map(str::to_string),
        }
    }

    /// The items of this array, each with its index in the path.
    pub fn items(&self) -> Result<Vec<Node<'a>>, Unusable> {
        let Some(items) = self.value.as_array() else {
            return Err(self.unusable(format!("is {}, expected an array", json_type(self.value))));
        };
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| Node {
                value,
                path: format!("{}[{i}]", self.at()),
            })
            .collect())
    }

    /// The items of an array, or this one value when it is an object: the
    /// Evolution API sends one message per webhook, older versions and
    /// some events a list.
    pub fn one_or_many(&self) -> Result<Vec<Node<'a>>, Unusable> {
        if self.value.is_object() {
            return Ok(vec![self.clone()]);
        }
        self.items()
    }

    /// This value as a Unix time in seconds, written as a number or as a
    /// string of digits (the Cloud API's way).
    pub fn unix_time(&self) -> Result<DateTime<Utc>, Unusable> {
        let secs = match self.value {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        secs.and_then(|s| DateTime::from_timestamp(s, 0))
            .ok_or_else(|| {
                self.unusable(format!(
                    "is {}, expected a Unix time in seconds",
                    quoted(self.value)
                ))
            })
    }

    /// This value as an RFC 3339 time (`2025-06-12T14:03:21.512Z`).
    pub fn rfc3339(&self) -> Result<DateTime<Utc>, Unusable> {
        let text = self.str()?;
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| self.unusable(format!("`{}` is not an RFC 3339 time: {e}", shown(text))))
    }
}

/// A payload value as it may appear in a message: strings as they are,
/// anything else as JSON, either cut short.
pub(super) fn quoted(value: &Value) -> String {
    match value {
        Value::String(s) => format!("`{}`", shown(s)),
        other => format!("`{}`", shown(&other.to_string())),
    }
}

/// A string from the payload, safe to put in a log line: at most
/// [`MAX_QUOTED`] characters, control characters escaped.
pub(super) fn shown(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX_QUOTED {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
