//! The `wisp` binary as a child process: started on a free port, killed on drop.

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

/// Starts `command` (the binary, or a wrapper that runs it) with `args` and
/// reads the one line it prints to learn its address. Stderr is the caller's to set.
pub fn start_command(mut command: Command, args: &[&str]) -> Running {
    let mut child = command.args(args).stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"));
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches(',')
        .parse()
        .unwrap();
    Running { child, addr }
}
