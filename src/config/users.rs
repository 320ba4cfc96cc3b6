//! `web.auth`: the users who may log in, their roles, and how they log in
//! (Ioto's `auth: { roles, users }`). Roles are resolved here, once: each
//! role's abilities with every role it names expanded, cycles and unknown
//! names refused with the key that holds them.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use super::read::{self, fail, Obj};

/// `web.auth`: users, roles, and the login flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Users {
    /// `roles: { user: ['view'], admin: ['user', 'edit'] }`, in the order written.
    pub roles: Vec<Role>,
    /// `users: { alice: { password: '$argon2id$…', role: 'admin' } }`.
    pub users: Vec<User>,
    /// Refuse HTTP Basic credentials on plain-HTTP connections
    /// (`requireTlsForBasic`, default `true`): they would cross the network
    /// readable by anyone on the way.
    pub require_tls_for_basic: bool,
    /// The login form's paths (`login`).
    pub login: LoginPaths,
    /// Login attempts allowed per client address (`attempts`, default
    /// `'5/min'`): failed HTTP Basic credentials count too. Beyond it, 429.
    pub attempts: Attempts,
}

/// `auth.login`: where the form posts, where logout posts, and the form's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPaths {
    /// The form posts `username`, `password` and `next` here (`path`,
    /// default `'/auth/login'`); a `GET` there tells who is logged in.
    pub path: String,
    /// A `POST` here ends the session (`logout`, default `'/auth/logout'`).
    pub logout: String,
    /// The form's page under `documents` (`page`, default `'/login.html'`):
    /// where a browser without a session is sent.
    pub page: String,
}

/// `auth.attempts`: `count` per `per`, such as `'5/min'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempts {
    /// Attempts allowed in one window.
    pub count: u32,
    /// The window.
    pub per: Duration,
}

/// One role of `auth.roles`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The role's name.
    pub name: String,
    /// Everything the role may do: its own name, its abilities, and every
    /// ability and name of the roles it names, transitively.
    pub abilities: BTreeSet<String>,
}

/// One user of `auth.users`.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// The user name (the key).
    pub name: String,
    /// The password's Argon2 hash in PHC form (`$argon2id$v=19$…`), as
    /// `wisp --hash-password` prints it; never the password itself.
    pub password: String,
    /// The user's role: a name in `roles`.
    pub role: String,
}

impl std::fmt::Debug for User {
    // The hash stays out of logs and panic messages too.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "User {{ name: {:?}, role: {:?} }}", self.name, self.role)
    }
}

impl Default for LoginPaths {
    fn default() -> Self {
        LoginPaths {
            path: "/auth/login".into(),
            logout: "/auth/logout".into(),
            page: "/login.html".into(),
        }
    }
}

impl Default for Attempts {
    fn default() -> Self {
        Attempts {
            count: 5,
            per: Duration::from_secs(60),
        }
    }
}

impl Users {
    /// The role named `name`.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }

    /// True when some role is named `name` or has the ability `name`.
    pub fn knows(&self, name: &str) -> bool {
        self.roles.iter().any(|r| r.abilities.contains(name))
    }
}

pub(super) fn users(path: &str, v: &Value) -> read::Result<Users> {
    const KEYS: &[&str] = &["roles", "users", "requireTlsForBasic", "login", "attempts"];
    let o = Obj::new(path, v, KEYS)?;
    let roles = match o.get("roles") {
        Some((p, v)) => roles(&p, v)?,
        None => Vec::new(),
    };
    let mut users = Vec::new();
    if let Some((p, Value::Object(map))) = o.get("users") {
        for (name, v) in map {
            let key = format!("{p}.{name}");
            if name.is_empty() || name.contains(':') {
                return fail(&key, "a user name must be non-empty and without ':'");
            }
            let u = Obj::new(&key, v, &["password", "role"])?;
            let password = u
                .string("password")?
                .map_or_else(|| fail(&u.path_of("password"), "is required"), Ok)?;
            if !is_hash(&password) {
                return fail(
                    &u.path_of("password"),
                    "is not a password hash: plain-text passwords are refused; \
                     make one with `wisp --hash-password`",
                );
            }
            let role = u
                .string("role")?
                .map_or_else(|| fail(&u.path_of("role"), "is required"), Ok)?;
            if !roles.iter().any(|r| r.name == role) {
                return fail(
                    &u.path_of("role"),
                    format!("{role:?} is not a role of {path}.roles"),
                );
            }
            users.push(User {
                name: name.clone(),
                password,
                role,
            });
        }
    } else if let Some((p, v)) = o.get("users") {
        return fail(&p, format!("expected an object of users, found {v}"));
    }
    let d = LoginPaths::default();
    let login = match o.get("login") {
        None => d,
        Some((p, v)) => {
            let l = Obj::new(&p, v, &["path", "logout", "page"])?;
            let local = |key: &str, default: String| -> read::Result<String> {
                match l.string(key)? {
                    None => Ok(default),
                    Some(s) if s.starts_with('/') && !s.starts_with("//") => Ok(s),
                    Some(_) => fail(&l.path_of(key), "must be a path starting with '/'"),
                }
            };
            LoginPaths {
                path: local("path", d.path)?,
                logout: local("logout", d.logout)?,
                page: local("page", d.page)?,
            }
        }
    };
    let attempts = match o.string("attempts")? {
        None => Attempts::default(),
        Some(text) => parse_attempts(&text).or_else(|m| fail(&o.path_of("attempts"), m))?,
    };
    Ok(Users {
        roles,
        users,
        require_tls_for_basic: o.boolean("requireTlsForBasic")?.unwrap_or(true),
        login,
        attempts,
    })
}

