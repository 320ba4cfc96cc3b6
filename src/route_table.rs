//! Which configured route answers a path: redirects first, then the first matching route.

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
                HandlerKind::Action => true,
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

/// The routing table.
#[derive(Debug)]
pub(crate) struct Routes {
    routes: Vec<Route>,
    redirects: Vec<Redirect>,
}

impl Routes {
    /// Resolves every file route's documents folder; a missing folder is a start-up error.
    pub fn new(config: &Config) -> Result<Routes, StartError> {
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let root = match r.handler {
                    HandlerKind::File => {
                        let dir = r.documents.as_ref().unwrap_or(&config.documents);
                        let root = dir.canonicalize().map_err(|source| StartError::Documents {
                            path: dir.clone(),
                            source,
                        })?;
                        Some(Documents::new(root))
                    }
                    HandlerKind::Action => None,
                };
                Ok(Route {
                    config: r.clone(),
                    root,
                })
            })
            .collect::<Result<_, StartError>>()?;
        Ok(Routes {
            routes,
            redirects: config.redirects.clone(),
        })
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
            Some(route) => match &route.config.redirect {
                Some(rr) => Decision::Redirect {
                    status: rr.status,
                    location: &rr.to,
                },
                None => Decision::Route(route),
            },
            None => Decision::NotFound,
        }
    }
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
    fn missing_documents_is_a_start_error() {
        let text = "{ web: { documents: './no-such-folder-wisp' } }";
        let config = Config::parse(text, &std::env::temp_dir()).unwrap();
        assert!(matches!(
            Routes::new(&config),
            Err(StartError::Documents { .. })
        ));
    }
}
