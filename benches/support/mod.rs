//! What both benchmarks need: postfix's `smtp-sink` on a free loopback port, and
//! `smtp-source`'s rate into it (the baseline for every SMTP figure).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `smtp-sink` on `127.0.0.1:<port>`, killed and reaped on drop.
pub struct Sink {
    child: Child,
    /// Where it listens.
    pub port: u16,
}

impl Sink {
    /// Start one on a free port (as `nobody` when run as root, which smtp-sink requires).
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        let mut cmd = Command::new("smtp-sink");
        if root {
            cmd.args(["-u", "nobody"]);
        }
        // Owned by `Sink` at once, so it is killed and reaped on every path.
        let sink = Self {
            child: cmd
                .args([&format!("127.0.0.1:{port}"), "1000"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("smtp-sink (apt-get install postfix)"),
            port,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "smtp-sink did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        sink
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Messages per second `smtp-source` sends into `port` with `sessions` parallel sessions
/// (2 KB messages).
pub fn smtp_source(port: u16, n: usize, sessions: usize) -> f64 {
    let started = Instant::now();
    let ok = Command::new("smtp-source")
        .args(["-s", &sessions.to_string(), "-m", &n.to_string(), "-l", "2000", &format!("127.0.0.1:{port}")])
        .status()
        .expect("smtp-source (apt-get install postfix)")
        .success();
    assert!(ok, "smtp-source failed");
    n as f64 / started.elapsed().as_secs_f64()
}
