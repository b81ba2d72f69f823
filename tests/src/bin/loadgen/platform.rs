//! The central the simulated fleet talks to: either one the load generator starts itself
//! (K `skolebro-central serve` processes on one store, with HAProxy in front when K > 1,
//! passing TLS through so each central still sees the device's certificate), or one already
//! running, named by `--central` with its configuration file. Either way the devices are
//! registered through the store the configuration names, with the same calls as
//! `skolebro-central register-device`, before the night starts.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use skolebro_central::{sites, CentralConfig};
use skolebro_protocol::{SealingPrivateKey, SealingPublicKey};
use skolebro_provisioning::{CertificateAuthority, DevPki, Validity};
use skolebro_tests::appliance::{cost, peak_rss_kib};
use skolebro_tests::harness::{self, free_port, Process, PATIENCE, POLL};

use crate::device::Device;

/// Which store the started centrals share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum StoreKind {
    Sqlite,
    Postgres,
}

/// What the devices need of central, however it was started.
pub(crate) struct Central {
    /// `https://host:port` of the device listener (HAProxy's when it is in front).
    pub(crate) device_url: String,
    /// An operator listener, for the check at the end.
    pub(crate) admin: SocketAddr,
    /// Issues the devices' certificates.
    pub(crate) device_ca: CertificateAuthority,
    /// What the devices trust central's certificate by.
    pub(crate) central_ca_pem: String,
    /// What the devices seal to.
    pub(crate) sealing: SealingPublicKey,
    /// The configuration whose store the devices are registered in.
    pub(crate) config: PathBuf,
}

/// Centrals (and HAProxy) this run started, killed when dropped.
pub(crate) struct Started {
    centrals: Vec<Process>,
    balancer: Option<Process>,
    configs: Vec<PathBuf>,
    admins: Vec<SocketAddr>,
    postgres: Option<(String, String)>,
    dir: PathBuf,
    binary: PathBuf,
}

/// Central's CPU time and memory, from `/proc` of the processes this run started.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    /// User plus system CPU seconds, all instances together.
    pub(crate) cpu_s: f64,
    /// The largest peak resident set of any one instance, MiB.
    pub(crate) peak_rss_mib: f64,
}

/// Writes a platform into `dir` (a dev PKI, a sealing key, one configuration per instance
/// on one store) without starting anything yet, so the devices can be registered first.
pub(crate) fn prepare(
    dir: &Path,
    binary: PathBuf,
    store: StoreKind,
    instances: usize,
    postgres: &str,
) -> anyhow::Result<(Central, Started)> {
    let pki = DevPki::generate(Validity::from_now(Duration::from_secs(48 * 3600)))?;
    pki.write_to(&dir.join("pki"))?;
    let sealing = SealingPrivateKey::generate()?;
    std::fs::write(
        dir.join("sealing.key"),
        format!("{}\n", hex::encode(sealing.to_bytes())),
    )?;
    let mut schema = None;
    let store_table = match store {
        StoreKind::Sqlite => "kind = \"sqlite\"\npath = \"central.db\"\n".to_owned(),
        StoreKind::Postgres => {
            let mut random = [0u8; 6];
            getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
            let name = format!("skolebro_loadgen_{}", hex::encode(random));
            let table = format!("kind = \"postgres\"\nurl = \"{postgres}\"\nschema = \"{name}\"\n");
            schema = Some((postgres.to_owned(), name));
            table
        }
    };
    let mut configs = Vec::new();
    let mut admins = Vec::new();
    let mut device_ports = Vec::new();
    for instance in 0..instances {
        let (device_port, admin_port) = (free_port(), free_port());
        let config = dir.join(format!("central-{instance}.toml"));
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{device_port}\"\n\
                 admin_listen = \"127.0.0.1:{admin_port}\"\n\
                 sealing_key = \"sealing.key\"\n\
                 [tls]\n\
                 cert = \"pki/{}\"\n\
                 key = \"pki/{}\"\n\
                 device_ca = \"pki/{}\"\n\
                 [store]\n{store_table}",
                DevPki::SERVER_CERT,
                DevPki::SERVER_KEY,
                DevPki::DEVICE_CA_CERT,
            ),
        )?;
        configs.push(config);
        admins.push(SocketAddr::from(([127, 0, 0, 1], admin_port)));
        device_ports.push(device_port);
    }
    let device_port = if instances > 1 {
        let port = free_port();
        write_haproxy_config(&dir.join("haproxy.cfg"), port, &device_ports)?;
        port
    } else {
        device_ports[0]
    };
    let central = Central {
        device_url: format!("https://127.0.0.1:{device_port}"),
        admin: admins[0],
        device_ca: pki.device_ca,
        central_ca_pem: pki.central_ca.cert_pem().to_owned(),
        sealing: sealing.public_key(),
        config: configs[0].clone(),
    };
    let started = Started {
        centrals: Vec::new(),
        balancer: None,
        configs,
        admins,
        postgres: schema,
        dir: dir.to_owned(),
        binary,
    };
    Ok((central, started))
}

