//! The `--pull-*` flags of `skolebro-provision stick`: the share on the school's file server
//! where the SAS writes its export, which the agent then pulls from (issue 20, pull mode).
//! They become the stick's [`PullShare`] (format 4; `--pull-after` since format 5), with the
//! account's password read from a file and kept as its NT hash only, so neither the stick nor
//! the Pi holds it in clear. The agent stores them after enrolling and uses them unless its
//! `agent.toml` has a `[source]`. A setting left out takes the default the agent's
//! `[source]` takes too (`skolebro_protocol::pull_share::DEFAULT_PORT` and the others).
//!
//! Either the whole set or none: a stick with a server and no account would leave a Pi that
//! can never pull, so half the set is refused before anything is signed, naming the flag
//! that is missing.

use std::path::PathBuf;

use skolebro_protocol::pull_share::{
    DEFAULT_PATTERN, DEFAULT_POLL_SECONDS, DEFAULT_PORT, DEFAULT_STABLE_SECONDS,
};
use skolebro_protocol::{AfterPull, PullShare};

use crate::error::ProvisionError;
use crate::stick::password_nt_hash;

/// The `--pull-*` flags as given; those with a default are `None` when left out, so that
/// giving any of them without the required ones is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct PullFlags {
    /// The school file server the SAS writes its export to (host name, IPv4 address, or
    /// IPv6 address without brackets); the agent then pulls exports from that share instead
    /// of taking them in its drop folder. Needs --pull-share, --pull-user and
    /// --pull-password-file.
    #[arg(long = "pull-server", value_name = "HOST")]
    pub server: Option<String>,
    /// The file server's SMB port [default: 445].
    #[arg(long = "pull-port", value_name = "PORT")]
    pub port: Option<u16>,
    /// The share's name (\\HOST\SHARE).
    #[arg(long = "pull-share", value_name = "SHARE")]
    pub share: Option<String>,
    /// The folder inside the share the SAS writes into [default: the share's top].
    #[arg(long = "pull-folder", value_name = "FOLDER")]
    pub folder: Option<String>,
    /// Which files are exports, with `*` and `?` [default: *].
    #[arg(long = "pull-pattern", value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// The account the agent signs in to the share as (only it should read the folder).
    #[arg(long = "pull-user", value_name = "USER")]
    pub user: Option<String>,
    /// The account's domain or workgroup, when the server wants one.
    #[arg(long = "pull-domain", value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// A file whose first line is the account's password; the stick carries only its NT
    /// hash.
    #[arg(long = "pull-password-file", value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// Seconds between two looks at the share [default: 60].
    #[arg(long = "pull-poll-seconds", value_name = "SECONDS")]
    pub poll_seconds: Option<u32>,
    /// Seconds a file must stay unchanged before it is copied [default: 10].
    #[arg(long = "pull-stable-seconds", value_name = "SECONDS")]
    pub stable_seconds: Option<u32>,
    /// What becomes of an export on the share once central has it: `delete`, or
    /// `move:FOLDER` (a folder of the share, from its top, that only the account can read)
    /// where the county forbids deleting [default: delete].
    #[arg(long = "pull-after", value_name = "delete|move:FOLDER")]
    pub after: Option<AfterPull>,
}

/// The stick's pull share from `flags`: `None` when no `--pull-*` flag is given; an error
/// naming the first missing required flag when only some are, or naming the flag whose
/// value cannot be used.
pub fn pull_share(flags: &PullFlags) -> Result<Option<PullShare>, ProvisionError> {
    if *flags == PullFlags::default() {
        return Ok(None);
    }
    let missing = |field: &'static str| ProvisionError::InvalidField {
        field,
        reason: "required with the other --pull-* flags (--pull-server, --pull-share, \
                 --pull-user and --pull-password-file go together)"
            .to_owned(),
    };
    let server = flags
        .server
        .clone()
        .ok_or_else(|| missing("--pull-server"))?;
    let share = flags.share.clone().ok_or_else(|| missing("--pull-share"))?;
    let user = flags.user.clone().ok_or_else(|| missing("--pull-user"))?;
    let password_file = flags
        .password_file
        .as_deref()
        .ok_or_else(|| missing("--pull-password-file"))?;
    let settings = PullShare {
        server,
        port: flags.port.unwrap_or(DEFAULT_PORT),
        share,
        folder: flags.folder.clone().unwrap_or_default(),
        pattern: flags
            .pattern
            .clone()
            .unwrap_or_else(|| DEFAULT_PATTERN.to_owned()),
        user,
        domain: flags.domain.clone(),
        password_nt_hash: password_nt_hash(password_file, "--pull-password-file")?,
        poll_seconds: flags.poll_seconds.unwrap_or(DEFAULT_POLL_SECONDS),
        stable_seconds: flags.stable_seconds.unwrap_or(DEFAULT_STABLE_SECONDS),
        after: flags.after.clone().unwrap_or_default(),
    };
    match settings.problem() {
        None => Ok(Some(settings)),
        Some((name, reason)) => Err(ProvisionError::InvalidField {
            field: flag_name(name),
            reason: reason.to_owned(),
        }),
    }
}

