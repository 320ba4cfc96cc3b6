//! Walking the parsed json5 tree with the key path at hand, so every error names
//! the key it is about (`web.limits.maxFrme: unknown key; did you mean maxFrame?`).

use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::units::{parse_duration, parse_size};

/// A problem with one key: its path and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyError {
    pub key: String,
    pub message: String,
}

pub(crate) type Result<T> = std::result::Result<T, KeyError>;

pub(crate) fn fail<T>(key: &str, message: impl fmt::Display) -> Result<T> {
    Err(KeyError {
        key: key.to_string(),
        message: message.to_string(),
    })
}

/// A json5 object whose keys are checked against the ones we know.
#[derive(Debug)]
pub(crate) struct Obj<'v> {
    path: String,
    map: &'v Map<String, Value>,
}

impl<'v> Obj<'v> {
    /// Expects an object at `path` and refuses keys outside `known`.
    pub fn new(path: &str, value: &'v Value, known: &[&str]) -> Result<Obj<'v>> {
        let Value::Object(map) = value else {
            return fail(path, format!("expected an object, found {}", kind(value)));
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let message = match suggest(key, known) {
                    Some(s) => format!("unknown key; did you mean {s}?"),
                    None => format!("unknown key (known: {})", known.join(", ")),
                };
                return fail(&join(path, key), message);
            }
        }
        Ok(Obj {
            path: path.to_string(),
            map,
        })
    }

    /// The full path of a key of this object.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of a key, with its path; `null` counts as absent.
    pub fn get(&self, key: &str) -> Option<(String, &'v Value)> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some((self.path_of(key), v)),
        }
    }

    pub fn string(&self, key: &str) -> Result<Option<String>> {
        self.get(key).map(|(p, v)| string(&p, v)).transpose()
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some((_, Value::Bool(b))) => Ok(Some(*b)),
            Some((p, v)) => fail(&p, format!("expected true or false, found {}", kind(v))),
        }
    }

    pub fn size(&self, key: &str) -> Result<Option<u64>> {
        self.get(key).map(|(p, v)| size(&p, v)).transpose()
    }

    /// A size that must fit the platform's `usize`.
    pub fn size_usize(&self, key: &str) -> Result<Option<usize>> {
        Ok(self
            .size(key)?
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
    }

    /// A number of things (connections, requests, …): a number, or
    /// `'unlimited'` (the size syntax is taken too, `'10K'`), named as a count
    /// when it is wrong.
    pub fn count(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            Some((p, v)) if size(&p, v).is_err() => fail(
                &p,
                format!(
                    "expected a count such as 100 or 'unlimited', found {}",
                    shown(v)
                ),
            ),
            _ => self.size_usize(key),
        }
    }

    /// `Some(None)` is an explicit `'never'`.
    pub fn duration(&self, key: &str) -> Result<Option<Option<Duration>>> {
        self.get(key).map(|(p, v)| duration(&p, v)).transpose()
    }

    /// A string or a list of strings.
    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        self.get(key).map(|(p, v)| strings(&p, v)).transpose()
    }

    /// A list; each element comes with its path (`key[3]`).
    pub fn list(&self, key: &str) -> Result<Option<Vec<(String, &'v Value)>>> {
        match self.get(key) {
            None => Ok(None),
            Some((p, Value::Array(items))) => Ok(Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{p}[{i}]"), v))
                    .collect(),
            )),
            Some((p, v)) => fail(&p, format!("expected a list, found {}", kind(v))),
        }
    }

    /// Every entry of an object whose keys are free (`headers`, `mime`), as strings.
    pub fn string_map(&self, key: &str) -> Result<Option<Vec<(String, String)>>> {
        let Some((p, v)) = self.get(key) else {
            return Ok(None);
        };
        let Value::Object(map) = v else {
            return fail(&p, format!("expected an object, found {}", kind(v)));
        };
        map.iter()
            .map(|(k, v)| Ok((k.clone(), string(&join(&p, k), v)?)))
            .collect::<Result<_>>()
            .map(Some)
    }
}

pub(crate) fn string(path: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => fail(path, format!("expected a string, found {}", kind(v))),
    }
}

