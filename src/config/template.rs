//! Ocelot's path templates: a gateway route's `upstream` (the paths it
//! takes) and `downstream` (the path it sends them to), such as
//! `'/gateway/{catchAll}'` → `'/{catchAll}'`.
//!
//! It lives in `config` because the loader checks every template at start-up
//! (the gateway reaches it as `gateway::template`); matching and rendering
//! are sans-IO and allocation-light so the gateway can run them per request.
//!
//! Semantics, as Ocelot's:
//! - literal text matches ASCII case-insensitively;
//! - a `{name}` matches one non-empty path segment (no `/`);
//! - a `{name}` that ends the template matches the rest of the path, `/`
//!   included, and may be empty (`/gateway/{catchAll}` matches `/gateway/`).
//!
//! A placeholder followed by literal text in the same segment (`{id}.json`)
//! takes the longest capture the literal can follow; matching does not
//! backtrack, so it stays linear in the path whatever the template.

use std::fmt;

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Placeholder(String),
}

/// The placeholders a path filled, by name, borrowing the template and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Captures<'p> {
    pairs: Vec<(&'p str, &'p str)>,
}

impl<'p> Captures<'p> {
    /// The text a placeholder matched (still percent-encoded, as sent).
    pub fn get(&self, name: &str) -> Option<&'p str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }
}

/// Why a template cannot be used. Prints as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateError {
    /// The template does not start with `/`.
    NoLeadingSlash,
    /// A `{` without its `}`, a `}` without its `{`, or a `{` inside a name.
    Unbalanced(usize),
    /// `{}`.
    EmptyName,
    /// A name with characters other than letters, digits, `_` and `-`.
    BadName(String),
    /// The same name twice.
    Duplicate(String),
    /// Two placeholders with nothing between them: where one ends is unknowable.
    Adjacent(String),
    /// A `?`, a space or a control character: the query is passed on, not templated.
    BadCharacter(char),
    /// Rendering needs a placeholder the path did not fill.
    NotCaptured(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::NoLeadingSlash => write!(f, "a template must start with '/'"),
            TemplateError::Unbalanced(at) => write!(f, "unbalanced brace at byte {at}"),
            TemplateError::EmptyName => write!(f, "a placeholder needs a name: {{}} is empty"),
            TemplateError::BadName(n) => write!(
                f,
                "placeholder {{{n}}}: a name is letters, digits, '_' and '-'"
            ),
            TemplateError::Duplicate(n) => write!(f, "placeholder {{{n}}} appears twice"),
            TemplateError::Adjacent(n) => write!(
                f,
                "placeholder {{{n}}} follows another with nothing between them"
            ),
            TemplateError::BadCharacter(c) => write!(
                f,
                "{c:?} cannot be in a template (the query string is passed on as it is)"
            ),
            TemplateError::NotCaptured(n) => {
                write!(f, "{{{n}}} is not a placeholder of the upstream template")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

impl Template {
    /// Parses `'/api/{version}/users/{id}'`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        if !text.starts_with('/') {
            return Err(TemplateError::NoLeadingSlash);
        }
        if let Some(c) = text
            .chars()
            .find(|c| *c == '?' || *c == '#' || c.is_whitespace() || c.is_control())
        {
            return Err(TemplateError::BadCharacter(c));
        }
        let mut parts = Vec::new();
        let mut rest = text;
        let mut at = 0;
        while !rest.is_empty() {
            let (part, used) = next_part(rest, at)?;
            if let Part::Placeholder(name) = &part {
                check_placeholder(&parts, name)?;
            }
            parts.push(part);
            rest = &rest[used..];
            at += used;
        }
        Ok(Template { parts })
    }

    /// The placeholder names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(n) => Some(n.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Matches a request path (without its query); `None` when it does not fit.
    pub fn matches<'p>(&'p self, path: &'p str) -> Option<Captures<'p>> {
        let mut pairs = Vec::new();
        let mut pos = 0;
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Literal(lit) => {
                    let end = pos + lit.len();
                    let here = path.get(pos..end)?;
                    if !here.eq_ignore_ascii_case(lit) {
                        return None;
                    }
                    pos = end;
                }
                Part::Placeholder(name) => {
                    let end = match self.parts.get(i + 1) {
                        None => path.len(),
                        Some(Part::Literal(next)) => segment_end(path, pos, next)?,
                        Some(Part::Placeholder(_)) => return None, // refused by parse
                    };
                    pairs.push((name.as_str(), path.get(pos..end)?));
                    pos = end;
                }
            }
        }
        (pos == path.len()).then_some(Captures { pairs })
    }

    /// The path for `caps`, with `?query` appended when `query` is not empty.
    pub fn render(&self, caps: &Captures<'_>, query: &str) -> Result<String, TemplateError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(lit) => out.push_str(lit),
                Part::Placeholder(name) => out.push_str(
                    caps.get(name)
                        .ok_or_else(|| TemplateError::NotCaptured(name.clone()))?,
                ),
            }
        }
        if !query.is_empty() {
            out.push('?');
            out.push_str(query);
        }
        Ok(out)
    }
}

/// The next part of `rest` (which starts at byte `at` of the template) and
/// the bytes it used.
fn next_part(rest: &str, at: usize) -> Result<(Part, usize), TemplateError> {
    if let Some(inner) = rest.strip_prefix('{') {
        let close = inner.find('}').ok_or(TemplateError::Unbalanced(at))?;
        let name = &inner[..close];
        if let Some(open) = name.find('{') {
            return Err(TemplateError::Unbalanced(at + 1 + open));
        }
        return Ok((Part::Placeholder(name.to_string()), close + 2));
    }
    let end = rest.find(['{', '}']).unwrap_or(rest.len());
    if rest[end..].starts_with('}') {
        return Err(TemplateError::Unbalanced(at + end));
    }
    Ok((Part::Literal(rest[..end].to_string()), end))
}

