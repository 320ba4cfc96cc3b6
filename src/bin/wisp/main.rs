//! The `wisp` binary: serves the site and demo handlers described by `web.json5`.

mod chat;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use wisp::{Config, ConfigError, Handler, Message, Response, Server, WebSocket};

const USAGE: &str = "\
usage: wisp [--config PATH] [--listen URL]... [--documents DIR] [--log LEVEL] [--help] [--version]
       wisp --hash-password < password.txt

  --config PATH     configuration file (default ./web.json5; built-in defaults if it is absent)
  --listen URL      listen here instead of the config's `listen` (repeatable), e.g. http://:8080
  --documents DIR   serve this folder instead of the config's `documents`
  --log LEVEL       log at this level instead of the config's `log.level`:
                    off, error, warn, info, debug or trace (to stderr)
  --hash-password   read a password (one line) from stdin and print its Argon2id
                    hash, for a user's `password` in web.json5's `auth.users`
  --help            print this help
  --version         print the version

SIGINT and SIGTERM stop gracefully; SIGHUP reloads the TLS certificate and key.";

/// What the command line asked for.
#[derive(Debug, Default)]
struct Args {
    config: Option<PathBuf>,
    listen: Vec<String>,
    documents: Option<PathBuf>,
    log: Option<log::LevelFilter>,
}

enum Parsed {
    Run(Args),
    Exit(&'static str),
    HashPassword,
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut args = Args::default();
    while let Some(arg) = argv.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| argv.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--help" | "-h" => return Ok(Parsed::Exit(USAGE)),
            "--hash-password" => return Ok(Parsed::HashPassword),
            "--version" | "-V" => {
                return Ok(Parsed::Exit(concat!("wisp ", env!("CARGO_PKG_VERSION"))))
            }
            "--config" => args.config = Some(value("--config")?.into()),
            "--listen" => args.listen.push(value("--listen")?),
            "--documents" => args.documents = Some(value("--documents")?.into()),
            "--log" => {
                let level = value("--log")?;
                let parsed = level.parse().map_err(|_| {
                    format!("--log {level}: not a level (off, error, warn, info, debug, trace)")
                })?;
                args.log = Some(parsed);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(Parsed::Run(args))
}

/// Loads the config and applies the command-line overrides.
fn configure(args: &Args) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => {
            let default = PathBuf::from("web.json5");
            if default.exists() {
                Config::load(&default).map_err(|e| e.to_string())?
            } else {
                Config::default()
            }
        }
    };
    if let Some((first, more)) = args.listen.split_first() {
        config
            .listen_on(first)
            .map_err(|e| listen_error(first, e))?;
        for l in more {
            config.also_listen_on(l).map_err(|e| listen_error(l, e))?;
        }
    }
    if let Some(dir) = &args.documents {
        let dir = std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.clone());
        config.documents = dir;
    }
    if let Some(level) = args.log {
        config.log.level = level;
    }
    Ok(config)
}

/// `--listen URL: why`, like the other flags' errors (not `listen: why`).
fn listen_error(url: &str, e: ConfigError) -> String {
    match e {
        ConfigError::Invalid { message, .. } => format!("--listen {url}: {message}"),
        other => other.to_string(),
    }
}

/// `/ws/echo`: sends every message back with the same opcode.
struct Echo;

impl Handler for Echo {
    type State = ();

    fn on_message(&mut self, ws: &mut WebSocket<'_, ()>, msg: Message<'_>) {
        ws.send(msg);
    }
}

