//! XSockets' controllers on wisp: `{t, c, d}` messages on `/xsockets` for
//! the subprotocols `XSocketsNET` and `DemoProtocol` (and for clients that
//! offer none), the XSockets documentation's own controllers, and its
//! `{M, J}` format through a translator on `DemoProtocol`. The site is
//! served beside them (`/xsockets.html` tries it in a browser).
//!
//! ```text
//! cargo run --example xsockets_controllers                 # ws://127.0.0.1:8080/xsockets
//! cargo run --example xsockets_controllers -- 127.0.0.1:0  # any free port; the banner says which
//! ```
//!
//! In a browser console (the documentation's snippets, unchanged):
//!
//! ```text
//! var conn = new WebSocket('ws://127.0.0.1:8080/xsockets', 'XSocketsNET');
//! conn.onmessage = function (d) { console.log(d.data); };
//! conn.send(JSON.stringify({t: 'foo', c: 'bar', d: 'some message'}));
//! conn.send(JSON.stringify({t: 'foo', c: 'bar', d: {name: 'Steve', Age: 42}}));
//! ```

use serde::Deserialize;
use serde_json::{json, Value};
use wisp::{Config, Controller, IMessage, Message, Server, Translator, XSockets};

/// `public class Person { string name; int Age; }`
#[derive(Deserialize)]
#[allow(non_snake_case)] // the field names of the documentation's class
struct Person {
    name: String,
    Age: i64,
}

/// What `Bar.Foo` binds `d` to: `Foo(string m)` or `Foo(Person p)`.
#[derive(Deserialize)]
#[serde(untagged)]
enum FooArg {
    Text(String),
    Person(Person),
}

/// `Demo.Foo(string s, int i)`: the parameters as the fields of `d`.
#[derive(Deserialize)]
struct DemoFoo {
    s: String,
    i: i64,
}

/// `Bar`: the topic `foo` answers with what it bound `d` to.
fn bar() -> Controller {
    Controller::new().on("foo", |_, d: FooArg| match d {
        FooArg::Text(m) => json!({ "bound": "Foo(string)", "m": m }),
        FooArg::Person(p) => json!({ "bound": "Foo(Person)", "name": p.name, "Age": p.Age }),
    })
}

/// `Generic`: greets a connection that opens it, echoes every message.
/// Its instance state counts the messages of each connection.
fn generic() -> Controller<u64> {
    Controller::<u64>::default()
        .on_open(|call| {
            let hello = json!({ "controller": "generic", "connection": call.id().to_string() });
            call.invoke("open", &hello);
        })
        .on_message(|call, m: IMessage| {
            *call.state() += 1;
            call.invoke(&m.t, &m.d);
        })
}

/// `Demo`: `Foo(string s, int i)` and a catch-all, both `InvokeToAll`.
fn demo() -> Controller {
    Controller::new()
        .on("foo", |call, d: DemoFoo| {
            let both = json!({ "stringValue": d.s, "intValue": d.i });
            call.invoke_to_all("foo", &both);
        })
        .on_message(|call, m: IMessage| {
            call.invoke_to_all(&m.t, &m.d);
        })
}

/// `DemoProtocol`'s format: `{M: 'method', J: 'parameters in JSON'}` for
/// the controller `demo`, both ways; a plain `{t, c, d}` passes through (the
/// documentation sends one on DemoProtocol before it adds the format).
fn demo_format() -> Translator {
    Translator::new(
        |frame| {
            let Message::Text(text) = frame else {
                return Err("DemoProtocol is text".to_string());
            };
            let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
            match (v.get("M"), v.get("J")) {
                (Some(Value::String(method)), j) => {
                    // J is JavaScript-ish ({s:'bar',i:42}): JSON5 reads it.
                    let data = match j {
                        Some(Value::String(j)) => {
                            json5::from_str(j).map_err(|e| format!("J: {e}"))?
                        }
                        Some(other) => other.clone(),
                        None => Value::Null,
                    };
                    Ok(IMessage::new(method.as_str(), "demo", data))
                }
                _ => serde_json::from_value(v)
                    .map_err(|e| format!("neither {{M, J}} nor {{t, c, d}}: {e}")),
            }
        },
        |m| {
            if m.c.eq_ignore_ascii_case("demo") {
                json!({ "M": m.t, "J": m.d.to_string() }).to_string()
            } else {
                // `{t, c, d}` in that order, as the IMessage type declares it.
                serde_json::to_string(m).unwrap_or_default()
            }
        },
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = Config::parse(
        "{ web: {
            routes: [
                { match: '/xsockets', handler: 'action', methods: ['GET'] },
                { match: '' },   // the site: /xsockets.html
            ],
        } }",
        ".".as_ref(),
    )?;
    if let Some(addr) = std::env::args().nth(1) {
        config.listen_on(&addr)?;
    }
    let xsockets = XSockets::new()
        .controller("bar", bar())
        .controller("generic", generic())
        .controller("demo", demo())
        .translator("DemoProtocol", demo_format());
    let mut server = Server::bind(config)?;
    // One set of controllers for both subprotocols and for clients with none.
    server.websocket_protocol("/xsockets", "XSocketsNET", xsockets.clone());
    server.websocket_protocol("/xsockets", "DemoProtocol", xsockets.clone());
    server.websocket("/xsockets", xsockets);
    for addr in server.local_addrs() {
        println!("xsockets_controllers: ws://{addr}/xsockets (XSocketsNET, DemoProtocol), site on http://{addr}/xsockets.html");
    }
    server.run()?;
    Ok(())
}