/// Refuses an empty, odd, repeated or adjacent placeholder.
fn check_placeholder(before: &[Part], name: &str) -> Result<(), TemplateError> {
    if name.is_empty() {
        return Err(TemplateError::EmptyName);
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !name.chars().all(name_char) {
        return Err(TemplateError::BadName(name.to_string()));
    }
    if before
        .iter()
        .any(|p| matches!(p, Part::Placeholder(n) if n == name))
    {
        return Err(TemplateError::Duplicate(name.to_string()));
    }
    if matches!(before.last(), Some(Part::Placeholder(_))) {
        return Err(TemplateError::Adjacent(name.to_string()));
    }
    Ok(())
}

/// Where a placeholder starting at `pos` ends when `next` must follow it:
/// the last point within the segment (at least one byte in) where `next`
/// matches.
fn segment_end(path: &str, pos: usize, next: &str) -> Option<usize> {
    let segment = path[pos..].find('/').map_or(path.len(), |s| pos + s);
    (pos + 1..=segment).rev().find(|&end| {
        path.get(end..end + next.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(next))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(up: &str, down: &str, path: &str, query: &str) -> Option<String> {
        let up = Template::parse(up).unwrap();
        let down = Template::parse(down).unwrap();
        let caps = up.matches(path)?;
        Some(down.render(&caps, query).unwrap())
    }

    #[test]
    fn ocelot_catch_all() {
        let r = |p| route("/gateway/{catchAll}", "/{catchAll}", p, "");
        assert_eq!(r("/gateway/chat/room/1").as_deref(), Some("/chat/room/1"));
        assert_eq!(r("/gateway/").as_deref(), Some("/"), "empty catch-all");
        assert_eq!(r("/GATEWAY/x").as_deref(), Some("/x"), "case-insensitive");
        assert_eq!(r("/gateway"), None);
        assert_eq!(r("/other/x"), None);
        assert_eq!(
            route("/{everything}", "/{everything}", "/", "").as_deref(),
            Some("/")
        );
    }

    #[test]
    fn placeholders_in_segments() {
        let up = "/api/{version}/users/{id}";
        let down = "/{version}/people/{id}";
        let r = |p| route(up, down, p, "");
        assert_eq!(r("/api/v2/users/42").as_deref(), Some("/v2/people/42"));
        assert_eq!(
            r("/api/v2/users/42/more").as_deref(),
            Some("/v2/people/42/more")
        );
        assert_eq!(
            r("/api//users/42"),
            None,
            "a middle placeholder is not empty"
        );
        assert_eq!(r("/api/v2/x/users/42"), None, "one segment only");
        assert_eq!(r("/api/v2/users/").as_deref(), Some("/v2/people/"));
        let up = "/files/{name}.json";
        assert_eq!(
            route(up, "/{name}", "/files/a.b.json", "").as_deref(),
            Some("/a.b")
        );
        assert_eq!(route(up, "/{name}", "/files/.json", ""), None);
        assert_eq!(route(up, "/{name}", "/files/a.jsonx", ""), None);
    }

    #[test]
    fn query_is_passed_on() {
        let r = route("/gateway/{catchAll}", "/{catchAll}", "/gateway/x", "a=1&b");
        assert_eq!(r.as_deref(), Some("/x?a=1&b"));
    }

    #[test]
    fn literal_only_templates() {
        assert_eq!(route("/a", "/b", "/a", "q").as_deref(), Some("/b?q"));
        assert_eq!(route("/a", "/b", "/a/", ""), None);
        assert_eq!(route("/a", "/b", "/é", ""), None);
    }

    #[test]
    fn names_are_listed_and_missing_ones_fail_to_render() {
        let up = Template::parse("/a/{x}/{y}").unwrap();
        assert_eq!(up.names().collect::<Vec<_>>(), ["x", "y"]);
        let down = Template::parse("/{z}").unwrap();
        let caps = up.matches("/a/1/2").unwrap();
        assert_eq!(caps.get("y"), Some("2"));
        assert_eq!(
            down.render(&caps, "").unwrap_err().to_string(),
            "{z} is not a placeholder of the upstream template"
        );
    }

    #[test]
    fn bad_templates_say_why() {
        let cases = [
            ("gateway/{x}", "a template must start with '/'"),
            ("", "a template must start with '/'"),
            ("/a/{x", "unbalanced brace at byte 3"),
            ("/a/x}", "unbalanced brace at byte 4"),
            ("/a/{x{y}}", "unbalanced brace at byte 5"),
            ("/a/{}", "a placeholder needs a name: {} is empty"),
            ("/a/{x y}", "' ' cannot be in a template"),
            ("/a/{x.y}", "placeholder {x.y}: a name is letters"),
            ("/{x}/{x}", "placeholder {x} appears twice"),
            ("/{x}{y}", "placeholder {y} follows another"),
            ("/a?b={x}", "'?' cannot be in a template"),
            ("/a\r\n", "'\\r' cannot be in a template"),
        ];
        for (text, want) in cases {
            let got = Template::parse(text).unwrap_err().to_string();
            assert!(
                got.starts_with(want),
                "{text:?}: got {got:?}, want {want:?}"
            );
        }
    }
}
