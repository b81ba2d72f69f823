//! A client for central's admin API (plain HTTP on central's loopback listener, JSON; see
//! docs/API.md): how `skolebro-provision` registers a stick's token before the stick is
//! written, how `list` and `revoke` see and change tokens and devices, and how `release`
//! registers a signed release and uploads its artifact.
//!
//! Only the token's SHA-256 ever leaves this process; central stores nothing else, so its
//! database cannot enroll a device.
//!
//! Every request carries the operator's own bearer token for the admin API ([`AdminToken`],
//! made with `skolebro-central operator-token create NAME`), which central audits the
//! request's changes under. It is read from a file (`--admin-token-file`) or from
//! [`ADMIN_TOKEN_ENV`], never from the command line, where the process list and the shell
//! history would show it.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use skolebro_protocol::DeviceId;

use crate::error::ProvisionError;

/// How long one admin request may take. Central answers these from its store at once; a
/// longer wait means it is not there.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an artifact upload may take: central hashes and stores some megabytes, on the
/// same machine or near it.
pub const ARTIFACT_TIMEOUT: Duration = Duration::from_secs(300);

/// Default admin URL: central's default operator listener on the same machine.
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:8080";

/// The environment variable holding the operator API token when no `--admin-token-file`
/// is given.
pub const ADMIN_TOKEN_ENV: &str = "SKOLEBRO_ADMIN_TOKEN";

/// An operator API token (`Authorization: Bearer`). Its `Debug` leaves the token out.
#[derive(Clone)]
pub struct AdminToken(String);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(…)")
    }
}

impl AdminToken {
    /// A token from its text, surrounding white space (a file's newline) dropped; refused
    /// when empty or not one word of visible ASCII, which no token central makes is.
    pub fn new(text: &str) -> Result<AdminToken, ProvisionError> {
        let token = text.trim();
        if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ProvisionError::AdminToken(
                "the operator API token is empty or not one word of ASCII".to_owned(),
            ));
        }
        Ok(AdminToken(token.to_owned()))
    }

    /// The token in `file` if one is named, else the one in [`ADMIN_TOKEN_ENV`]; neither is
    /// an error that says how to get one.
    pub fn locate(file: Option<&Path>) -> Result<AdminToken, ProvisionError> {
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|error| ProvisionError::Io {
                path: path.to_owned(),
                error,
            })?;
            return AdminToken::new(&text).map_err(|error| {
                ProvisionError::AdminToken(format!("{}: {error}", path.display()))
            });
        }
        match std::env::var(ADMIN_TOKEN_ENV) {
            Ok(text) => AdminToken::new(&text)
                .map_err(|error| ProvisionError::AdminToken(format!("{ADMIN_TOKEN_ENV}: {error}"))),
            Err(_) => Err(ProvisionError::AdminToken(format!(
                "central's admin API needs an operator token: give --admin-token-file PATH or \
                 set {ADMIN_TOKEN_ENV} (`skolebro-central operator-token create NAME` on \
                 central makes one)"
            ))),
        }
    }
}

/// The body of `POST /admin/tokens`: a new enrollment token, by its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRegistration {
    /// SHA-256 of the token, 64 lowercase hex ([`skolebro_protocol::stick::token_sha256`]).
    pub token_sha256: String,
    /// The site id the token enrolls a device for.
    pub site: String,
    /// The school's name, for lists.
    pub site_name: String,
    /// When the token stops being accepted, Unix seconds.
    pub expires_unix: u64,
    /// The schools the site is registered with; central refuses batches naming others.
    pub schools: Vec<skolebro_protocol::SiteSchool>,
}

/// One token as `GET /admin/tokens` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    /// The first 16 hex characters of the token's SHA-256.
    pub id: String,
    pub site: String,
    pub site_name: String,
    pub created_unix: u64,
    pub expires_unix: u64,
    /// The device that spent the token, if one did.
    pub used_by: Option<String>,
    pub used_unix: Option<u64>,
    pub revoked: bool,
}

/// One device as `GET /admin/devices` lists it: the fields this tool shows, and everything
/// else central sends kept as it came, for `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEntry {
    pub device: String,
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub revoked: Option<bool>,
    /// When central last heard a heartbeat, Unix milliseconds.
    #[serde(default)]
    pub last_heartbeat_unix_ms: Option<u64>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

/// Central's answer to `GET /admin/devices`: a bare list, or the list under `"devices"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum DeviceList {
    Bare(Vec<DeviceEntry>),
    Wrapped { devices: Vec<DeviceEntry> },
}

/// Central's answer to `GET /admin/tokens`: a bare list, or the list under `"tokens"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenList {
    Bare(Vec<TokenEntry>),
    Wrapped { tokens: Vec<TokenEntry> },
}

#[derive(Deserialize)]
struct Registered {
    id: String,
}

