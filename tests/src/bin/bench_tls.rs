//! `skolebro-bench-tls`: what a device's reconnection costs central, with and without TLS
//! session resumption (docs/BENCHMARKS.md). It runs the agent's and central's real rustls
//! configurations (`skolebro_provisioning::tls`, mutual TLS 1.3 with a dev PKI) against each
//! other over in-memory buffers, so the figure is the handshake's CPU cost on both ends
//! alone, without the network: full handshakes (a new device each time, as without
//! resumption) and resumed ones (one device reconnecting with its session ticket).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConfig, ServerConnection};
use skolebro_protocol::{DeviceId, SiteId};
use skolebro_provisioning::pki::{Credentials, DevPki, Validity};
use skolebro_provisioning::tls;

#[derive(Parser)]
#[command(about = "Measures mutual-TLS handshakes per second, full and resumed")]
struct Args {
    /// How long each kind of handshake is repeated.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let validity = Validity::from_now(Duration::from_secs(86_400));
    let pki = DevPki::generate(validity)?;
    let device = pki.device_ca.issue_device(
        &DeviceId::new("pi-bench")?,
        &SiteId::new("bench")?,
        validity,
    )?;
    let server = tls::server_config(
        &pki.server.cert_pem,
        &pki.server.key_pem,
        pki.device_ca.cert_pem(),
    )?;
    let device_config = || -> anyhow::Result<Arc<ClientConfig>> {
        let Credentials { cert_pem, key_pem } = &device;
        Ok(Arc::new(tls::client_config(
            cert_pem,
            key_pem,
            pki.central_ca.cert_pem(),
            None,
        )?))
    };
    let run = Duration::from_secs(args.seconds);

    let full = rate(run, HandshakeKind::Full, || {
        handshake(&device_config()?, &server)
    })?;
    let reconnecting = device_config()?;
    handshake(&reconnecting, &server)?;
    let resumed = rate(run, HandshakeKind::Resumed, || {
        handshake(&reconnecting, &server)
    })?;
    println!("full handshakes (no resumption): {full:.0}/s");
    println!("resumed handshakes (session ticket): {resumed:.0}/s");
    println!("resumption is {:.1}x as fast", resumed / full);
    Ok(())
}

/// Handshakes per second of `kind`, repeated for `run`.
fn rate(
    run: Duration,
    kind: HandshakeKind,
    mut once: impl FnMut() -> anyhow::Result<HandshakeKind>,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut count = 0u32;
    while started.elapsed() < run {
        let got = once()?;
        if got != kind {
            bail!("expected a {kind:?} handshake, got {got:?}");
        }
        count += 1;
    }
    Ok(f64::from(count) / started.elapsed().as_secs_f64())
}

/// One handshake over in-memory buffers, with the tickets that follow it.
fn handshake(
    client: &Arc<ClientConfig>,
    server: &Arc<ServerConfig>,
) -> anyhow::Result<HandshakeKind> {
    let mut client = ClientConnection::new(Arc::clone(client), ServerName::try_from("localhost")?)?;
    let mut server = ServerConnection::new(Arc::clone(server))?;
    let mut wire = Vec::new();
    let mut rounds = 0;
    while client.is_handshaking() || server.is_handshaking() || rounds < 3 {
        rounds += 1;
        if rounds > 10 {
            bail!("the handshake did not finish");
        }
        wire.clear();
        client.write_tls(&mut wire)?;
        server.read_tls(&mut wire.as_slice())?;
        server.process_new_packets()?;
        wire.clear();
        server.write_tls(&mut wire)?;
        client.read_tls(&mut wire.as_slice())?;
        client.process_new_packets()?;
    }
    client.handshake_kind().context("no handshake kind")
}
