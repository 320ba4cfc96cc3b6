//! A [`Handler`] and the states of its connections, with the state type
//! erased, so handlers of every kind sit in one list.

use std::any::Any;

use slab::Slab;

use super::{Handler, Link, Upgrade, WebSocket};
use crate::http::request::Request;
use crate::http::response::Response;
use crate::message::{Fragment, Message};
use crate::user_timers::TimerId;
use crate::ws::close_code::CloseCode;
use crate::ws::error::WsError;

/// One event for a handler, whatever its state type.
pub(crate) enum Event<'a> {
    Open,
    Message(Message<'a>),
    Partial(Fragment<'a>),
    Error(&'a WsError),
    Close(CloseCode, &'a str),
    Timer(TimerId),
    Drain,
}

/// An upgrade the handler accepted: its state's key and, if it chose one, the subprotocol.
pub(crate) type Accepted = (u32, Option<String>);

/// The state key of a connection whose `on_close` has run: no state has it.
pub(crate) const RELEASED: u32 = u32::MAX;

/// A [`Handler`] with its state type erased, so handlers of every kind sit in one list.
pub(crate) trait AnyHandler {
    /// Runs `on_upgrade`; an accepted connection's state goes into the table.
    fn upgrade(&mut self, req: &Request<'_>) -> Result<Accepted, Response>;
    fn streaming(&self) -> bool;
    /// Whether its connections may negotiate permessage-deflate.
    fn compression(&self) -> bool;
    /// The inactivity timeout of its connections (`Handler::timeout`);
    /// `None`: `timeouts.inactivity`.
    fn timeout(&self) -> Option<std::time::Duration> {
        None
    }
    /// Runs the callback for `event` with the state `link.side.state`.
    fn dispatch(&mut self, link: Link<'_>, event: Event<'_>);
    /// The state with this key, for the hub's filters.
    fn state(&self, key: u32) -> Option<&dyn Any>;
    /// Drops the state with this key: its connection is over.
    fn release(&mut self, key: u32);
}

/// A handler and the states of its connections, by key: a callback finds
/// its state by index, with no type check on the way.
pub(crate) struct Served<H: Handler> {
    handler: H,
    states: Slab<H::State>,
    /// For a state with no data and nothing to do when dropped (`()`, the
    /// common case): the one value every connection's callbacks are lent,
    /// so that no connection pays a slab entry (16 bytes) for nothing.
    shared: Option<H::State>,
}

/// True for a state type whose values are all alike and whose drop does
/// nothing: one value can stand for every connection's.
const fn stateless<S>() -> bool {
    std::mem::size_of::<S>() == 0 && !std::mem::needs_drop::<S>()
}

impl<H: Handler> Served<H> {
    pub fn new(handler: H) -> Served<H> {
        Served {
            handler,
            states: Slab::new(),
            shared: None,
        }
    }

    /// Files a new connection's state; 503 in the unlikely case that its key
    /// does not fit a `u32`.
    fn keep(&mut self, state: H::State) -> Result<u32, Response> {
        if stateless::<H::State>() {
            // The first value is kept; later ones are alike, and dropping them does nothing.
            self.shared.get_or_insert(state);
            return Ok(0);
        }
        let key = self.states.insert(state);
        match u32::try_from(key) {
            Ok(k) if k != RELEASED => Ok(k),
            _ => {
                self.states.remove(key);
                Err(Response::new(503))
            }
        }
    }
}

impl<H: Handler> AnyHandler for Served<H> {
    fn upgrade(&mut self, req: &Request<'_>) -> Result<Accepted, Response> {
        match self.handler.on_upgrade(req) {
            Upgrade::Accept(state) => Ok((self.keep(state)?, None)),
            Upgrade::AcceptProtocol(state, protocol) => Ok((self.keep(state)?, Some(protocol))),
            Upgrade::Reject(response) => Err(response),
        }
    }

    fn streaming(&self) -> bool {
        self.handler.streaming()
    }

    fn compression(&self) -> bool {
        self.handler.compression()
    }

    fn timeout(&self) -> Option<std::time::Duration> {
        self.handler.timeout()
    }

    fn dispatch(&mut self, link: Link<'_>, event: Event<'_>) {
        let state = if stateless::<H::State>() {
            self.shared.as_mut()
        } else {
            self.states.get_mut(link.side.state as usize)
        };
        let Some(state) = state else {
            return;
        };
        let mut ws = WebSocket { state, link };
        let handler = &mut self.handler;
        match event {
            Event::Open => handler.on_open(&mut ws),
            Event::Message(m) => handler.on_message(&mut ws, m),
            Event::Partial(f) => handler.on_partial(&mut ws, f),
            Event::Error(e) => handler.on_error(&mut ws, e),
            Event::Close(code, reason) => handler.on_close(&mut ws, code, reason),
            Event::Timer(t) => handler.on_timer(&mut ws, t),
            Event::Drain => handler.on_drain(&mut ws),
        }
    }

    fn state(&self, key: u32) -> Option<&dyn Any> {
        if stateless::<H::State>() {
            return self
                .shared
                .as_ref()
                .filter(|_| key != RELEASED)
                .map(|s| s as &dyn Any);
        }
        self.states.get(key as usize).map(|s| s as &dyn Any)
    }

    fn release(&mut self, key: u32) {
        if !stateless::<H::State>() {
            self.states.try_remove(key as usize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter;

    impl Handler for Counter {
        type State = u32;
    }

    /// A handler files its connections' states by key: each key finds its
    /// own state until released, a released key (or `RELEASED`) finds none,
    /// and keys are reused, so nothing is left behind once all are released.
    #[test]
    fn states_are_filed_by_key_until_released() {
        let mut served = Served::new(Counter);
        let a = served.keep(7).unwrap();
        let b = served.keep(9).unwrap();
        assert_ne!(a, b);
        let value =
            |served: &Served<Counter>, key| served.state(key)?.downcast_ref::<u32>().copied();
        assert_eq!(value(&served, a), Some(7));
        assert_eq!(value(&served, b), Some(9));
        served.release(a);
        assert_eq!(value(&served, a), None);
        assert_eq!(value(&served, RELEASED), None);
        served.release(a);
        assert_eq!(
            value(&served, b),
            Some(9),
            "releasing twice touches no other state"
        );
        let c = served.keep(11).unwrap();
        assert_eq!(c, a, "a released key is used again");
        served.release(b);
        served.release(c);
        assert!(served.states.is_empty());
    }

    struct Plain;

    impl Handler for Plain {
        type State = ();
    }

    /// A state with no data and no drop takes no entry: every connection's
    /// callbacks are lent the one value, found until released.
    #[test]
    fn a_unit_state_takes_no_entry() {
        let mut served = Served::new(Plain);
        let keys: Vec<u32> = (0..3).map(|_| served.keep(()).unwrap()).collect();
        assert!(served.states.is_empty(), "no slab entry for ()");
        assert!(keys.iter().all(|&k| served.state(k).is_some()));
        assert!(served.state(RELEASED).is_none());
        served.release(keys[0]);
        assert!(
            served.state(keys[1]).is_some(),
            "another connection's is still found"
        );
    }

    /// A zero-sized state that does something when dropped keeps its entry,
    /// so that it is dropped when its connection ends.
    #[test]
    fn a_zero_sized_state_with_a_drop_is_filed() {
        use std::cell::Cell;
        thread_local!(static DROPS: Cell<u32> = const { Cell::new(0) });
        #[derive(Default)]
        struct Guard;
        impl Drop for Guard {
            fn drop(&mut self) {
                DROPS.with(|d| d.set(d.get() + 1));
            }
        }
        struct Guarded;
        impl Handler for Guarded {
            type State = Guard;
        }
        let mut served = Served::new(Guarded);
        let a = served.keep(Guard).unwrap();
        let b = served.keep(Guard).unwrap();
        assert_ne!(a, b);
        served.release(a);
        assert_eq!(
            DROPS.with(|d| d.get()),
            1,
            "dropped when its connection ended"
        );
        served.release(b);
        assert_eq!(DROPS.with(|d| d.get()), 2);
    }
}
