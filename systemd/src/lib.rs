//! Telling systemd how a daemon is doing (`sd_notify(3)`), for both the agent and central:
//! `READY=1` once it has started, a one-line `STATUS=` whenever its state changes (shown by
//! `systemctl status`), `WATCHDOG=1` while it makes progress (the unit's `WatchdogSec=`), and
//! `STOPPING=1` on the way out. Its own crate because central may not depend on the agent.
//!
//! The protocol is one datagram per message to the socket `$NOTIFY_SOCKET` names (a path, or
//! an abstract name written with a leading `@`). Outside systemd the variable is unset and
//! every call here does nothing, so the daemon runs the same under a test, a shell or the demo.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The service manager's notification socket, if the daemon runs under one that asked for
/// notifications (`Type=notify` sets `NOTIFY_SOCKET`).
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    addr: SocketAddr,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// The notifier the environment describes, or `None` outside systemd. A socket that
    /// cannot be opened is logged once and treated as absent: notifications are advice to the
    /// service manager, never a reason for the daemon to stop.
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let watchdog = watchdog_interval(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
        );
        match Self::open(&path.to_string_lossy(), watchdog) {
            Ok(notifier) => Some(notifier),
            Err(error) => {
                tracing::warn!(%error, "cannot reach systemd's notification socket; not notifying");
                None
            }
        }
    }

    /// A notifier on `socket` (a path, or `@name` for an abstract socket), with the watchdog
    /// interval systemd expects a `WATCHDOG=1` within, if any.
    pub fn open(socket: &str, watchdog: Option<Duration>) -> io::Result<Self> {
        let addr = match socket.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes())?
            }
            None => SocketAddr::from_pathname(socket)?,
        };
        Ok(Self {
            socket: UnixDatagram::unbound()?,
            addr,
            watchdog,
        })
    }

    /// How often systemd wants to hear `WATCHDOG=1`, if the unit set `WatchdogSec=`.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// The daemon has started: systemd ends `systemctl start` and starts what waits for it.
    pub fn ready(&self) {
        self.send("READY=1");
    }

    /// A one-line status for `systemctl status` (newlines would end the field early).
    pub fn status(&self, line: &str) {
        self.send(&format!("STATUS={}", line.replace('\n', " ")));
    }

    /// The core made progress within its deadline: restart systemd's watchdog countdown.
    pub fn watchdog_alive(&self) {
        self.send("WATCHDOG=1");
    }

    /// The daemon is shutting down on purpose: systemd does not count what follows as a hang.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, message: &str) {
        if let Err(error) = self.socket.send_to_addr(message.as_bytes(), &self.addr) {
            tracing::debug!(%error, "systemd notification not sent");
        }
    }
}

/// The watchdog interval from `WATCHDOG_USEC`, if it is meant for this process: systemd sets
/// `WATCHDOG_PID` to the main process, and a child that inherited the variables must not feed
/// the watchdog on the main process's behalf.
fn watchdog_interval(usec: Option<&str>, pid: Option<&str>) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&usec| usec > 0)?;
    match pid.map(|pid| pid.trim().parse::<u32>()) {
        None => Some(Duration::from_micros(usec)),
        Some(Ok(pid)) if pid == std::process::id() => Some(Duration::from_micros(usec)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        (dir, socket, path.display().to_string())
    }

    fn received(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a datagram");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn each_message_arrives_as_one_datagram_on_the_named_socket() {
        let (_dir, socket, path) = listener();
        let notifier = Notifier::open(&path, None).expect("open");
        notifier.ready();
        notifier.status("healthy:\nlast export 2 min ago");
        notifier.watchdog_alive();
        notifier.stopping();
        assert_eq!(received(&socket), "READY=1");
        assert_eq!(received(&socket), "STATUS=healthy: last export 2 min ago");
        assert_eq!(received(&socket), "WATCHDOG=1");
        assert_eq!(received(&socket), "STOPPING=1");
    }

    #[test]
    fn an_abstract_socket_name_is_reached_through_its_at_sign() {
        let name = format!("skolebro-test-{}", std::process::id());
        let addr = {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name")
        };
        let socket = UnixDatagram::bind_addr(&addr).expect("bind abstract");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        Notifier::open(&format!("@{name}"), None)
            .expect("open")
            .ready();
        assert_eq!(received(&socket), "READY=1");
    }

    #[test]
    fn a_missing_socket_is_no_error_for_the_daemon() {
        let notifier = Notifier::open("/nonexistent/notify", None).expect("open needs no peer");
        notifier.ready();
    }

    #[test]
    fn the_watchdog_interval_is_for_the_main_process_only() {
        let me = std::process::id().to_string();
        assert_eq!(
            watchdog_interval(Some("30000000"), None),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), Some(&me)),
            Some(Duration::from_secs(30))
        );
        assert_eq!(watchdog_interval(Some("30000000"), Some("1")), None);
        assert_eq!(watchdog_interval(Some("0"), None), None);
        assert_eq!(watchdog_interval(Some("soon"), None), None);
        assert_eq!(watchdog_interval(None, None), None);
    }
}
