//! The export formats the readers know, by the names the config and the command line use.

use std::fmt;

/// The export formats the agent reads. Each has one name, the one [`Format::as_str`] gives
/// and every report prints; `--format` and the config's `format` also take the spelling
/// with a hyphen inside "one-roster", which earlier releases required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Elevliste,
    #[serde(rename = "oneroster-csv", alias = "one-roster-csv")]
    #[cfg_attr(
        feature = "clap",
        value(name = "oneroster-csv", alias = "one-roster-csv")
    )]
    OneRosterCsv,
    #[serde(rename = "oneroster-json", alias = "one-roster-json")]
    #[cfg_attr(
        feature = "clap",
        value(name = "oneroster-json", alias = "one-roster-json")
    )]
    OneRosterJson,
    ImsEnterprise,
}

impl Format {
    /// The name reports, the command line and the config use.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Elevliste => "elevliste",
            Format::OneRosterCsv => "oneroster-csv",
            Format::OneRosterJson => "oneroster-json",
            Format::ImsEnterprise => "ims-enterprise",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Config {
        format: Format,
    }

    #[test]
    fn the_config_takes_the_name_reports_print_and_the_older_spelling() {
        for format in [
            Format::Elevliste,
            Format::OneRosterCsv,
            Format::OneRosterJson,
            Format::ImsEnterprise,
        ] {
            let text = format!("format = \"{format}\"");
            let config: Config = toml::from_str(&text).expect(&text);
            assert_eq!(config.format, format);
        }
        let config: Config = toml::from_str("format = \"one-roster-csv\"").unwrap();
        assert_eq!(config.format, Format::OneRosterCsv);
        let config: Config = toml::from_str("format = \"one-roster-json\"").unwrap();
        assert_eq!(config.format, Format::OneRosterJson);
    }
}