/// The demo handlers the shipped `web.json5` routes to (on each worker).
fn register_demo(server: &mut Server, started: Instant, node: Option<&str>) {
    server.websocket("/ws/echo", Echo);
    server.websocket("/ws/chat", chat::Chat::default());
    let board = server.stats_board();
    let node = node.map(str::to_string);
    let worker = server.worker();
    server.action("/api/status", move |req| {
        let mut status = serde_json::json!({
            "server": "wisp",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": started.elapsed().as_secs(),
            "stats": req.stats(),
        });
        if let Some(board) = &board {
            // The whole server's counters, and each worker's connections.
            let workers = board.workers(req.stats());
            status["stats"] = serde_json::json!(board.total(req.stats()));
            status["worker"] = worker.into();
            status["workers"] = workers
                .iter()
                .map(|w| serde_json::json!({ "connections_open": w.connections_open, "websockets_open": w.websockets_open }))
                .collect();
        }
        if let Some(node) = &node {
            status["node"] = node.as_str().into();
        }
        Response::json(&status).with_header("Cache-Control", "no-store")
    });
    // Live stats for the landing page's EventSource: one `status` event a
    // second to every open stream, the same document as /api/status.
    let status = move |stats: &wisp::Stats| {
        serde_json::json!({
            "server": "wisp",
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": started.elapsed().as_secs(),
            "stats": stats,
        })
        .to_string()
    };
    server.events(
        "/api/events",
        move |req: &wisp::Request<'_>, stream: &mut wisp::EventStream<'_>| {
            stream.join("status").map_err(|_| Response::new(503))?;
            stream.send(&status(req.stats()));
            Ok(())
        },
    );
    if worker != 0 {
        return; // One worker publishes the status room for all of them.
    }
    server.every(Duration::from_secs(1), move |hub| {
        if hub.room_size("status") > 0 {
            let text = status(hub.stats());
            hub.publish("status", wisp::Message::Text(&text), None);
        }
    });
}

fn run() -> Result<(), String> {
    let args = match parse_args(std::env::args().skip(1))? {
        Parsed::Run(args) => args,
        Parsed::Exit(text) => {
            println!("{text}");
            return Ok(());
        }
        Parsed::HashPassword => return hash_password(),
    };
    let config = configure(&args)?;
    wisp::init_logging(&config.log).map_err(|e| {
        let path = config.log.path.as_deref().unwrap_or("-".as_ref());
        format!("cannot open the log file {}: {e}", path.display())
    })?;
    let started = Instant::now();
    if config.workers > 1 || config.backplane.is_some() {
        return run_workers(config, started);
    }
    let mut server = Server::bind(config).map_err(|e| e.to_string())?;
    register_demo(&mut server, started, None);
    // Before the start line (`Server::run` logs it): a script that waits for it may signal at once.
    watch_signals(&mut server)?;
    server
        .run()
        .map_err(|e| format!("event loop failed: {e}"))?;
    log::info!("stopped");
    Ok(())
}

/// SIGINT and SIGTERM stop, SIGHUP reloads the certificate.
fn watch_signals(server: &mut Server) -> Result<(), String> {
    server
        .stop_on_signals(&[signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
        .and_then(|()| server.reload_tls_on_signals(&[signal_hook::consts::SIGHUP]))
        .map_err(|e| format!("cannot watch for signals: {e}"))
}

/// `web.workers` over 1, or a backplane: the demo on every worker.
fn run_workers(config: Config, started: Instant) -> Result<(), String> {
    let node = config.backplane.as_ref().map(|b| b.node.clone());
    let workers = wisp::Workers::start(config, move |server| {
        register_demo(server, started, node.as_deref());
        if let Err(e) = watch_signals(server) {
            log::error!("{e}");
        }
    })
    .map_err(|e| e.to_string())?;
    workers
        .wait()
        .map_err(|e| format!("event loop failed: {e}"))?;
    log::info!("stopped");
    Ok(())
}

/// `--hash-password`: one line of stdin (its line ending dropped) to its
/// hash on stdout. The password is neither echoed nor logged.
fn hash_password() -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("--hash-password: cannot read stdin: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("--hash-password: no password on stdin (one line, e.g. `echo 'secret' | wisp --hash-password`)".into());
    }
    println!("{}", wisp::hash_password(password));
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("wisp: {message}");
            ExitCode::FAILURE
        }
    }
}
