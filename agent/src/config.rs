//! The agent's configuration file (`agent.toml`). Sticks write it during provisioning; school
//! IT never edits it by hand, so every field has a sensible default and unknown keys are
//! refused rather than silently ignored.

use std::path::{Path, PathBuf};

use crate::reader::{ColumnProfile, Format, ReaderOptions};
use crate::safety::SafetyPolicy;
use crate::validate::ValidationOptions;

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Toml {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
}

/// The settings the pipeline stages read.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Forces a format instead of detecting it.
    pub format: Option<Format>,
    pub validation: ValidationOptions,
    /// Extra elevliste header names per field, for SAS variants.
    pub columns: ColumnProfile,
    pub safety: SafetyPolicy,
}

impl AgentConfig {
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Toml {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    pub fn reader_options(&self) -> ReaderOptions {
        ReaderOptions {
            validation: self.validation,
            columns: self.columns.clone(),
            pipelined: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_config_parses() {
        let config: AgentConfig = toml::from_str(
            r#"
            format = "elevliste"
            [validation]
            reject_synthetic_ids = true
            [columns]
            national_id = ["Personnr."]
            [safety]
            max_deleted_fraction = 0.2
            delay_delete = [{ from = "2026-06-20", to = "2026-08-15" }]
            "#,
        )
        .unwrap();
        assert!(config.validation.reject_synthetic_ids);
        assert_eq!(config.safety.max_deleted_fraction, 0.2);
        assert_eq!(config.safety.min_roster, 20);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<AgentConfig>("rejekt_synthetic = true").is_err());
    }
}
