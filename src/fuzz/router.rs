//! The event router (`router`): a message a client sent, JSON or
//! MessagePack, decoded into the typed event its closure takes, or answered
//! with an error event in the message's codec.

use serde::Deserialize;
use serde_json::{json, Value};

use super::ws::{feed, limits, Owned};
use crate::event_router::{Codec, Router};
use crate::http::head::{header_storage, parse_head};
use crate::http::request::Request;
use crate::hub::{Hub, RoomLimits};
use crate::message::{ConnId, Message};
use crate::stats::{ConnStats, Stats};
use crate::turn::Turn;
use crate::ws::deflate::Outgoing;
use crate::ws::receiver::Limits;
use crate::ws_api::{AnyHandler, ConnInfo, Event, Link, LinkSide, SendFlags, Served, Who};

/// `add`'s message.
#[derive(Deserialize)]
struct Add {
    a: i64,
    b: i64,
}

/// `maybe`'s message: it answers only when it has something to say.
#[derive(Deserialize)]
struct Maybe {
    say: Option<String>,
}

/// A router with a typed event (`add`), one that takes the message as it
/// came (`echo`), one that may answer nothing (`maybe`) and one that
/// always fails (`fail`), its event name under `key`.
fn app(key: &str) -> Router {
    Router::new()
        .key(key)
        .on("add", |_, m: Add| match m.a.checked_add(m.b) {
            Some(sum) => Ok(json!({ "event": "sum", "value": sum })),
            None => Err("overflow"),
        })
        .on("echo", |_, m: Value| m)
        .on("maybe", |_, m: Maybe| m.say.map(|s| json!({ "said": s })))
        .on("fail", |_, _: serde::de::IgnoredAny| {
            Err::<(), _>("refused")
        })
}

/// Drives the router on one message, as a session hands it over.
///
/// The input is the message: as text if it is UTF-8, and always as binary
/// (MessagePack; the router has no binary closure). It goes to two routers,
/// one reading the event name under `"event"` and one under `"type"`, each
/// on a connection of its own; what they send back is read with a client's
/// receiver. Properties: at most one answer (and an ack after it when the
/// message asked for one with an id and nothing failed), in the codec of the message
/// (JSON text for text, MessagePack binary for binary); `echo` answers the
/// message itself; anything the router cannot dispatch — bad JSON or
/// MessagePack, not an object, a missing, non-string or unknown event, a
/// message that does not fit the closure's type, a closure's error — is
/// answered with one error event, `{key: "error", "error": "…"}`, carrying
/// the message's `"id"` and `"trace"` when it was an object that had them.
pub fn router(data: &[u8]) {
    let text = std::str::from_utf8(data).ok().map(Message::Text);
    for message in text.into_iter().chain([Message::Binary(data)]) {
        for key in ["event", "type"] {
            let answers = dispatch(app(key), message);
            check(key, message, &answers);
        }
    }
}

