//! Login sessions: kept in memory by the event loop (no thread), at most
//! [`MAX_SESSIONS`] (the least recently used goes first), each ending after
//! `timeouts.session` unused. Ids and XSRF tokens are 128 unpredictable bits
//! from `entropy`; ids are looked up by a constant-time comparison.

use std::time::{Duration, Instant};

use super::constant_time_eq;

/// Sessions kept at once.
pub(crate) const MAX_SESSIONS: usize = 1000;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "wisp-session";
/// The XSRF token's cookie, readable by the page's scripts.
pub(crate) const XSRF_COOKIE: &str = "XSRF-TOKEN";
/// The header a state-changing request to an `xsrf` route carries the token in.
pub(crate) const XSRF_HEADER: &str = "x-xsrf-token";

/// One logged-in user.
#[derive(Debug)]
pub(crate) struct Session {
    id: String,
    pub user: String,
    pub xsrf: String,
    used: Instant,
}

/// The sessions of one server.
#[derive(Debug)]
pub(crate) struct Sessions {
    list: Vec<Session>,
    /// A session unused this long is gone; `None`: never.
    idle: Option<Duration>,
    limit: usize,
}

impl Sessions {
    pub fn new(idle: Option<Duration>) -> Sessions {
        Sessions {
            list: Vec::new(),
            idle,
            limit: MAX_SESSIONS,
        }
    }

    /// Starts a session for `user`; returns it (its id for the cookie).
    pub fn open(&mut self, user: &str, now: Instant) -> &Session {
        self.expire(now);
        if self.list.len() >= self.limit {
            if let Some(oldest) = (0..self.list.len()).min_by_key(|&i| self.list[i].used) {
                self.list.swap_remove(oldest);
            }
        }
        self.list.push(Session {
            id: crate::entropy::token(),
            user: user.to_string(),
            xsrf: crate::entropy::token(),
            used: now,
        });
        self.list.last().expect("just pushed")
    }

    /// The live session with this id, its idle time started over.
    pub fn find(&mut self, id: &str, now: Instant) -> Option<&Session> {
        self.expire(now);
        // Every id is compared in full: timing tells nothing of a near miss.
        let index = self.list.iter().enumerate().fold(None, |found, (i, s)| {
            if constant_time_eq(s.id.as_bytes(), id.as_bytes()) {
                Some(i)
            } else {
                found
            }
        })?;
        let session = &mut self.list[index];
        session.used = now;
        Some(session)
    }

    /// Ends the session with this id, if there is one.
    pub fn close(&mut self, id: &str) {
        self.list
            .retain(|s| !constant_time_eq(s.id.as_bytes(), id.as_bytes()));
    }

    /// Sessions kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.list.len()
    }

    fn expire(&mut self, now: Instant) {
        if let Some(idle) = self.idle {
            self.list
                .retain(|s| now.saturating_duration_since(s.used) < idle);
        }
    }
}

impl Session {
    /// The id the session cookie carries.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// A method that changes state, for which an `xsrf` route wants the token.
pub(crate) fn changes_state(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "DELETE" | "PATCH")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_slide_expire_and_are_bounded() {
        let t0 = Instant::now();
        let min = Duration::from_secs(60);
        let mut s = Sessions::new(Some(2 * min));
        let id = s.open("alice", t0).id().to_string();
        assert_eq!(id.len(), 32);
        assert_eq!(
            s.find(&id, t0 + min).map(|s| s.user.as_str()),
            Some("alice")
        );
        // Used a minute ago: another 90 seconds are fine (sliding).
        assert!(s
            .find(&id, t0 + min + min + Duration::from_secs(30))
            .is_some());
        assert!(s.find(&id, t0 + 10 * min).is_none());
        assert_eq!(s.len(), 0);
        assert!(s.find("", t0).is_none());

        let mut s = Sessions::new(None);
        s.limit = 3;
        let first = s.open("a", t0).id().to_string();
        let second = s.open("b", t0 + min).id().to_string();
        s.open("c", t0 + 2 * min);
        // The first is used again: the second is now the oldest.
        assert!(s.find(&first, t0 + 3 * min).is_some());
        s.open("d", t0 + 4 * min);
        assert_eq!(s.len(), 3);
        assert!(s.find(&second, t0 + 5 * min).is_none());
        assert!(s.find(&first, t0 + 5 * min).is_some());
        s.close(&first);
        assert!(s.find(&first, t0 + 5 * min).is_none());
    }

    #[test]
    fn xsrf_tokens() {
        let mut s = Sessions::new(None);
        let now = Instant::now();
        let session = s.open("a", now);
        assert_ne!(session.xsrf, session.id());
        assert_eq!(session.xsrf.len(), 32);
        assert!(changes_state("PATCH") && !changes_state("GET"));
    }
}