/// Central's admin API at one base URL.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client for the admin API at `base_url` (`http://host:port`, or https) that sends
    /// `token` with every request. Checks the URL here, so a typo is reported before
    /// anything is generated or sent.
    pub fn new(base_url: &str, token: &AdminToken) -> Result<AdminClient, ProvisionError> {
        let invalid = |reason: &str| ProvisionError::InvalidField {
            field: "--admin-url",
            reason: format!("{base_url:?}: {reason}"),
        };
        let url = reqwest::Url::parse(base_url).map_err(|error| invalid(&error.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("must start with http:// or https://"));
        }
        if url.host_str().is_none() || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must be http://host:port with no query"));
        }
        // reqwest's rustls backend panics without a process-wide provider; an error only
        // means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut bearer = reqwest::header::HeaderValue::try_from(format!("Bearer {}", token.0))
            .map_err(|_| {
                ProvisionError::AdminToken("the operator API token is not one word".to_owned())
            })?;
        bearer.set_sensitive(true);
        let headers = [(reqwest::header::AUTHORIZATION, bearer)]
            .into_iter()
            .collect();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .default_headers(headers)
            .build()
            .map_err(|error| ProvisionError::AdminUnreachable {
                url: base_url.to_owned(),
                error: error.to_string(),
            })?;
        Ok(AdminClient {
            base: url.as_str().trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// Registers a token (`POST /admin/tokens`) and returns the id central gave it.
    pub async fn register_token(
        &self,
        registration: &TokenRegistration,
    ) -> Result<String, ProvisionError> {
        let request = "POST /admin/tokens";
        let response = self
            .send(self.http.post(self.url("/admin/tokens")).json(registration))
            .await?;
        let registered: Registered = json_body(request, check(request, response).await?).await?;
        Ok(registered.id)
    }

    /// Registers a release by its signed manifest (`POST /admin/releases`) and returns the
    /// id central gave it. Central verifies the manifest with its own copy of `release.pub`.
    pub async fn register_release(&self, manifest: &[u8]) -> Result<String, ProvisionError> {
        let request = "POST /admin/releases";
        let response = self
            .send(
                self.http
                    .post(self.url("/admin/releases"))
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(manifest.to_vec()),
            )
            .await?;
        let registered: Registered = json_body(request, check(request, response).await?).await?;
        Ok(registered.id)
    }

    /// Publishes a key rotation statement (`POST /admin/key-rotations`); central hands it
    /// to every device with the next heartbeat answer. The same statement again is no error.
    pub async fn publish_key_rotation(&self, statement: &[u8]) -> Result<(), ProvisionError> {
        let request = "POST /admin/key-rotations";
        let response = self
            .send(
                self.http
                    .post(self.url("/admin/key-rotations"))
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(statement.to_vec()),
            )
            .await?;
        check(request, response).await?;
        Ok(())
    }

    /// Uploads a registered release's artifact (`PUT /admin/releases/{id}/artifact`); central
    /// keeps it only if its size and SHA-256 are the manifest's.
    pub async fn upload_release_artifact(
        &self,
        id: &str,
        artifact: Vec<u8>,
    ) -> Result<(), ProvisionError> {
        if !skolebro_protocol::release::valid_release_id(id) {
            return Err(ProvisionError::InvalidField {
                field: "release id",
                reason: format!("{id:?} is not a release id (<version>-<target>)"),
            });
        }
        let path = format!("/admin/releases/{id}/artifact");
        let request = format!("PUT {path}");
        let response = self
            .send(
                self.http
                    .put(self.url(&path))
                    .timeout(ARTIFACT_TIMEOUT)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(artifact),
            )
            .await?;
        check(&request, response).await?;
        Ok(())
    }

    /// Every token central knows (`GET /admin/tokens`).
    pub async fn tokens(&self) -> Result<Vec<TokenEntry>, ProvisionError> {
        let request = "GET /admin/tokens";
        let response = self.send(self.http.get(self.url("/admin/tokens"))).await?;
        Ok(
            match json_body(request, check(request, response).await?).await? {
                TokenList::Bare(tokens) | TokenList::Wrapped { tokens } => tokens,
            },
        )
    }

    /// Every device central knows (`GET /admin/devices`).
    pub async fn devices(&self) -> Result<Vec<DeviceEntry>, ProvisionError> {
        let request = "GET /admin/devices";
        let response = self.send(self.http.get(self.url("/admin/devices"))).await?;
        Ok(
            match json_body(request, check(request, response).await?).await? {
                DeviceList::Bare(devices) | DeviceList::Wrapped { devices } => devices,
            },
        )
    }

    /// Revokes a token by its id, so no device can enroll with it any more.
    pub async fn revoke_token(&self, id: &str) -> Result<(), ProvisionError> {
        if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ProvisionError::InvalidField {
                field: "token id",
                reason: format!("{id:?} is not a token id (16 hex characters)"),
            });
        }
        let id = id.to_ascii_lowercase();
        self.revoke("token", &format!("/admin/tokens/{id}/revoke"), &id)
            .await
    }

    /// Revokes a device: central refuses its every request from now on.
    pub async fn revoke_device(&self, device: &str) -> Result<(), ProvisionError> {
        let device = DeviceId::new(device).map_err(|error| ProvisionError::InvalidField {
            field: "device id",
            reason: format!("{device:?}: {error}"),
        })?;
        self.revoke(
            "device",
            &format!("/admin/devices/{device}/revoke"),
            device.as_str(),
        )
        .await
    }

    async fn revoke(&self, what: &'static str, path: &str, id: &str) -> Result<(), ProvisionError> {
        let request = format!("POST {path}");
        let response = self.send(self.http.post(self.url(path))).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Err(ProvisionError::NotFound {
                what,
                id: id.to_owned(),
            });
        }
        check(&request, response).await?;
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ProvisionError> {
        request
            .send()
            .await
            .map_err(|error| ProvisionError::AdminUnreachable {
                url: self.base.clone(),
                error: describe(&error),
            })
    }
}