/// A string or a list of strings at `path`.
pub(crate) fn strings_of(path: &str, v: &Value) -> Result<Vec<String>> {
    strings(path, v)
}

fn strings(path: &str, v: &Value) -> Result<Vec<String>> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| string(&format!("{path}[{i}]"), v))
            .collect(),
        _ => fail(
            path,
            format!("expected a string or a list of strings, found {}", kind(v)),
        ),
    }
}

fn size(path: &str, v: &Value) -> Result<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .map_or_else(|| fail(path, format!("{n} is not a size in bytes")), Ok),
        Value::String(s) => parse_size(s).or_else(|m| fail(path, m)),
        _ => fail(
            path,
            format!("expected a size such as 1024 or '10K', found {}", kind(v)),
        ),
    }
}

fn duration(path: &str, v: &Value) -> Result<Option<Duration>> {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(secs) => Ok(Some(Duration::from_secs(secs))),
            None => match n.as_f64() {
                Some(f) if f >= 0.0 && f.is_finite() && f < 1e12 => {
                    Ok(Some(Duration::from_secs_f64(f)))
                }
                _ => fail(path, format!("{n} is not a duration in seconds")),
            },
        },
        Value::String(s) => parse_duration(s).or_else(|m| fail(path, m)),
        _ => fail(
            path,
            format!(
                "expected a duration such as 30 or '5 secs', found {}",
                kind(v)
            ),
        ),
    }
}

/// A wrong value as the message shows it: a string or number itself, else its kind.
fn shown(v: &Value) -> String {
    match v {
        Value::String(_) | Value::Number(_) => v.to_string(),
        _ => kind(v).to_string(),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The known key closest to a misspelt one, if it is close enough to be a typo.
pub(crate) fn suggest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| {
            (
                edit_distance(&key.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (keys are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let known = ["maxFrame", "maxMessage", "body", "connections"];
        assert_eq!(suggest("maxFrme", &known), Some("maxFrame"));
        assert_eq!(suggest("maxframe", &known), Some("maxFrame"));
        assert_eq!(suggest("conections", &known), Some("connections"));
        assert_eq!(suggest("colour", &known), None);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_the_path() {
        let v: Value = serde_json::json!({ "maxFrme": 1, "body": true });
        let err = Obj::new("web.limits", &v, &["maxFrame", "body"]).unwrap_err();
        assert_eq!(err.key, "web.limits.maxFrme");
        assert_eq!(err.message, "unknown key; did you mean maxFrame?");
        let v: Value = serde_json::json!({ "body": true });
        let obj = Obj::new("web.limits", &v, &["body"]).unwrap();
        let err = obj.size("body").unwrap_err();
        assert_eq!(err.key, "web.limits.body");
        assert!(err.message.contains("found a boolean"), "{}", err.message);
    }

    #[test]
    fn values_of_each_kind() {
        let v: Value = serde_json::json!({
            "a": "10K", "b": 2048, "c": "5 secs", "d": "never", "e": 1.5,
            "f": ["x", "y"], "g": "z", "h": { "k": "v" }, "i": null
        });
        let o = Obj::new("", &v, &["a", "b", "c", "d", "e", "f", "g", "h", "i"]).unwrap();
        assert_eq!(o.size("a"), Ok(Some(10240)));
        assert_eq!(o.size("b"), Ok(Some(2048)));
        assert_eq!(o.duration("c"), Ok(Some(Some(Duration::from_secs(5)))));
        assert_eq!(o.duration("d"), Ok(Some(None)));
        assert_eq!(o.duration("e"), Ok(Some(Some(Duration::from_millis(1500)))));
        assert_eq!(o.strings("f"), Ok(Some(vec!["x".into(), "y".into()])));
        assert_eq!(o.strings("g"), Ok(Some(vec!["z".into()])));
        assert_eq!(o.string_map("h"), Ok(Some(vec![("k".into(), "v".into())])));
        assert_eq!(o.size("i"), Ok(None));
        assert_eq!(o.size("missing"), Ok(None));
        assert_eq!(o.path_of("a"), "a");
    }
}