/// The flag that sets the [`PullShare::problem`] setting `name`.
fn flag_name(name: &str) -> &'static str {
    match name {
        "server" => "--pull-server",
        "port" => "--pull-port",
        "share" => "--pull-share",
        "folder" => "--pull-folder",
        "pattern" => "--pull-pattern",
        "user" => "--pull-user",
        "domain" => "--pull-domain",
        "poll-seconds" => "--pull-poll-seconds",
        "after" => "--pull-after",
        _ => "--pull-password-file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyFolder;
    use crate::stick::{agent_settings, central_url, prepare, site_info, StickRequest};
    use skolebro_protocol::drop_share::nt_hash;

    const PASSWORD: &str = "Pull-share-pass-1";

    fn flags(password_file: PathBuf) -> PullFlags {
        PullFlags {
            server: Some("filserver.skule.example.no".into()),
            share: Some("Eksport".into()),
            folder: Some("sas".into()),
            user: Some("skolebro-les".into()),
            password_file: Some(password_file),
            ..PullFlags::default()
        }
    }

    #[test]
    fn the_pull_password_goes_on_the_stick_as_its_nt_hash_only() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pull.password");
        std::fs::write(&file, format!("{PASSWORD}\nignored\n")).unwrap();
        let settings = pull_share(&flags(file)).unwrap().unwrap();
        assert_eq!(settings.password_nt_hash, nt_hash(PASSWORD));
        assert_eq!((settings.port, settings.pattern.as_str()), (445, "*"));
        assert_eq!((settings.poll_seconds, settings.stable_seconds), (60, 10));
        assert_eq!(settings.after, AfterPull::Delete);
        let (keys, _) = KeyFolder::init(&tmp.path().join("keys"), &[]).unwrap();
        let site = site_info("46", "4601", "12345", "Eksempel skole").unwrap();
        let request = StickRequest {
            schools: vec![],
            site,
            central_url: central_url("https://127.0.0.1:8443").unwrap(),
            expires_days: 14,
            settings_toml: agent_settings(None, None).unwrap(),
            drop_share: None,
            share_source: Some(settings.clone()),
        };
        let prepared = prepare(&keys, &request, 1_750_000_000).unwrap();
        let has = |needle: &[u8]| prepared.bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!has(PASSWORD.as_bytes()));
        assert!(has(nt_hash(PASSWORD).as_bytes()));
        assert_eq!(prepared.body.share_source, Some(settings));
    }

    #[test]
    fn pull_after_move_goes_on_the_stick_as_the_folder_to_move_into() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pull.password");
        std::fs::write(&file, PASSWORD).unwrap();
        let moving = PullFlags {
            after: Some("move:sas/hentet".parse().unwrap()),
            ..flags(file)
        };
        let settings = pull_share(&moving).unwrap().unwrap();
        assert_eq!(settings.after, AfterPull::Move("sas/hentet".into()));
        let only_after = PullFlags {
            after: Some(AfterPull::Delete),
            ..PullFlags::default()
        };
        let error = pull_share(&only_after).unwrap_err().to_string();
        assert!(error.starts_with("--pull-server"), "{error}");
    }

    #[test]
    fn no_pull_flag_leaves_the_source_alone_and_half_the_set_names_the_missing_flag() {
        assert_eq!(pull_share(&PullFlags::default()).unwrap(), None);
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pull.password");
        std::fs::write(&file, PASSWORD).unwrap();
        for flag in [
            "--pull-server",
            "--pull-share",
            "--pull-user",
            "--pull-password-file",
        ] {
            let mut half = flags(file.clone());
            match flag {
                "--pull-server" => half.server = None,
                "--pull-share" => half.share = None,
                "--pull-user" => half.user = None,
                _ => half.password_file = None,
            }
            let error = pull_share(&half).unwrap_err().to_string();
            assert!(error.starts_with(flag), "{flag}: {error}");
        }
        let only_port = PullFlags {
            port: Some(4450),
            ..PullFlags::default()
        };
        let error = pull_share(&only_port).unwrap_err().to_string();
        assert!(error.starts_with("--pull-server"), "{error}");
    }

    #[test]
    fn a_value_smbclient_could_not_take_as_a_name_is_refused_naming_its_flag() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("pull.password");
        std::fs::write(&file, PASSWORD).unwrap();
        let bad_user = PullFlags {
            user: Some("les;rm".into()),
            ..flags(file.clone())
        };
        let error = pull_share(&bad_user).unwrap_err().to_string();
        assert!(error.starts_with("--pull-user"), "{error}");
        let bad_folder = PullFlags {
            folder: Some("a\"b".into()),
            ..flags(file.clone())
        };
        let error = pull_share(&bad_folder).unwrap_err().to_string();
        assert!(error.starts_with("--pull-folder"), "{error}");
        for into in ["sas", "a;b"] {
            let bad_after = PullFlags {
                after: Some(AfterPull::Move(into.into())),
                ..flags(file.clone())
            };
            let error = pull_share(&bad_after).unwrap_err().to_string();
            assert!(error.starts_with("--pull-after"), "{into}: {error}");
        }
        std::fs::write(&file, "\n").unwrap();
        let error = pull_share(&flags(file)).unwrap_err().to_string();
        assert!(error.starts_with("--pull-password-file"), "{error}");
    }
}
