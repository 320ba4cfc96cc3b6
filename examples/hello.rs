//! Serve a folder and one action handler, configured in code.
//!
//! ```text
//! cargo run --example hello                 # serves ./site on http://127.0.0.1:8080
//! cargo run --example hello -- 127.0.0.1:0  # any free port; the banner says which
//! curl 'http://127.0.0.1:8080/api/hello?name=device'
//! ```

use wisp::{Config, Response, Server};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The same text a web.json5 would hold; every key left out keeps its default.
    let mut config = Config::parse(
        "{ web: {
            routes: [
                { match: '/api/', handler: 'action', methods: ['GET'] },
                { match: '' },   // everything else: static files from `documents`
            ],
        } }",
        ".".as_ref(),
    )?;
    if let Some(addr) = std::env::args().nth(1) {
        config.listen_on(&addr)?;
    }

    let mut server = Server::bind(config)?;
    let mut greeted = 0u64;
    // Handlers run on the server thread: keep them quick and never block.
    server.action("/api/hello", move |req| {
        greeted += 1;
        let name = req.query_param("name").unwrap_or_else(|| "world".into());
        Response::json(&serde_json::json!({ "hello": name, "greeted": greeted }))
    });

    for addr in server.local_addrs() {
        println!("hello: serving ./site and /api/hello on http://{addr}");
    }
    server.run()?;
    Ok(())
}
