//! `web.auth` at the door: who a request comes from (a session cookie or
//! HTTP Basic credentials), whether the route's `role` and `xsrf` let it
//! in, and the login form's `POST`, logout and "who am I". Decisions only:
//! `app` writes the answers.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::attempts::Limiter;
use super::credentials::{self, basic, cookie, encode_component, local_next, wants_html};
use super::password;
use super::sessions::{self, Sessions, COOKIE, XSRF_COOKIE, XSRF_HEADER};
use crate::config::{Config, LoginPaths, Users};
use crate::http::head::Head;

/// The users, their sessions and the attempts' limiter of one server.
#[derive(Debug)]
pub(crate) struct Gate {
    users: Users,
    sessions: Sessions,
    limiter: Limiter,
    /// The realm of the Basic challenge: the config's `name`, else "wisp".
    realm: String,
}

/// Where a request comes from, for the decisions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct From {
    pub peer: IpAddr,
    pub tls: bool,
    pub now: Instant,
}

/// A user let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Admitted {
    pub user: String,
    pub role: String,
}

/// Why a logged-in user is refused a route with a `role` they lack.
pub(crate) const ROLE_REFUSED: &str = "the user's role does not grant the route's role";

/// Why a request was not let in, and how it is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No credentials from a program: 401 with this `WWW-Authenticate`.
    Challenge(String),
    /// No credentials from a browser: 302 to the login page (this `Location`).
    Login(String),
    /// Wrong credentials: 401 with this `WWW-Authenticate`.
    Wrong(String),
    /// Not allowed, or Basic over plain HTTP, or no XSRF token: 403 and why.
    Forbidden(&'static str),
    /// Too many attempts from the address: 429 with `Retry-After`.
    TooMany(Duration),
}

/// What a login form's `POST` came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LoggedIn {
    /// 303 to `location`, setting these cookies.
    Yes {
        location: String,
        cookies: [String; 2],
    },
    /// Wrong user name or password (or not a form): 401.
    No(&'static str),
    /// Over `auth.attempts`: 429.
    TooMany(Duration),
}

impl Gate {
    /// The gate of `config.auth`, if there is one.
    pub fn new(config: &Config) -> Option<Gate> {
        let users = config.auth.clone()?;
        Some(Gate {
            limiter: Limiter::new(users.attempts),
            users,
            sessions: Sessions::new(config.timeouts.session),
            realm: config.name.clone().unwrap_or_else(|| "wisp".into()),
        })
    }

    /// The login form's paths.
    pub fn paths(&self) -> &LoginPaths {
        &self.users.login
    }

    /// The user of the request's live session, if any.
    fn session_user(&mut self, head: &Head<'_>, now: Instant) -> Option<(String, String)> {
        let id = cookie(head, COOKIE)?;
        let s = self.sessions.find(id, now)?;
        Some((s.user.clone(), s.xsrf.clone()))
    }

    /// Lets a request to a route with `role` and `xsrf` in, or says why not.
    pub fn admit(
        &mut self,
        (role, xsrf): (Option<&str>, bool),
        head: &Head<'_>,
        from: From,
    ) -> Result<Option<Admitted>, Refusal> {
        let session = self.session_user(head, from.now);
        if xsrf && sessions::changes_state(head.method) {
            let sent = head.header(XSRF_HEADER).map(crate::http::fields::trim);
            let ok = session.as_ref().is_some_and(|(_, token)| {
                sent.is_some_and(|s| super::constant_time_eq(token.as_bytes(), s))
            });
            if !ok {
                return Err(Refusal::Forbidden(
                    "no valid X-XSRF-TOKEN header for the session",
                ));
            }
        }
        let Some(role) = role else {
            return Ok(None);
        };
        let user = match session {
            Some((user, _)) => user,
            None => self.basic_user(head, from)?,
        };
        let Some(account) = self.users.users.iter().find(|u| u.name == user) else {
            return Err(Refusal::Forbidden(
                "the session's user is no longer configured",
            ));
        };
        let allowed = self
            .users
            .role(&account.role)
            .is_some_and(|r| r.abilities.contains(role));
        if !allowed {
            return Err(Refusal::Forbidden(ROLE_REFUSED));
        }
        Ok(Some(Admitted {
            user,
            role: account.role.clone(),
        }))
    }

