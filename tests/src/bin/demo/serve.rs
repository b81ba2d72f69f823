//! The demo's credentials and `--serve`: after the exports arrived (`quickstart.rs`), central
//! keeps every listener open and the agent keeps watching its drop folder until Ctrl-C or
//! SIGTERM, so people can sign in to the operator interface and OneRoster clients can read
//! what arrived. The operator account and the consumer client are made for this run only,
//! in the demo's own store, the way operations make them: the account through central's
//! account rules, the operator API token through `operator_auth` (as `skolebro-central
//! operator-token create` makes one), the client through the operator API's
//! `POST /admin/clients` with that token.

use std::net::SocketAddr;

use anyhow::Context as _;
use serde_json::{json, Value};
use skolebro_central::oneroster::BASE;
use skolebro_central::store::Store;
use skolebro_central::RunningServer;
use skolebro_protocol::api::HeldDelta;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::Out;

/// The name of the demo's operator account.
const OPERATOR: &str = "demo";

/// SIGTERM and SIGINT, listened for from the demo's start so either stops it in order
/// (agent first, then central) rather than killing it mid-write.
pub(crate) struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    pub(crate) fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves at the next signal, naming it.
    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }
}

/// The operator account made for this run: an operations account with a random password,
/// and an operator API token of the same name, gone with the demo's store.
pub(crate) struct Operator {
    pub name: &'static str,
    pub password: String,
    /// The bearer token of operator API client `demo`.
    pub admin_token: String,
}

/// Makes the demo's operator account and operator API token in `store`, as
/// `skolebro-central add-user` and `operator-token create` would.
pub(crate) async fn operator_account(store: &dyn Store) -> anyhow::Result<Operator> {
    let password = random_hex::<12>()?;
    let user = skolebro_central::ui::new_user(OPERATOR, "operations", None, &password)?;
    store.create_user(&user).await?;
    let token = skolebro_central::operator_auth::create(store, "cli:demo", OPERATOR).await?;
    Ok(Operator {
        name: OPERATOR,
        password,
        admin_token: token.reveal().to_owned(),
    })
}

/// Where central's listeners are, as URLs.
pub(crate) struct Urls {
    pub device: String,
    pub admin: String,
    pub admin_addr: SocketAddr,
    pub ui: String,
    /// The OneRoster base, ending in [`BASE`].
    pub consumer: String,
    /// The OAuth2 token endpoint (client credentials).
    pub token: String,
}

impl Urls {
    pub(crate) fn of(central: &RunningServer) -> anyhow::Result<Urls> {
        let consumer = central
            .consumer_addr
            .context("central started without its consumer listener")?;
        let ui = central
            .ui_addr
            .context("central started without its web interface")?;
        Ok(Urls {
            device: format!("https://{}", central.device_addr),
            admin: format!("http://{}", central.admin_addr),
            admin_addr: central.admin_addr,
            ui: format!("http://{ui}"),
            consumer: format!("http://{consumer}{BASE}"),
            token: format!("http://{consumer}/oauth/token"),
        })
    }
}

/// A OneRoster consumer client of this run, scoped to the demo's county.
pub(crate) struct ConsumerClient {
    pub id: String,
    pub secret: String,
    pub scope: Value,
}

/// Creates a consumer client for `county` (the fylkesnummer of the demo's schools; the
/// samples' 46 when no export named a school) through the operator API, as operations do.
pub(crate) async fn consumer_client(
    admin: SocketAddr,
    admin_token: &str,
    county: Option<&str>,
) -> anyhow::Result<ConsumerClient> {
    skolebro_tests::harness::use_admin_token(admin, admin_token);
    let scope = json!({ "county": county.unwrap_or("46") });
    let body = json!({ "name": "skolebro-demo", "scope": scope });
    let (status, answer) = tokio::task::spawn_blocking(move || {
        skolebro_tests::harness::http_post_json(admin, "/admin/clients", &body)
    })
    .await?
    .context("asking central's operator API for a consumer client")?;
    if status != 201 {
        anyhow::bail!(
            "central's operator API answered {status} to the demo's consumer client: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let answer: Value = serde_json::from_slice(&answer)?;
    let field = |name: &str| {
        answer[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("central's new consumer client has no {name}"))
    };
    Ok(ConsumerClient {
        id: field("client_id")?,
        secret: field("client_secret")?,
        scope,
    })
}

/// What `--serve` shows while it waits.
pub(crate) struct Session<'a> {
    pub dir: &'a std::path::Path,
    pub urls: &'a Urls,
    pub operator: &'a Operator,
    pub client: &'a ConsumerClient,
    pub counts: &'a Value,
    pub held: Option<&'a HeldDelta>,
    pub equal: bool,
}

/// Prints the listeners and credentials (with `json`, as one flushed line of JSON on
/// stdout) and waits for SIGTERM or SIGINT.
pub(crate) async fn wait(
    session: &Session<'_>,
    json: bool,
    out: &Out,
    signals: &mut Signals,
) -> anyhow::Result<()> {
    let Session {
        dir,
        urls,
        operator,
        client,
        ..
    } = session;
    say!(out);
    say!(out, "serving until Ctrl-C or SIGTERM:");
    say!(out, "  device listener     {} (mutual TLS)", urls.device);
    say!(
        out,
        "  operator API        {} (loopback)  Authorization: Bearer {}",
        urls.admin,
        operator.admin_token
    );
    say!(
        out,
        "  operator interface  {}  user {}  password {}",
        urls.ui,
        operator.name,
        operator.password
    );
    say!(out, "  OneRoster 1.1       {}", urls.consumer);
    say!(
        out,
        "  OAuth2 token        {}  client_id {}  client_secret {}  ({})",
        urls.token,
        client.id,
        client.secret,
        client.scope
    );
    say!(
        out,
        "  drop folder         {} (the agent still watches it)",
        dir.join("drop").display()
    );
    if json {
        let mut document = json!({
            "dir": dir.display().to_string(),
            "device_url": urls.device,
            "admin_url": urls.admin,
            "admin_token": operator.admin_token,
            "ui_url": urls.ui,
            "ui_user": operator.name,
            "ui_password": operator.password,
            "consumer_url": urls.consumer,
            "token_url": urls.token,
            "consumer_client_id": client.id,
            "consumer_client_secret": client.secret,
            "consumer_scope": client.scope,
            "drop_dir": dir.join("drop").display().to_string(),
            "counts": session.counts,
            "equal": session.equal,
        });
        if let Some(held) = session.held {
            document["held"] = serde_json::to_value(held)?;
        }
        out.json(&document)?;
    }
    let signal = signals.next().await;
    tracing::info!(signal, "stopping the demo");
    say!(out, "{signal}: stopping");
    Ok(())
}

/// `N` random bytes as hex, for a one-time password.
fn random_hex<const N: usize>() -> anyhow::Result<String> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
    Ok(hex::encode(bytes))
}
