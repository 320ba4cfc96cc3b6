//! `web.auth`: the login paths, and the answers to requests the gate refused.

use super::*;

/// Every `web.auth` user's password is an Argon2 hash `auth::password` can verify.
pub(super) fn check_hashes(config: &Config) -> Result<(), StartError> {
    let users = config.auth.iter().flat_map(|a| a.users.iter());
    match users
        .into_iter()
        .find(|u| !auth::password::is_valid(&u.password))
    {
        None => Ok(()),
        Some(u) => Err(StartError::Config(ConfigError::Invalid {
            path: None,
            key: format!("web.auth.users.{}.password", u.name),
            message: "is not a valid Argon2 hash (make one with `wisp --hash-password`)".into(),
        })),
    }
}

/// Where a request comes from, as `auth::gate` takes it.
pub(super) fn gate_from(origin: &Origin) -> gate::From {
    gate::From {
        peer: origin.peer.ip(),
        tls: origin.tls,
        now: origin.now,
    }
}

impl App {
    /// The login form's paths (`web.auth.login`): the form's `POST` and a
    /// `GET` saying who is logged in at `path`, and `logout`.
    pub(super) fn login_paths(
        &mut self,
        request: Incoming<'_, '_>,
        out: &mut Vec<u8>,
        close: bool,
    ) -> Option<Handled> {
        let Incoming {
            head, body, origin, ..
        } = request;
        let gate = self.gate.as_mut()?;
        let paths = gate.paths();
        let (login, logout) = (head.path == paths.path, head.path == paths.logout);
        let page = paths.page.clone();
        let from = gate_from(&origin);
        Some(match head.method {
            "POST" if login => match gate.login(head, body, from) {
                LoggedIn::Yes { location, cookies } => {
                    log::info!("{}: logged in", origin.peer);
                    self.see_other(&location, &cookies, out, close)
                }
                LoggedIn::No(why) => {
                    self.hub.stats.limits.auth += 1;
                    self.status_page(head, out, 401, close, None, why)
                }
                LoggedIn::TooMany(wait) => self.refused(Refusal::TooMany(wait), head, out, close),
            },
            "GET" | "HEAD" if login => match gate.who(head, origin.now) {
                Some(who) => {
                    let json = serde_json::json!({ "user": who.user, "role": who.role });
                    let response = Response::json(&json).with_header("Cache-Control", "no-store");
                    self.write_response(&response, head.method == "HEAD", out, close)
                }
                None => self.status_page(head, out, 401, close, None, "no session"),
            },
            "POST" if logout => {
                let cookies = gate.logout(head, origin.tls);
                self.see_other(&page, &cookies, out, close)
            }
            _ if login || logout => {
                let allow = if login { "GET, HEAD, POST" } else { "POST" };
                let why = "the method is not one the login path takes";
                self.status_page(head, out, 405, close, Some(("Allow", allow)), why)
            }
            _ => return None,
        })
    }

    /// 303 to `location`, setting `cookies`.
    pub(super) fn see_other(
        &self,
        location: &str,
        cookies: &[String],
        out: &mut Vec<u8>,
        close: bool,
    ) -> Handled {
        let mut w = HeadWriter::start(out, 303, &self.date.text, &self.config.headers);
        w.header("Location", location);
        w.header("Cache-Control", "no-store");
        for cookie in cookies {
            w.header("Set-Cookie", cookie);
        }
        w.finish(Some(0), close);
        Handled::response(close)
    }

    /// The answer to a request `web.auth` did not let in.
    pub(super) fn refused(
        &mut self,
        refusal: Refusal,
        head: &Head<'_>,
        out: &mut Vec<u8>,
        close: bool,
    ) -> Handled {
        match refusal {
            Refusal::Challenge(challenge) => {
                let header = Some(("WWW-Authenticate", challenge.as_str()));
                self.status_page(
                    head,
                    out,
                    401,
                    close,
                    header,
                    "no credentials for the route's role",
                )
            }
            Refusal::Login(location) => {
                log::debug!(
                    "{}: 302 for {} {}: to the login page",
                    self.peer,
                    head.method,
                    head.path
                );
                let mut w = HeadWriter::start(out, 302, &self.date.text, &self.config.headers);
                w.header("Location", &location);
                w.finish(Some(0), close);
                Handled::response(close)
            }
            Refusal::Wrong(challenge) => {
                self.hub.stats.limits.auth += 1;
                let header = Some(("WWW-Authenticate", challenge.as_str()));
                self.status_page(head, out, 401, close, header, "wrong user name or password")
            }
            Refusal::Forbidden(why) => {
                self.hub.stats.limits.auth += 1;
                self.status_page(head, out, 403, close, None, why)
            }
            Refusal::TooMany(wait) => {
                self.hub.stats.limits.auth += 1;
                let after = retry_after(wait);
                let header = Some(("Retry-After", after.as_str()));
                self.status_page(
                    head,
                    out,
                    429,
                    close,
                    header,
                    "too many login attempts from the address",
                )
            }
        }
    }
}
