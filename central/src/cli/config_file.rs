//! Where every `skolebro-central` command finds its configuration file.

/// The environment variable every command reads the config file's path from when
/// `--config` is not given (a systemd unit's `Environment=`).
pub(super) const CONFIG_ENV: &str = "SKOLEBRO_CENTRAL_CONFIG";

/// Where the Debian package's unit and operations expect the config, so that no command
/// needs `--config` on an installed central.
pub(super) const DEFAULT_CONFIG: &str = "/etc/skolebro/central.toml";