/// Checks the answers to one message against what it was.
fn check(key: &str, message: Message<'_>, answers: &[Value]) {
    let parsed = Codec::read(message, None)
        .ok()
        .map(|(map, _)| Value::Object(map));
    // An answer to JSON is read back from JSON the server wrote, and
    // serde_json's float parsing is not correctly rounded: an id or trace
    // that is a long decimal may read back one ulp apart. Compare with the
    // message as written and read again, which is what the server sent.
    let sent = match message {
        Message::Text(_) => parsed
            .as_ref()
            .and_then(|p| serde_json::from_str::<Value>(&p.to_string()).ok()),
        Message::Binary(_) => parsed.clone(),
    };
    let object = sent.as_ref().and_then(Value::as_object);
    let id = object.and_then(|o| o.get("id"));
    let trace = object.and_then(|o| o.get("trace"));
    let answers = match answers.split_last() {
        // An event that asked for an ack gets one last, with its id and trace.
        Some((last, rest))
            if last.get(key) == Some(&json!("ack")) && last.get("error").is_none() =>
        {
            assert_eq!(
                object.and_then(|o| o.get("ack")),
                Some(&json!(true)),
                "{last}"
            );
            assert_eq!(last.get("id"), id, "the id of {last}");
            assert_eq!(last.get("trace"), trace, "the trace of {last}");
            rest
        }
        _ => answers,
    };
    assert!(answers.len() <= 1, "{} answers", answers.len());
    let event = object.and_then(|o| o.get(key)).and_then(Value::as_str);
    let known = matches!(event, Some("add" | "echo" | "maybe" | "fail"));
    let Some(answer) = answers.first() else {
        // Only a closure may decide to send nothing.
        assert!(
            matches!(event, Some("maybe")),
            "no answer to {:?}",
            message.as_bytes()
        );
        return;
    };
    let error = answer.get(key) == Some(&json!("error"))
        && answer.get("event") != Some(&json!("sum"))
        && answer.get("error").is_some();
    if !known || error {
        assert!(error, "{answer} is no error event");
        let text = answer["error"].as_str().expect("the error is a string");
        assert!(!text.is_empty());
        assert_eq!(answer.get("id"), id, "the id of {answer}");
        assert_eq!(answer.get("trace"), trace, "the trace of {answer}");
        let fields = 2 + usize::from(id.is_some()) + usize::from(trace.is_some());
        assert_eq!(
            answer.as_object().map(|o| o.len()),
            Some(fields),
            "{answer}"
        );
        return;
    }
    match event {
        // serde_json's float parsing is not correctly rounded: a long decimal
        // may read back one ulp apart once written, so the echo is compared
        // with the message as written and read again, which is what was sent.
        Some("echo") if matches!(message, Message::Binary(_)) => {
            assert_eq!(Some(answer), parsed.as_ref(), "echo changed it");
        }
        Some("echo") => {
            let written = parsed
                .as_ref()
                .and_then(|p| serde_json::from_str::<Value>(&p.to_string()).ok());
            assert_eq!(Some(answer), written.as_ref(), "echo changed it");
        }
        Some("add") => assert_eq!(answer["event"], json!("sum"), "{answer}"),
        Some("maybe") => assert!(answer.get("said").is_some_and(Value::is_string)),
        _ => panic!("{answer} to {event:?}"),
    }
    if let Some(id) = id {
        assert_eq!(answer.get("id"), Some(id), "the id of {answer}");
    }
}

/// Hands `message` to `router` on a connection of its own and returns
/// what it sent back, each answer parsed in the codec of `message`.
fn dispatch(router: Router, message: Message<'_>) -> Vec<Value> {
    let mut served = Served::new(router);
    let mut storage = header_storage();
    let head = parse_head(
        b"GET /ws HTTP/1.1\r\nHost: h\r\n\r\n",
        &mut storage,
        &super::HEAD_LIMITS,
    )
    .ok()
    .flatten()
    .expect("a request head");
    let stats = Stats::default();
    let peer = ([127, 0, 0, 1], 1).into();
    let request = Request::new(&head, &[], peer, &stats);
    let Ok((state, _)) = served.upgrade(&request) else {
        panic!("the router refused the upgrade");
    };
    let mut turn = Turn::new(std::time::Instant::now());
    turn.room = usize::MAX;
    let mut side = LinkSide {
        info: ConnInfo {
            handler: 0,
            deflate: Outgoing::Off,
            target: std::rc::Rc::new("/ws".into()),
            extra: None,
        },
        state,
        flags: SendFlags::default(),
        tls: false,
        metrics: ConnStats::default(),
    };
    let mut hub = Hub::new(RoomLimits {
        per_connection: 1,
        members: 1,
    });
    let link = Link {
        turn: &mut turn,
        side: &mut side,
        who: &Who {
            id: ConnId { key: 0, serial: 1 },
            peer: &crate::message::Peer::new(peer),
        },
        hub: &mut hub,
        headers: None,
    };
    served.dispatch(link, Event::Message(message));
    // The answers are server frames: read them as the client does.
    let client = Limits {
        from_server: true,
        ..limits(0x3C)
    };
    let read = feed(client, [&turn.scratch[..]]);
    assert_eq!(read.error, None, "the answers do not parse");
    assert_eq!(read.unconsumed, 0, "a frame cut short");
    let text = matches!(message, Message::Text(_));
    read.events
        .into_iter()
        .map(|event| match event {
            Owned::Message(true, json) if text => {
                serde_json::from_slice(&json).expect("an answer that is JSON")
            }
            Owned::Message(false, msgpack) if !text => {
                rmp_serde::from_slice(&msgpack).expect("an answer that is MessagePack")
            }
            other => panic!("answered with {other:?}"),
        })
        .collect()
}