/// A TCP (layer 4) proxy: TLS passes through untouched, so the client certificate reaches
/// central. `leastconn` because devices keep their connections open between requests.
fn write_haproxy_config(path: &Path, port: u16, backends: &[u16]) -> anyhow::Result<()> {
    let mut text = format!(
        "global\n  maxconn 8000\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 5m\n  timeout server 5m\n\
         frontend devices\n  bind 127.0.0.1:{port}\n  default_backend centrals\n\
         backend centrals\n  balance leastconn\n"
    );
    for (n, backend) in backends.iter().enumerate() {
        text.push_str(&format!("  server central{n} 127.0.0.1:{backend} check\n"));
    }
    std::fs::write(path, text)?;
    Ok(())
}

/// Central named by `--central`: its configuration file says where its store, its device
/// CA and its sealing key are. The device CA's key is the configuration's
/// `tls.device_ca_key`, and central's CA certificate `central-ca.pem` beside its server
/// certificate, as `skolebro-provision init` lays them out.
pub(crate) fn existing(url: &str, config: &Path, admin: SocketAddr) -> anyhow::Result<Central> {
    let loaded = CentralConfig::load(config)?;
    let token = std::env::var("SKOLEBRO_ADMIN_TOKEN").context(
        "a central named by --central needs its operator API token in SKOLEBRO_ADMIN_TOKEN",
    )?;
    harness::use_admin_token(admin, token.trim());
    let ca_key = loaded
        .tls
        .device_ca_key
        .clone()
        .context("the configuration has no tls.device_ca_key to issue device certificates")?;
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    };
    let device_ca = CertificateAuthority::from_pem(&read(&loaded.tls.device_ca)?, &read(&ca_key)?)?;
    let central_ca_pem = read(&loaded.tls.cert.with_file_name(DevPki::CENTRAL_CA_CERT))?;
    Ok(Central {
        device_url: url.trim_end_matches('/').to_owned(),
        admin,
        device_ca,
        central_ca_pem,
        sealing: loaded.read_sealing_key()?.public_key(),
        config: config.to_owned(),
    })
}

/// Registers every device with its site, its school and its site's handle secret in the
/// store of `config`, as `skolebro-central register-device --school` does.
pub(crate) async fn register(
    config: &Path,
    devices: &[std::sync::Arc<Device>],
) -> anyhow::Result<()> {
    let store = CentralConfig::load(config)?.open_store().await?;
    let actor = sites::cli_actor();
    for device in devices {
        sites::register_schools(store.as_ref(), &actor, &device.site, &[device.school()]).await?;
        store.set_site_secret(&device.site, &device.secret).await?;
        store
            .register_device(&device.id, &device.site, &device.signing.verifying_key())
            .await?;
    }
    Ok(())
}