/// Passes a success through; turns any other status into [`ProvisionError::AdminRefused`]
/// with central's `message` (or `error`) when it sent one.
async fn check(
    request: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, ProvisionError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| {
            let text = |key| value.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            match (text("error"), text("message")) {
                (Some(code), Some(message)) => Some(format!("{code}: {message}")),
                (code, message) => code.or(message),
            }
        })
        .unwrap_or_else(|| body.chars().take(200).collect());
    Err(ProvisionError::AdminRefused {
        request: request.to_owned(),
        status: status.as_u16(),
        message,
    })
}

async fn json_body<T: serde::de::DeserializeOwned>(
    request: &str,
    response: reqwest::Response,
) -> Result<T, ProvisionError> {
    let answer = |reason: String| ProvisionError::AdminAnswer {
        request: request.to_owned(),
        reason,
    };
    let bytes = response
        .bytes()
        .await
        .map_err(|error| answer(describe(&error)))?;
    serde_json::from_slice(&bytes).map_err(|error| answer(error.to_string()))
}

/// A reqwest error with its causes ("error sending request" alone says little).
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AdminToken {
        AdminToken::new(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn a_token_is_read_from_its_file_without_the_newline_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, format!("{}\n", "cd".repeat(32))).unwrap();
        let token = AdminToken::locate(Some(&path)).unwrap();
        assert_eq!(token.0, "cd".repeat(32));
        assert!(!format!("{token:?}").contains("cdcd"));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            AdminToken::locate(Some(&path)),
            Err(ProvisionError::AdminToken(_))
        ));
        assert!(matches!(
            AdminToken::locate(Some(&dir.path().join("missing"))),
            Err(ProvisionError::Io { .. })
        ));
        assert!(AdminToken::new("two words").is_err());
    }

    #[test]
    fn an_admin_url_that_is_not_http_is_refused_before_anything_is_sent() {
        for url in [
            "127.0.0.1:8080",
            "ftp://127.0.0.1/",
            "http://x/?a=1",
            "nonsense",
        ] {
            assert!(
                matches!(
                    AdminClient::new(url, &token()),
                    Err(ProvisionError::InvalidField {
                        field: "--admin-url",
                        ..
                    })
                ),
                "{url}"
            );
        }
        let client = AdminClient::new("http://127.0.0.1:8080/", &token()).unwrap();
        assert_eq!(
            client.url("/admin/tokens"),
            "http://127.0.0.1:8080/admin/tokens"
        );
    }

    #[test]
    fn devices_and_tokens_decode_bare_or_wrapped() {
        let devices = r#"{"devices": [{"device": "4601-12345-0a1b2c3d", "site": "4601-12345",
            "revoked": false, "chain_head": {"next_seq": 3}}]}"#;
        let DeviceList::Wrapped { devices } = serde_json::from_str(devices).unwrap() else {
            panic!("not the wrapped form");
        };
        assert_eq!(devices[0].site.as_deref(), Some("4601-12345"));
        assert!(devices[0].other.contains_key("chain_head"));
        let tokens = r#"[{"id": "0123456789abcdef", "site": "4601-12345", "site_name": "X",
            "created_unix": 1, "expires_unix": 2, "used_by": null, "used_unix": null,
            "revoked": false}]"#;
        let TokenList::Bare(tokens) = serde_json::from_str(tokens).unwrap() else {
            panic!("not the bare form");
        };
        assert_eq!(tokens[0].id, "0123456789abcdef");
    }

    #[tokio::test]
    async fn revoking_a_malformed_id_is_refused_without_asking_central() {
        let client = AdminClient::new("http://127.0.0.1:9", &token()).unwrap();
        assert!(matches!(
            client.revoke_token("../../x").await,
            Err(ProvisionError::InvalidField {
                field: "token id",
                ..
            })
        ));
        assert!(matches!(
            client.revoke_device("a/b").await,
            Err(ProvisionError::InvalidField {
                field: "device id",
                ..
            })
        ));
    }
}
