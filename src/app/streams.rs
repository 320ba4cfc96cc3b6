//! Server-Sent Events sources: registered, opened, run, closed.

use super::*;

impl App {
    /// Registers a Server-Sent Events source for a path prefix.
    pub fn add_events(&mut self, prefix: &str, source: Box<dyn EventSource>) {
        let index = self.streams.len();
        self.streams.push(source);
        self.add(prefix, Endpoint::Events(index));
    }

    /// Runs `f` with the event source `index` and a stream `id` writing to `out`.
    pub fn on_stream(
        &mut self,
        index: usize,
        id: ConnId,
        out: &mut Vec<u8>,
        f: impl FnOnce(&mut dyn EventSource, &mut EventStream<'_>),
    ) {
        let Some(source) = self.streams.get_mut(index) else {
            return;
        };
        let mut stream = EventStream {
            id,
            hub: &mut self.hub,
            out,
        };
        // A panicking source costs its stream's event, never the server.
        if catch_unwind(AssertUnwindSafe(|| f(source.as_mut(), &mut stream))).is_err() {
            log::error!("an event source panicked");
        }
    }

    /// An event stream ended: it leaves the hub, and its source hears of it.
    pub fn stream_closed(&mut self, index: usize, id: ConnId) {
        self.hub.remove_socket(id);
        if let Some(source) = self.streams.get_mut(index) {
            let hub = &mut self.hub;
            if catch_unwind(AssertUnwindSafe(|| source.on_close(id, hub))).is_err() {
                log::error!("an event source panicked in on_close");
            }
        }
    }

    /// A `GET` for an event stream: the source's `on_open` opens it (the
    /// head, then what it sent) or answers with its refusal.
    pub(super) fn open_stream(
        &mut self,
        source: usize,
        incoming: Incoming<'_, '_>,
        out: &mut Vec<u8>,
    ) -> Handled {
        let Incoming {
            head,
            body,
            origin,
            claims,
            peer_cert,
        } = incoming;
        if head.method != "GET" {
            return self.status_page(
                head,
                out,
                405,
                false,
                Some(("Allow", "GET")),
                "an event stream is a GET",
            );
        }
        // The request's view of the counters: the hub is the stream's to change.
        let stats = self.hub.stats.clone();
        let request = Request::new(head, body, origin.peer, &stats)
            .with_id(origin.id)
            .with_claims(claims)
            .with_tls(origin.tls)
            .with_peer_cert(peer_cert);
        self.hub.add_stream(origin.id, source);
        let mark = out.len();
        crate::events::write_head(out, &self.date.text, &self.config.headers);
        let mut opened = Ok(());
        self.on_stream(source, origin.id, out, |s, stream| {
            opened = s.on_open(&request, stream)
        });
        match opened {
            Ok(()) => Handled {
                events: Some(source),
                ..Handled::response(false)
            },
            Err(response) => {
                self.hub.remove_socket(origin.id);
                out.truncate(mark);
                self.write_response(&response, false, out, false)
            }
        }
    }
}