/// An Argon2 hash in PHC form; anything else is taken for a plain-text password.
fn is_hash(text: &str) -> bool {
    ["$argon2id$", "$argon2i$", "$argon2d$"]
        .iter()
        .any(|p| text.starts_with(p))
        && text.split('$').count() >= 6
}

/// `'5/min'`: a whole number of attempts per second, minute or hour.
fn parse_attempts(text: &str) -> Result<Attempts, String> {
    let bad = || format!("{text:?} is not a number of attempts such as '5/min'");
    let (count, per) = text.split_once('/').ok_or_else(bad)?;
    let count: u32 = count.trim().parse().map_err(|_| bad())?;
    let secs = match per.trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "secs" | "second" => 1,
        "m" | "min" | "mins" | "minute" => 60,
        "h" | "hr" | "hour" => 3600,
        _ => return Err(bad()),
    };
    if count == 0 {
        return Err(format!("{text:?} must allow at least one attempt"));
    }
    Ok(Attempts {
        count,
        per: Duration::from_secs(secs),
    })
}

/// `roles: { name: [abilities or role names] }`, each expanded.
fn roles(path: &str, v: &Value) -> read::Result<Vec<Role>> {
    let Value::Object(map) = v else {
        return fail(
            path,
            "expected an object of roles such as { admin: ['edit'] }",
        );
    };
    let written = map
        .iter()
        .map(|(name, v)| {
            Ok((
                name.as_str(),
                read::strings_of(&format!("{path}.{name}"), v)?,
            ))
        })
        .collect::<read::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(written.len());
    for (name, _) in &written {
        let mut abilities = BTreeSet::new();
        let mut trail = Vec::new();
        expand(path, &written, name, &mut trail, &mut abilities)?;
        out.push(Role {
            name: name.to_string(),
            abilities,
        });
    }
    Ok(out)
}

/// Adds `name` and everything it grants to `into`; `trail` is the chain of
/// roles being expanded, to tell a cycle.
fn expand<'w>(
    path: &str,
    written: &'w [(&'w str, Vec<String>)],
    name: &'w str,
    trail: &mut Vec<&'w str>,
    into: &mut BTreeSet<String>,
) -> read::Result<()> {
    if trail.contains(&name) {
        trail.push(name);
        return fail(
            &format!("{path}.{}", trail[0]),
            format!("roles inherit in a cycle: {}", trail.join(" → ")),
        );
    }
    into.insert(name.to_string());
    let Some((_, grants)) = written.iter().find(|(n, _)| *n == name) else {
        return Ok(());
    };
    trail.push(name);
    for grant in grants {
        if grant.is_empty() {
            return fail(&format!("{path}.{name}"), "an ability must not be empty");
        }
        if written.iter().any(|(n, _)| n == grant) {
            expand(path, written, grant, trail, into)?;
        } else {
            into.insert(grant.clone());
        }
    }
    trail.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$argon2id$v=19$m=7168,t=5,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

    fn parse(v: Value) -> Result<Users, String> {
        users("web.auth", &v).map_err(|e| format!("{}: {}", e.key, e.message))
    }

    #[test]
    fn roles_inherit_abilities_and_names() {
        let u = parse(serde_json::json!({
            "roles": { "user": ["view"], "admin": ["user", "edit"], "root": ["admin"] },
            "users": { "alice": { "password": HASH, "role": "admin" } },
        }))
        .unwrap();
        let admin = &u.role("admin").unwrap().abilities;
        let want: BTreeSet<String> = ["admin", "user", "view", "edit"].map(String::from).into();
        assert_eq!(admin, &want);
        assert!(u.role("root").unwrap().abilities.contains("view"));
        assert!(!u.role("user").unwrap().abilities.contains("edit"));
        assert!(u.knows("edit") && u.knows("root") && !u.knows("fly"));
        assert_eq!(u.users[0].role, "admin");
        assert!(u.require_tls_for_basic);
        assert_eq!(u.attempts, Attempts::default());
        assert!(!format!("{:?}", u.users[0]).contains("argon2"));
    }

    #[test]
    fn bad_auth_configs_name_their_key() {
        let cases = [
            (
                serde_json::json!({ "roles": { "a": ["b"], "b": ["c"], "c": ["a"] } }),
                "web.auth.roles.a: roles inherit in a cycle: a → b → c → a",
            ),
            (
                serde_json::json!({ "roles": { "a": ["a"] } }),
                "web.auth.roles.a: roles inherit in a cycle: a → a",
            ),
            (
                serde_json::json!({ "roles": { "a": [] }, "users": { "bob": { "password": HASH, "role": "b" } } }),
                "web.auth.users.bob.role: \"b\" is not a role of web.auth.roles",
            ),
            (
                serde_json::json!({ "roles": { "a": [] }, "users": { "bob": { "password": "hunter2", "role": "a" } } }),
                "web.auth.users.bob.password: is not a password hash: plain-text passwords are refused; make one with `wisp --hash-password`",
            ),
            (
                serde_json::json!({ "attempts": "five" }),
                "web.auth.attempts: \"five\" is not a number of attempts such as '5/min'",
            ),
            (
                serde_json::json!({ "login": { "page": "https://evil/" } }),
                "web.auth.login.page: must be a path starting with '/'",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(parse(v).unwrap_err(), want);
        }
    }

    #[test]
    fn attempts_parse() {
        assert_eq!(
            parse_attempts("10/hour"),
            Ok(Attempts {
                count: 10,
                per: Duration::from_secs(3600)
            })
        );
        assert!(parse_attempts("0/min").is_err());
        assert!(parse_attempts("5").is_err());
    }
}
