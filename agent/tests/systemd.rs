//! The agent under systemd's notification protocol, on a real `skolebro-agent run` process
//! with `NOTIFY_SOCKET` and `WATCHDOG_USEC` set as a `Type=notify` unit with `WatchdogSec=`
//! sets them: it says it is ready, says what it is doing, keeps feeding the watchdog while
//! its core answers, and says it is stopping on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the agent when the test ends, also when it fails.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An agent without an identity (waiting for a config stick), notifying `socket`.
fn start(dir: &Path, socket: &Path, watchdog: Duration) -> Agent {
    std::fs::create_dir_all(dir.join("media")).unwrap();
    std::fs::write(dir.join("synchronized"), "").unwrap();
    std::fs::write(
        dir.join("agent.toml"),
        "state_dir = \"state\"\nstick_roots = [\"media\"]\nclock_synced_file = \
         \"synchronized\"\npanel = \"none\"\n",
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_skolebro-agent"))
        .current_dir(dir)
        .arg("--config")
        .arg(dir.join("agent.toml"))
        .arg("run")
        .env("NOTIFY_SOCKET", socket)
        .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
        .env_remove("WATCHDOG_PID")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Agent(child)
}

/// Every datagram that arrives within `window` (each read waits at most what is left of it),
/// up to and including `last` if it comes.
fn messages_within(
    socket: &UnixDatagram,
    window: Duration,
    last: Option<&str>,
) -> Vec<(Duration, String)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while let Some(left) = window.checked_sub(started.elapsed()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = last == Some(text.as_str());
                got.push((started.elapsed(), text));
                if done {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    got
}

#[test]
fn the_agent_says_ready_and_its_state_then_feeds_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut agent = start(dir.path(), &socket_path, Duration::from_secs(2));

    let got = messages_within(&socket, Duration::from_secs(6), None);
    let texts: Vec<&str> = got.iter().map(|(_, text)| text.as_str()).collect();
    assert!(texts.contains(&"READY=1"), "{texts:?}");
    assert!(
        texts.contains(&"STATUS=waiting for a config stick"),
        "{texts:?}"
    );
    // Half of a 2 s interval: about five feeds in 6 s, and never a gap systemd would kill for.
    let feeds: Vec<Duration> = got
        .iter()
        .filter(|(_, text)| text == "WATCHDOG=1")
        .map(|(at, _)| *at)
        .collect();
    assert!(
        feeds.len() >= 3,
        "watchdog fed {} times: {texts:?}",
        feeds.len()
    );
    for pair in feeds.windows(2) {
        assert!(
            pair[1] - pair[0] < Duration::from_secs(2),
            "a gap of {:?} between feeds",
            pair[1] - pair[0]
        );
    }
    // Not every tick: a quiet agent must not wake systemd 20 times a second.
    assert!(
        feeds.len() <= 8,
        "watchdog fed {} times in 6 s",
        feeds.len()
    );

    let pid = agent.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let after = messages_within(&socket, Duration::from_secs(10), Some("STOPPING=1"));
    assert!(
        after.iter().any(|(_, text)| text == "STOPPING=1"),
        "{after:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while agent.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the agent did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
