//! Which configured route answers a path: redirects first, then the first
//! matching route. A listener may redirect every request before any path is
//! looked at (`{ from: 'http://:8080', to: 'https://:8443' }`).

use std::net::SocketAddr;

use crate::config::redirect::{self, Target};
use crate::config::{Config, HandlerKind, Redirect, RouteConfig};
use crate::error::StartError;
use crate::files::Documents;

/// A route with its documents folder resolved once at start-up.
#[derive(Debug)]
pub(crate) struct Route {
    pub config: RouteConfig,
    /// Canonical documents folder and the files it keeps open (file routes only).
    pub root: Option<Documents>,
}

impl Route {
    /// True when the method is allowed on this route.
    pub fn allows(&self, method: &str) -> bool {
        match &self.config.methods {
            Some(list) => list.iter().any(|m| m == method),
            None => match self.config.handler {
                HandlerKind::File => matches!(method, "GET" | "HEAD"),
                HandlerKind::Action | HandlerKind::Proxy => true,
            },
        }
    }

    /// The `Allow` header value for a 405.
    pub fn allow_header(&self) -> String {
        match &self.config.methods {
            Some(list) => list.join(", "),
            None => "GET, HEAD".to_string(),
        }
    }
}

/// What the routing table decided for a path.
#[derive(Debug)]
pub(crate) enum Decision<'r> {
    Redirect { status: u16, location: &'r str },
    Route(&'r Route),
    NotFound,
}

/// A redirect of every request on some listeners.
#[derive(Debug)]
pub(crate) struct ListenerRedirect {
    pub status: u16,
    pub target: Target,
    /// For a `to` with port 0: the listener whose bound port it stands for.
    port_of: Option<usize>,
}

/// The routing table.
#[derive(Debug)]
pub(crate) struct Routes {
    routes: Vec<Route>,
    /// The exact-path redirects.
    redirects: Vec<Redirect>,
    listener_redirects: Vec<ListenerRedirect>,
    /// By listener index (`listen`, then `listen_tls`): which of
    /// `listener_redirects` answers its requests.
    by_listener: Vec<Option<usize>>,
}

impl Routes {
    /// Puts a route (an action or proxy route, which has no folder) before
    /// every other: routes added in code take precedence over the config's.
    pub fn prepend(&mut self, config: RouteConfig) {
        self.routes.insert(0, Route { config, root: None });
    }

    /// The methods some route accepts, for the `Allow` of `OPTIONS *`
    /// (which is itself always answered).
    pub fn methods(&self) -> String {
        const KNOWN: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];
        let served = |m: &&str| *m == "OPTIONS" || self.routes.iter().any(|r| r.allows(m));
        KNOWN
            .into_iter()
            .filter(served)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Resolves every file route's documents folder; a missing folder is a start-up error.
    pub fn new(config: &Config) -> Result<Routes, StartError> {
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let root = match r.handler {
                    HandlerKind::File => {
                        let dir = r.documents.as_ref().unwrap_or(&config.documents);
                        let fail = |source| StartError::Documents {
                            path: dir.clone(),
                            source,
                        };
                        let root = dir.canonicalize().map_err(fail)?;
                        // A file there would make every request a 404.
                        if !root.is_dir() {
                            return Err(fail(rustix::io::Errno::NOTDIR.into()));
                        }
                        Some(Documents::new(root))
                    }
                    HandlerKind::Action | HandlerKind::Proxy => None,
                };
                Ok(Route {
                    config: r.clone(),
                    root,
                })
            })
            .collect::<Result<_, StartError>>()?;
        let (paths, listeners): (Vec<_>, Vec<_>) = config
            .redirects
            .iter()
            .cloned()
            .partition(|r| !redirect::is_listener(&r.from));
        let mut table = Routes {
            routes,
            redirects: paths,
            listener_redirects: Vec::new(),
            by_listener: vec![None; config.listen.len() + config.listen_tls.len()],
        };
        for r in &listeners {
            table.add_listener_redirect(config, r);
        }
        Ok(table)
    }

    /// Adds a redirect whose `from` is a listen URL (checked when the config
    /// was read; one that is not is skipped with a warning, like one that is
    /// no listener's).
    fn add_listener_redirect(&mut self, config: &Config, r: &Redirect) {
        let (Ok(from), Ok(target)) = (redirect::listener(&r.from), redirect::target(&r.to)) else {
            log::warn!(
                "redirect from {:?} to {:?}: not a listener redirect",
                r.from,
                r.to
            );
            return;
        };
        let index = self.listener_redirects.len();
        let mut found = false;
        for (i, listener) in listeners(config).enumerate() {
            if serves(from, listener) && self.by_listener[i].is_none() {
                self.by_listener[i] = Some(index);
                found = true;
            }
        }
        if !found {
            log::warn!(
                "redirect from {}: no listener there (listen: {:?})",
                r.from,
                listeners(config).map(|(a, _)| a).collect::<Vec<_>>()
            );
        }
        let port_of = (target.port == Some(0))
            .then(|| listeners(config).position(|(a, tls)| tls == target.https && a.port() == 0))
            .flatten();
        self.listener_redirects.push(ListenerRedirect {
            status: r.status,
            target,
            port_of,
        });
    }

    /// Puts the ports the listeners were given (`bound`, in listener order)
    /// in place of the zeros of `to`.
    pub fn bound(&mut self, bound: &[SocketAddr]) {
        for r in &mut self.listener_redirects {
            if let Some(addr) = r.port_of.and_then(|i| bound.get(i)) {
                r.target.port = Some(addr.port());
            }
        }
    }

    /// The redirect that answers every request on listener `index`, if any.
    #[inline]
    pub fn listener_redirect(&self, index: u16) -> Option<&ListenerRedirect> {
        let i = (*self.by_listener.get(usize::from(index))?)?;
        self.listener_redirects.get(i)
    }

    /// Routes a normalised path (decoded, dot segments removed, starting with '/').
    pub fn decide(&self, path: &str) -> Decision<'_> {
        if let Some(r) = self.redirects.iter().find(|r| r.from == path) {
            return Decision::Redirect {
                status: r.status,
                location: &r.to,
            };
        }
        match self
            .routes
            .iter()
            .find(|r| matches(&r.config.pattern, path))
        {
            // With a `role`, Ioto's `redirect` is where the refused go.
            Some(route) => match &route.config.redirect {
                Some(rr) if route.config.role.is_none() => Decision::Redirect {
                    status: rr.status,
                    location: &rr.to,
                },
                _ => Decision::Route(route),
            },
            None => Decision::NotFound,
        }
    }
}