impl Started {
    /// Starts the centrals, and HAProxy in front of them when there are several, and waits
    /// until all answer.
    pub(crate) fn start(&mut self) -> anyhow::Result<()> {
        // One operator API client for the run, made as operations make one; every instance
        // shares the store, so the token opens each one's operator listener.
        let token = self.operator_token()?;
        for admin in &self.admins {
            harness::use_admin_token(*admin, &token);
        }
        for (n, config) in self.configs.iter().enumerate() {
            let mut command = Command::new(&self.binary);
            command
                .current_dir(&self.dir)
                .env("RUST_LOG", "warn")
                .arg("serve")
                .arg("--config")
                .arg(config);
            let mut central =
                Process::spawn(&mut command, &self.dir.join(format!("central-{n}.log")));
            let started = Instant::now();
            while !matches!(harness::http_get(self.admins[n], "/healthz"), Ok((200, _))) {
                if !central.is_running() || started.elapsed() > PATIENCE {
                    bail!(
                        "central {n} did not come up; its log is {}",
                        self.dir.join(format!("central-{n}.log")).display()
                    );
                }
                std::thread::sleep(POLL);
            }
            self.centrals.push(central);
        }
        if self.configs.len() > 1 {
            self.balancer = Some(self.start_haproxy()?);
        }
        Ok(())
    }

    /// A new operator API token for the client `loadgen`, from `skolebro-central
    /// operator-token create` on the first configuration's store.
    fn operator_token(&self) -> anyhow::Result<String> {
        let config = self.configs.first().context("no central configuration")?;
        let output = Command::new(&self.binary)
            .current_dir(&self.dir)
            .args(["operator-token", "create", "--config"])
            .arg(config)
            .arg("loadgen")
            .output()
            .context("running skolebro-central operator-token create")?;
        if !output.status.success() {
            bail!(
                "operator-token create failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8(output.stdout)
            .context("the token is text")?
            .trim()
            .to_owned())
    }

    fn start_haproxy(&self) -> anyhow::Result<Process> {
        let config = self.dir.join("haproxy.cfg");
        let checked = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&config)
            .output()
            .context("haproxy is not installed (apt-get install -y haproxy)")?;
        if !checked.status.success() {
            bail!(
                "haproxy refuses {}: {}",
                config.display(),
                String::from_utf8_lossy(&checked.stderr)
            );
        }
        let text = std::fs::read_to_string(&config)?;
        let port: u16 = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("bind 127.0.0.1:"))
            .and_then(|port| port.parse().ok())
            .context("no port in the HAProxy configuration")?;
        let mut command = Command::new("haproxy");
        command.arg("-db").arg("-f").arg(&config);
        let mut haproxy = Process::spawn(&mut command, &self.dir.join("haproxy.log"));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if !haproxy.is_running() || started.elapsed() > PATIENCE {
                bail!(
                    "haproxy did not come up; see {}",
                    self.dir.join("haproxy.log").display()
                );
            }
            std::thread::sleep(POLL);
        }
        Ok(haproxy)
    }

    /// Central's CPU time and peak memory so far.
    pub(crate) fn usage(&self) -> anyhow::Result<Usage> {
        let mut usage = Usage::default();
        for central in &self.centrals {
            usage.cpu_s += cost(central.pid())?.cpu.as_secs_f64();
            let peak = peak_rss_kib(central.pid())? as f64 / 1024.0;
            usage.peak_rss_mib = usage.peak_rss_mib.max(peak);
        }
        Ok(usage)
    }

    /// Kills what was started and drops the PostgreSQL schema, if the run made one.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(mut balancer) = self.balancer.take() {
            balancer.kill();
        }
        for central in &mut self.centrals {
            central.kill();
        }
        if let Some((conninfo, schema)) = &self.postgres {
            harness::drop_postgres_schema(conninfo, schema).await?;
        }
        Ok(())
    }
}