    /// The user named by valid HTTP Basic credentials.
    fn basic_user(&mut self, head: &Head<'_>, from: From) -> Result<String, Refusal> {
        let challenge = format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm);
        let Some(credentials) = basic(head) else {
            if wants_html(head) {
                let mut target = head.path.to_string();
                if !head.query.is_empty() {
                    target.push('?');
                    target.push_str(head.query);
                }
                let page = &self.users.login.page;
                return Err(Refusal::Login(format!(
                    "{page}?next={}",
                    encode_component(&target)
                )));
            }
            return Err(Refusal::Challenge(challenge));
        };
        if !from.tls && self.users.require_tls_for_basic {
            return Err(Refusal::Forbidden(
                "HTTP Basic credentials over plain HTTP are refused (requireTlsForBasic)",
            ));
        }
        if let Some(wait) = self.limiter.exhausted(from.peer, from.now) {
            return Err(Refusal::TooMany(wait));
        }
        match credentials.and_then(|(user, password)| self.verify(&user, &password).then_some(user))
        {
            Some(user) => Ok(user),
            None => {
                let _ = self.limiter.attempt(from.peer, from.now);
                Err(Refusal::Wrong(challenge))
            }
        }
    }

    /// True when `password` is `user`'s. An unknown user costs a verify too.
    fn verify(&self, user: &str, password: &str) -> bool {
        match self.users.users.iter().find(|u| u.name == user) {
            Some(u) => password::verify(password, &u.password),
            None => {
                password::verify(password, password::decoy());
                false
            }
        }
    }

    /// The login form's `POST` (`username`, `password`, `next`).
    pub fn login(&mut self, head: &Head<'_>, body: &[u8], from: From) -> LoggedIn {
        if let Err(wait) = self.limiter.attempt(from.peer, from.now) {
            return LoggedIn::TooMany(wait);
        }
        if !credentials::is_form(head) {
            return LoggedIn::No("the login is not an application/x-www-form-urlencoded form");
        }
        let user = credentials::field(body, "username").unwrap_or_default();
        let password = credentials::field(body, "password").unwrap_or_default();
        if !self.verify(&user, &password) {
            return LoggedIn::No("wrong user name or password");
        }
        // A fresh id at each login: one planted before it is worth nothing.
        if let Some(old) = cookie(head, COOKIE) {
            self.sessions.close(old);
        }
        let next = credentials::field(body, "next");
        let location = local_next(next.as_deref()).to_string();
        let session = self.sessions.open(&user, from.now);
        let secure = if from.tls { "; Secure" } else { "" };
        LoggedIn::Yes {
            location,
            cookies: [
                format!(
                    "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax{secure}",
                    session.id()
                ),
                format!(
                    "{XSRF_COOKIE}={}; Path=/; SameSite=Lax{secure}",
                    session.xsrf
                ),
            ],
        }
    }

    /// Ends the request's session; the cookies that clear it in the browser.
    pub fn logout(&mut self, head: &Head<'_>, tls: bool) -> [String; 2] {
        if let Some(id) = cookie(head, COOKIE) {
            self.sessions.close(id);
        }
        let secure = if tls { "; Secure" } else { "" };
        [
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"),
            format!("{XSRF_COOKIE}=; Path=/; SameSite=Lax; Max-Age=0{secure}"),
        ]
    }

    /// The session's user and role, for a `GET` of the login path.
    pub fn who(&mut self, head: &Head<'_>, now: Instant) -> Option<Admitted> {
        let (user, _) = self.session_user(head, now)?;
        let account = self.users.users.iter().find(|u| u.name == user)?;
        Some(Admitted {
            user,
            role: account.role.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::with_head;

    fn gate() -> Gate {
        let hash = password::hash("pw");
        let text = format!(
            "{{ web: {{ auth: {{ roles: {{ user: ['view'], admin: ['user', 'edit'] }}, users: {{ \
             alice: {{ password: '{hash}', role: 'admin' }}, bob: {{ password: '{hash}', role: 'user' }} }}, \
             attempts: '3/min' }} }} }}"
        );
        let config = Config::parse(&text, std::path::Path::new("/")).unwrap();
        Gate::new(&config).unwrap()
    }

    fn from(tls: bool) -> From {
        From {
            peer: [192, 0, 2, 1].into(),
            tls,
            now: Instant::now(),
        }
    }

    fn admit(
        g: &mut Gate,
        role: &str,
        xsrf: bool,
        head: &str,
        tls: bool,
    ) -> Result<Option<Admitted>, Refusal> {
        with_head(head, |h| g.admit((Some(role), xsrf), h, from(tls)))
    }

    fn basic_head(method: &str, user: &str, password: &str) -> String {
        use base64::Engine as _;
        let c = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("{method} /x HTTP/1.1\r\nHost: h\r\nAuthorization: Basic {c}\r\n\r\n")
    }

    #[test]
    fn basic_roles_and_refusals() {
        let mut g = gate();
        let alice = basic_head("GET", "alice", "pw");
        let admitted = admit(&mut g, "view", false, &alice, true).unwrap().unwrap();
        assert_eq!(
            (admitted.user.as_str(), admitted.role.as_str()),
            ("alice", "admin")
        );
        assert!(matches!(
            admit(&mut g, "view", false, &alice, false),
            Err(Refusal::Forbidden(_))
        ));
        assert!(matches!(
            admit(&mut g, "edit", false, &basic_head("GET", "bob", "pw"), true),
            Err(Refusal::Forbidden(_))
        ));
        let none = "GET /x?a=1 HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(
            admit(&mut g, "view", false, none, true),
            Err(Refusal::Challenge(
                "Basic realm=\"wisp\", charset=\"UTF-8\"".into()
            ))
        );
        let browser = "GET /x?a=1 HTTP/1.1\r\nHost: h\r\nAccept: text/html,*/*\r\n\r\n";
        assert_eq!(
            admit(&mut g, "view", false, browser, true),
            Err(Refusal::Login("/login.html?next=/x%3Fa%3D1".into()))
        );
        for _ in 0..3 {
            let wrong = basic_head("GET", "alice", "nope");
            assert!(matches!(
                admit(&mut g, "view", false, &wrong, true),
                Err(Refusal::Wrong(_))
            ));
        }
        assert!(matches!(
            admit(&mut g, "view", false, &alice, true),
            Err(Refusal::TooMany(_))
        ));
    }

    #[test]
    fn login_session_xsrf_and_logout() {
        let mut g = gate();
        let form =
            "POST /auth/login HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n";
        let body = b"username=alice&password=pw&next=%2F%2Fevil.example";
        let LoggedIn::Yes { location, cookies } = with_head(form, |h| g.login(h, body, from(true)))
        else {
            panic!("not logged in");
        };
        assert_eq!(location, "/");
        assert!(
            cookies[0].ends_with("; Path=/; HttpOnly; SameSite=Lax; Secure"),
            "{}",
            cookies[0]
        );
        let id = cookies[0].split(['=', ';']).nth(1).unwrap().to_string();
        let token = cookies[1].split(['=', ';']).nth(1).unwrap().to_string();
        let get = format!("GET /x HTTP/1.1\r\nHost: h\r\nCookie: {COOKIE}={id}\r\n\r\n");
        assert_eq!(
            admit(&mut g, "edit", true, &get, false)
                .unwrap()
                .unwrap()
                .user,
            "alice"
        );
        let post = format!("POST /x HTTP/1.1\r\nHost: h\r\nCookie: {COOKIE}={id}\r\n\r\n");
        assert!(matches!(
            admit(&mut g, "edit", true, &post, false),
            Err(Refusal::Forbidden(_))
        ));
        let post = format!(
            "POST /x HTTP/1.1\r\nHost: h\r\nCookie: {COOKIE}={id}\r\nX-XSRF-TOKEN: {token}\r\n\r\n"
        );
        assert!(admit(&mut g, "edit", true, &post, false).is_ok());
        assert_eq!(
            with_head(&get, |h| g.who(h, Instant::now())).unwrap().role,
            "admin"
        );
        let cleared = with_head(&get, |h| g.logout(h, false));
        assert!(cleared[0].contains("Max-Age=0"));
        assert!(with_head(&get, |h| g.who(h, Instant::now())).is_none());
        let wrong = b"username=alice&password=nope";
        assert_eq!(
            with_head(form, |h| g.login(h, wrong, from(true))),
            LoggedIn::No("wrong user name or password")
        );
        // The third attempt in the minute is the last one allowed.
        assert!(matches!(
            with_head(form, |h| g.login(h, body, from(true))),
            LoggedIn::Yes { .. }
        ));
        assert!(matches!(
            with_head(form, |h| g.login(h, body, from(true))),
            LoggedIn::TooMany(_)
        ));
    }
}
