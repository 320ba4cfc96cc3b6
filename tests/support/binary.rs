//! The `wisp` binary (or an example) as a child process: started on a free
//! port, killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// A running binary, killed on drop.
pub struct Running {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary, run from the crate's folder (where `web.json5` and `site/` are).
pub fn wisp() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wisp"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

/// Starts `command` (the binary, an example, or a wrapper that runs one) with
/// `args` and reads the first line it prints to learn its address from the
/// `http://` or `ws://` URL in it. Stderr is the caller's to set.
pub fn start_command(mut command: Command, args: &[&str]) -> Running {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout is piped"))
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("{program}: reading its banner: {e}"));
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://") || w.starts_with("ws://"))
        .unwrap_or_else(|| panic!("{program}: no URL in {line:?}"));
    let host = url.split("://").nth(1).unwrap_or("");
    let host = host.split('/').next().unwrap_or("").trim_end_matches(',');
    let addr = host
        .parse()
        .unwrap_or_else(|e| panic!("{program}: {host:?} in {line:?}: {e}"));
    Running { child, addr }
}
