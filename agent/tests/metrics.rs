//! The agent's local metrics listener, on a real `skolebro-agent run` process: a Prometheus
//! parser reads what it serves, and a port already taken stops the agent at start, naming
//! the setting.

use std::net::{SocketAddr, TcpListener};
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

/// An agent without an identity: it waits for a config stick, as a Pi fresh from the box.
fn start(dir: &Path, addr: SocketAddr) -> Agent {
    std::fs::create_dir_all(dir.join("media")).unwrap();
    std::fs::write(dir.join("synchronized"), "").unwrap();
    std::fs::write(
        dir.join("agent.toml"),
        format!(
            "state_dir = \"state\"\nstick_roots = [\"media\"]\nclock_synced_file = \
             \"synchronized\"\npanel = \"none\"\nmetrics_listen = \"{addr}\"\n"
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_skolebro-agent"))
        .current_dir(dir)
        .arg("--config")
        .arg(dir.join("agent.toml"))
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Agent(child)
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// reqwest is built without a TLS provider of its own (the agent brings ring).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// `GET /metrics` until the agent answers and `done` holds for the body, for at most 30 s.
fn scrape_until(addr: SocketAddr, agent: &mut Agent, done: impl Fn(&str) -> bool) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = client();
    let started = Instant::now();
    loop {
        let answer = runtime.block_on(async {
            let response = client
                .get(format!("http://{addr}/metrics"))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .ok()?;
            let content_type = response
                .headers()
                .get("content-type")?
                .to_str()
                .ok()?
                .to_owned();
            assert!(
                content_type.starts_with("text/plain; version=0.0.4"),
                "{content_type}"
            );
            response.text().await.ok()
        });
        if let Some(body) = answer.filter(|body| done(body)) {
            return body;
        }
        assert!(
            agent.0.try_wait().unwrap().is_none(),
            "the agent exited while the test waited for its metrics"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no metrics from the agent within 30 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_waiting_agent_serves_its_state_to_a_prometheus_parser() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_port();
    let mut agent = start(dir.path(), addr);
    let body = scrape_until(addr, &mut agent, |body| {
        body.contains("skolebro_agent_state{state=\"not_provisioned\"} 1")
    });

    let lines = body.lines().map(|line| Ok(line.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{name} is not a gauge: {other:?}"),
            })
    };
    assert_eq!(
        value("skolebro_agent_state", Some(("state", "not_provisioned"))),
        Some(1.0)
    );
    assert_eq!(
        value("skolebro_agent_state", Some(("state", "healthy"))),
        Some(0.0)
    );
    assert_eq!(value("skolebro_agent_outbox_depth", None), Some(0.0));
    assert_eq!(value("skolebro_agent_held_delta", None), Some(0.0));

    // Only /metrics is served.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let other = runtime
        .block_on(
            reqwest::Client::new()
                .get(format!("http://{addr}/status"))
                .send(),
        )
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[test]
fn a_metrics_port_already_taken_stops_the_agent_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut agent = start(dir.path(), taken.local_addr().unwrap());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = agent.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the agent kept running on a port it could not bind"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(agent.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("metrics_listen"), "{stderr}");
    assert!(
        stderr.contains(&taken.local_addr().unwrap().to_string()),
        "{stderr}"
    );
}
