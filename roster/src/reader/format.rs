//! The export formats the readers know, by the names the config and the command line use.

use std::fmt;

/// The export formats the agent reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Elevliste,
    OneRosterCsv,
    OneRosterJson,
    ImsEnterprise,
}

impl Format {
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
