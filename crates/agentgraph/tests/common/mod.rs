//! Helpers shared by the tests that run the `agentgraph` binary as real processes.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_agentgraph")
}

/// A child process killed when dropped (a failing test leaves nothing running).
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "process did not stop after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts a process and waits for a stderr line containing `marker`; returns the line.
pub fn start(args: &[&str], marker: &str) -> (Proc, String) {
    let mut child = Command::new(bin()).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = marker.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && line.contains(&wanted) {
                let _ = tx.send(line.clone());
                sent = true;
            }
        }
    });
    let line =
        rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("no `{marker}` from agentgraph {args:?}"));
    (Proc(child), line)
}

pub fn address_in(line: &str) -> String {
    let at = line.find("127.0.0.1:").expect("an address");
    line[at..].split(|c: char| !(c.is_ascii_digit() || c == '.' || c == ':')).next().unwrap().to_string()
}

pub fn http_get(address: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(address).unwrap();
    // HTTP/1.0: no chunked bodies to decode.
    write!(s, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let code = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, response.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

/// Runs `agentgraph simulate` into `dir/sim` and returns the path of its flows.
pub fn simulate(dir: &std::path::Path, scenario: &str, requests: &str, seed: &str) -> std::path::PathBuf {
    let out = dir.join("sim");
    let status = Command::new(bin())
        .args([
            "simulate",
            "--scenario",
            scenario,
            "--requests",
            requests,
            "--seed",
            seed,
            "--out",
            out.to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "agentgraph simulate failed");
    out.join("flows.jsonl")
}
