//! The schools a site is registered with: which schools one site's device may speak for.
//!
//! Operations name a site's schools when its stick is made (`skolebro-provision stick`).
//! Central keeps them as the site's registration and refuses a batch naming any other school
//! (`403 wrong_school`); the stick carries them to the agent, which refuses an export naming
//! any other school before anything is sealed. Both ends decide with [`SiteSchool::covers`],
//! so they cannot disagree about which school a record names. Scope (which kommune sees the
//! site) and the site's name come from this registration, never from the records a device
//! sends.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::roster::School;

/// Longest school name a registration keeps: names are for people, and they end up in lists.
pub const MAX_SCHOOL_NAME_CHARS: usize = 200;

/// One school of a site's registration: its kommunenummer and its skolenummer or
/// organisasjonsnummer (or both), with a name for people to read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SiteSchool {
    /// The municipality (4 digits): decides which municipality accounts see the site.
    pub kommunenummer: String,
    /// The school's number within the municipality (1 to 12 digits), as the SAS exports it.
    pub skolenummer: Option<String>,
    /// The school's organisation number in Enhetsregisteret (9 digits), unique nationally.
    pub organisasjonsnummer: Option<String>,
    /// The school's name as operations registered it: what central shows for the site.
    pub name: String,
}

/// Why a school cannot be registered as given. Each names the part that is wrong, so the
/// operator typing it can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiteSchoolError {
    #[error("a school is written KOMMUNE/SKOLENUMMER[/ORGNR]=NAME or KOMMUNE//ORGNR=NAME")]
    Syntax,
    #[error("the kommunenummer {0:?} is not 4 digits")]
    Kommune(String),
    #[error("the skolenummer {0:?} is not 1 to 12 digits")]
    Skolenummer(String),
    #[error("the organisasjonsnummer {0:?} is not 9 digits")]
    Organisasjonsnummer(String),
    #[error("a school needs a skolenummer or an organisasjonsnummer")]
    NoNumber,
    #[error("a school's name is 1 to {MAX_SCHOOL_NAME_CHARS} characters on one line")]
    Name,
}