/// The listeners in the order the server binds them: each address and
/// whether it is `https`.
fn listeners(config: &Config) -> impl Iterator<Item = (SocketAddr, bool)> + '_ {
    let plain = config.listen.iter().map(|&a| (a, false));
    plain.chain(config.listen_tls.iter().map(|&a| (a, true)))
}

/// True when a redirect `from` covers a listener: the same scheme and port,
/// and the same address unless `from` names none (`http://:8080`).
fn serves(from: (SocketAddr, bool), listener: (SocketAddr, bool)) -> bool {
    let ((f, f_tls), (l, l_tls)) = (from, listener);
    f_tls == l_tls && f.port() == l.port() && (f.ip().is_unspecified() || f.ip() == l.ip())
}

/// Ioto's rule: a pattern ending in '/' is a prefix, anything else is exact; '' matches all.
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    if pattern.is_empty() {
        true
    } else if pattern.ends_with('/') {
        path.starts_with(pattern)
    } else {
        path == pattern
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_exact_and_catch_all() {
        assert!(matches("", "/anything"));
        assert!(matches("/api/", "/api/status"));
        assert!(matches("/api/", "/api/"));
        assert!(!matches("/api/", "/api"));
        assert!(!matches("/api/", "/apix/status"));
        assert!(matches("/login", "/login"));
        assert!(!matches("/login", "/login/x"));
    }

    #[test]
    fn a_file_as_documents_is_a_start_up_error() {
        let file = std::env::temp_dir().join(format!("wisp-docs-file-{}", std::process::id()));
        std::fs::write(&file, "not a folder").unwrap();
        let text = format!("{{ web: {{ documents: '{}' }} }}", file.display());
        let config = Config::parse(&text, &std::env::temp_dir()).unwrap();
        let err = Routes::new(&config).unwrap_err().to_string();
        std::fs::remove_file(&file).unwrap();
        assert!(
            err.starts_with("documents folder ") && err.contains("directory"),
            "{err}"
        );
    }

    #[test]
    fn options_star_lists_the_methods_some_route_accepts() {
        let routes = |list: &str| {
            let text = format!("{{ web: {{ documents: '.', routes: [{list}] }} }}");
            let config = Config::parse(&text, &std::env::temp_dir()).unwrap();
            Routes::new(&config).unwrap().methods()
        };
        assert_eq!(routes("{ match: '' }"), "GET, HEAD, OPTIONS");
        assert_eq!(
            routes("{ match: '/up/', methods: ['GET', 'PUT'] }, { match: '' }"),
            "GET, HEAD, PUT, OPTIONS"
        );
        assert_eq!(
            routes("{ match: '/api/', handler: 'action' }"),
            "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"
        );
    }

    #[test]
    fn first_match_wins_and_redirects_come_first() {
        let text = r#"{ web: { documents: '.', routes: [
            { match: '/api/', handler: 'action' },
            { match: '/old', redirect: '/new' },
            { match: '', handler: 'file' } ],
            redirect: [ { from: '/api/legacy', to: '/api/v2', status: 308 } ] } }"#;
        let config = Config::parse(text, &std::env::temp_dir()).unwrap();
        let routes = Routes::new(&config).unwrap();
        assert!(matches!(
            routes.decide("/api/legacy"),
            Decision::Redirect {
                status: 308,
                location: "/api/v2"
            }
        ));
        assert!(matches!(
            routes.decide("/old"),
            Decision::Redirect {
                status: 302,
                location: "/new"
            }
        ));
        match routes.decide("/api/x") {
            Decision::Route(r) => assert_eq!(r.config.pattern, "/api/"),
            other => panic!("{other:?}"),
        }
        match routes.decide("/index.html") {
            Decision::Route(r) => {
                assert!(r.root.is_some() && r.allows("HEAD") && !r.allows("POST"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_listener_redirect_covers_its_listeners_only() {
        let text = r#"{ web: { documents: '.',
            listen: ['http://127.0.0.1:8080', 'http://[::1]:8080', 'http://127.0.0.1:9000', 'http://127.0.0.1:0'],
            redirect: [ { from: 'http://:8080', to: 'https://:8443', status: 308 },
                        { from: 'http://127.0.0.1:0', to: 'http://:0' },
                        { from: 'http://:7777', to: 'https://:8443' },
                        { from: '/a', to: '/b' } ] } }"#;
        let config = Config::parse(text, &std::env::temp_dir()).unwrap();
        let mut routes = Routes::new(&config).unwrap();
        let to = |i: u16| {
            routes
                .listener_redirect(i)
                .map(|r| (r.status, r.target.port))
        };
        assert_eq!(to(0), Some((308, Some(8443))));
        assert_eq!(to(1), Some((308, Some(8443))), "every address on the port");
        assert_eq!(to(2), None, "another port");
        assert_eq!(to(3), Some((301, Some(0))));
        assert_eq!(to(4), None, "no such listener");
        // Port 0 in `to` is the port the listener got.
        let bound: Vec<SocketAddr> = [
            "127.0.0.1:8080",
            "[::1]:8080",
            "127.0.0.1:9000",
            "127.0.0.1:41234",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        routes.bound(&bound);
        assert_eq!(
            routes.listener_redirect(3).unwrap().target.port,
            Some(41234)
        );
        assert!(matches!(
            routes.decide("/a"),
            Decision::Redirect { location: "/b", .. }
        ));
    }

    #[test]
    fn missing_documents_is_a_start_error() {
        let text = "{ web: { documents: './no-such-folder-wisp' } }";
        let config = Config::parse(text, &std::env::temp_dir()).unwrap();
        assert!(matches!(
            Routes::new(&config),
            Err(StartError::Documents { .. })
        ));
    }
}
