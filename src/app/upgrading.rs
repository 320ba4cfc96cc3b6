//! The app's side of a WebSocket upgrade: `webSockets.enable`, the handlers
//! on the matched prefix, and the handshake (`crate::upgrade`) run with what
//! the app lends it. Not `upgrade.rs`: `mod.rs` uses `crate::upgrade` by that name.

use super::{Action, App, Endpoint, Handled, Incoming};
use crate::gateway;
use crate::http::response::StatusPage;
use crate::upgrade::{self, Upgraded};

impl App {
    /// An upgrade while `webSockets.enable` is false: 403, saying so.
    pub(super) fn websockets_off(&mut self, out: &mut Vec<u8>) -> Handled {
        self.hub.stats.upgrades_rejected += 1;
        let page = StatusPage {
            status: 403,
            header: None,
            detail: "WebSockets are turned off (webSockets.enable: false)",
            head_only: false,
        };
        self.write_status_page(out, page, true);
        Handled::response(true)
    }

    /// The WebSocket handshake (`upgrade.rs`): 101 and `on_open`, or a
    /// refusal that closes the connection.
    ///
    /// `first` is the first handler registered on the matching prefix; every
    /// handler on that same prefix is a candidate, selected by subprotocol.
    pub(super) fn upgrade(
        &mut self,
        first: usize,
        incoming: Incoming<'_, '_>,
        out: &mut Vec<u8>,
    ) -> Handled {
        if !self.config.web_sockets.enable && gateway::wants_websocket(incoming.head) {
            return self.websockets_off(out);
        }
        let request = upgrade::Upgrading {
            head: incoming.head,
            claims: incoming.claims,
            origin: incoming.origin,
            peer_cert: incoming.peer_cert,
        };
        let candidates = candidates(&self.actions, first);
        let lent = upgrade::Lent {
            sockets: &mut self.sockets,
            config: &self.config,
            hub: &mut self.hub,
            date: &self.date.text,
            ws_limits: &mut self.ws_limits,
            targets: &mut self.ws_targets,
        };
        match upgrade::upgrade(request, &candidates, lent, out) {
            Upgraded::Open { session, close } => Handled {
                file: None,
                close,
                upgrade: Some(session),
                proxied: false,
                exchange: None,
                sink: None,
                events: None,
                later: false,
            },
            Upgraded::Refused(refused) => self.refused_upgrade(refused, out),
            Upgraded::Rejected(response) => {
                self.hub.stats.upgrades_rejected += 1;
                self.write_response(&response, false, out, true)
            }
        }
    }
}

/// The WebSocket handlers (by index in `sockets`) registered on the
/// same prefix as the action at `first`, with their subprotocols.
fn candidates(actions: &[Action], first: usize) -> Vec<(usize, Option<&str>)> {
    let prefix = &actions[first].prefix;
    actions
        .iter()
        .filter(|a| &a.prefix == prefix)
        .filter_map(|a| match &a.endpoint {
            Endpoint::Socket { socket, protocol } => Some((*socket, protocol.as_deref())),
            _ => None,
        })
        .collect()
}