fn digits(text: &str, lengths: std::ops::RangeInclusive<usize>) -> bool {
    lengths.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

impl SiteSchool {
    /// Checks and builds a school: kommunenummer 4 digits, skolenummer 1 to 12 digits,
    /// organisasjonsnummer 9 digits, at least one of the two numbers, a name of 1 to
    /// [`MAX_SCHOOL_NAME_CHARS`] characters without control characters (trimmed).
    pub fn new(
        kommunenummer: &str,
        skolenummer: Option<&str>,
        organisasjonsnummer: Option<&str>,
        name: &str,
    ) -> Result<SiteSchool, SiteSchoolError> {
        if !digits(kommunenummer, 4..=4) {
            return Err(SiteSchoolError::Kommune(kommunenummer.to_owned()));
        }
        if let Some(number) = skolenummer.filter(|n| !digits(n, 1..=12)) {
            return Err(SiteSchoolError::Skolenummer(number.to_owned()));
        }
        if let Some(number) = organisasjonsnummer.filter(|n| !digits(n, 9..=9)) {
            return Err(SiteSchoolError::Organisasjonsnummer(number.to_owned()));
        }
        if skolenummer.is_none() && organisasjonsnummer.is_none() {
            return Err(SiteSchoolError::NoNumber);
        }
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_SCHOOL_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(SiteSchoolError::Name);
        }
        Ok(SiteSchool {
            kommunenummer: kommunenummer.to_owned(),
            skolenummer: skolenummer.map(str::to_owned),
            organisasjonsnummer: organisasjonsnummer.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// Checks a school that arrived from elsewhere (a JSON body, a stored row) as
    /// [`SiteSchool::new`] checks a typed one.
    pub fn checked(self) -> Result<SiteSchool, SiteSchoolError> {
        SiteSchool::new(
            &self.kommunenummer,
            self.skolenummer.as_deref(),
            self.organisasjonsnummer.as_deref(),
            &self.name,
        )
    }

    /// The registration of the school an export's record describes: for registering the
    /// schools of a known export (the quickstart, tests), never for trusting a device's
    /// records. A record without a kommunenummer cannot be registered.
    pub fn of_record(school: &School) -> Result<SiteSchool, SiteSchoolError> {
        let kommune = school.kommunenummer.as_deref().map(str::trim).unwrap_or("");
        let org = school
            .organisasjonsnummer
            .as_deref()
            .map(str::trim)
            .filter(|org| !org.is_empty());
        SiteSchool::new(kommune, Some(school.skolenummer.trim()), org, &school.name)
    }

    /// Whether a school record of an export names this school. A kommunenummer the record
    /// carries must be this one. When both carry an organisasjonsnummer, it decides (it is
    /// unique nationally); otherwise the skolenummer must be this one's.
    pub fn covers(&self, school: &School) -> bool {
        let trimmed = |value: &Option<compact_str::CompactString>| {
            value
                .as_deref()
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        if trimmed(&school.kommunenummer).is_some_and(|k| k != self.kommunenummer) {
            return false;
        }
        if let (Some(own), Some(theirs)) = (
            self.organisasjonsnummer.as_deref(),
            trimmed(&school.organisasjonsnummer),
        ) {
            return own == theirs;
        }
        self.skolenummer.as_deref() == Some(school.skolenummer.trim())
    }

    /// The school's numbers without its name, `KOMMUNE/SKOLENUMMER[/ORGNR]`: how logs,
    /// audit lines and the move command name it.
    pub fn key(&self) -> String {
        let mut key = format!(
            "{}/{}",
            self.kommunenummer,
            self.skolenummer.as_deref().unwrap_or("")
        );
        if let Some(org) = &self.organisasjonsnummer {
            key.push('/');
            key.push_str(org);
        }
        key
    }
}

/// `KOMMUNE/SKOLENUMMER[/ORGNR]=NAME`, the form [`SiteSchool::from_str`] reads.
impl fmt::Display for SiteSchool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key(), self.name)
    }
}

/// Reads `KOMMUNE/SKOLENUMMER=NAME`, `KOMMUNE/SKOLENUMMER/ORGNR=NAME` or
/// `KOMMUNE//ORGNR=NAME`: how operators type a school on the command line.
impl FromStr for SiteSchool {
    type Err = SiteSchoolError;

    fn from_str(text: &str) -> Result<SiteSchool, SiteSchoolError> {
        let (numbers, name) = text.split_once('=').ok_or(SiteSchoolError::Syntax)?;
        let mut parts = numbers.trim().split('/');
        let kommune = parts.next().ok_or(SiteSchoolError::Syntax)?;
        let skolenummer = parts.next().ok_or(SiteSchoolError::Syntax)?;
        let org = parts.next();
        if parts.next().is_some() {
            return Err(SiteSchoolError::Syntax);
        }
        let skolenummer = Some(skolenummer).filter(|number| !number.is_empty());
        let org = org.filter(|number| !number.is_empty());
        SiteSchool::new(kommune, skolenummer, org, name)
    }
}

/// The first school of `schools` that none of `registered` covers: what the agent and
/// central refuse a roster or a batch for. `None` when every school is registered.
pub fn first_foreign<'a>(
    registered: &[SiteSchool],
    schools: impl IntoIterator<Item = &'a School>,
) -> Option<&'a School> {
    schools
        .into_iter()
        .find(|school| !registered.iter().any(|own| own.covers(school)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kommune: Option<&str>, skolenummer: &str, org: Option<&str>) -> School {
        School {
            skolenummer: skolenummer.into(),
            organisasjonsnummer: org.map(Into::into),
            kommunenummer: kommune.map(Into::into),
            fylkesnummer: None,
            name: "Fana skule".into(),
        }
    }

    #[test]
    fn a_school_is_read_and_written_in_the_form_operators_type() {
        let school: SiteSchool = "4602/777=Ny skole".parse().unwrap();
        assert_eq!(
            school,
            SiteSchool::new("4602", Some("777"), None, "Ny skole").unwrap()
        );
        assert_eq!(school.to_string(), "4602/777=Ny skole");
        let by_org: SiteSchool = "4601//974600000= Fana skule ".parse().unwrap();
        assert_eq!(by_org.skolenummer, None);
        assert_eq!(by_org.organisasjonsnummer.as_deref(), Some("974600000"));
        assert_eq!(by_org.name, "Fana skule");
        assert_eq!(by_org.to_string().parse::<SiteSchool>().unwrap(), by_org);
        let both: SiteSchool = "4601/46500/974600000=Fana skule".parse().unwrap();
        assert_eq!(both.key(), "4601/46500/974600000");
    }

    #[test]
    fn malformed_schools_are_refused_naming_the_part_that_is_wrong() {
        let parse = |text: &str| text.parse::<SiteSchool>().unwrap_err();
        assert_eq!(parse("4601/46500"), SiteSchoolError::Syntax);
        assert_eq!(parse("4601=Fana"), SiteSchoolError::Syntax);
        assert_eq!(parse("4601/1/2/3=Fana"), SiteSchoolError::Syntax);
        assert!(matches!(
            parse("461/46500=Fana"),
            SiteSchoolError::Kommune(_)
        ));
        assert!(matches!(
            parse("4601/4650x=Fana"),
            SiteSchoolError::Skolenummer(_)
        ));
        assert!(matches!(
            parse("4601//97460000=Fana"),
            SiteSchoolError::Organisasjonsnummer(_)
        ));
        assert_eq!(parse("4601/=Fana"), SiteSchoolError::NoNumber);
        assert_eq!(parse("4601/46500= "), SiteSchoolError::Name);
        assert_eq!(parse("4601/46500=a\nb"), SiteSchoolError::Name);
    }

    #[test]
    fn a_registered_school_covers_records_of_its_numbers_only() {
        let own = SiteSchool::new("4602", Some("777"), None, "Ny skole").unwrap();
        assert!(own.covers(&record(Some("4602"), "777", None)));
        assert!(
            own.covers(&record(None, " 777 ", None)),
            "no kommune: the number decides"
        );
        assert!(
            !own.covers(&record(Some("4601"), "777", None)),
            "another kommune"
        );
        assert!(
            !own.covers(&record(Some("4602"), "778", None)),
            "another school"
        );
    }

    #[test]
    fn an_organisasjonsnummer_both_sides_know_decides() {
        let own = SiteSchool::new("4601", Some("46500"), Some("974600000"), "Fana").unwrap();
        assert!(own.covers(&record(Some("4601"), "1", Some("974600000"))));
        assert!(!own.covers(&record(Some("4601"), "46500", Some("974600001"))));
        assert!(own.covers(&record(Some("4601"), "46500", None)));
        let by_org = SiteSchool::new("4601", None, Some("974600000"), "Fana").unwrap();
        assert!(
            !by_org.covers(&record(Some("4601"), "46500", None)),
            "no number to match"
        );
    }

    #[test]
    fn a_record_registers_as_the_school_it_covers() {
        let fana = record(Some("4601"), "46500", Some("974600000"));
        let registered = SiteSchool::of_record(&fana).unwrap();
        assert_eq!(registered.to_string(), "4601/46500/974600000=Fana skule");
        assert!(registered.covers(&fana));
        assert!(SiteSchool::of_record(&record(None, "46500", None)).is_err());
    }

    #[test]
    fn the_first_school_no_registration_covers_is_found() {
        let registered = ["4602/777=Ny skole".parse::<SiteSchool>().unwrap()];
        let schools = [
            record(Some("4602"), "777", None),
            record(Some("4601"), "46500", None),
        ];
        assert_eq!(first_foreign(&registered, &schools), Some(&schools[1]));
        assert_eq!(first_foreign(&registered, &schools[..1]), None);
        assert_eq!(first_foreign(&[], &schools[..1]), Some(&schools[0]));
    }
}
