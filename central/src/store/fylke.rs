//! County numbers (fylkesnummer): the key transfer windows, consumers' scopes and
//! municipality operators share, checked once where a county enters central.

use std::fmt;

use serde::{Serialize, Serializer};
use skolebro_protocol::School;

/// A county number (fylkesnummer), two digits, checked once where it enters central, so a
/// window can never name a county that no school could carry. Shown with its leading zero
/// (`03`), as schools' records write it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fylke(u8);

impl Fylke {
    /// The county written as exactly two ASCII digits, or `None`.
    pub fn parse(text: &str) -> Option<Fylke> {
        match text.as_bytes() {
            [tens @ b'0'..=b'9', ones @ b'0'..=b'9'] => {
                Some(Fylke((tens - b'0') * 10 + ones - b'0'))
            }
            _ => None,
        }
    }

    /// The county a kommunenummer (four digits) lies in: its first two digits. This is how
    /// a municipality operator's county is found, and a school's when it names no county.
    pub fn of_kommune(kommune: &str) -> Option<Fylke> {
        let kommune = kommune.trim();
        if kommune.len() == 4 && kommune.bytes().all(|b| b.is_ascii_digit()) {
            Fylke::parse(&kommune[..2])
        } else {
            None
        }
    }

    /// The county of a school: its fylkesnummer, or lacking one its kommunenummer's first
    /// two digits, the same rule [`super::ConsumerScope::covers`] applies, so a window's
    /// sites are the sites its county's consumers and exports reach.
    pub fn of_school(school: &School) -> Option<Fylke> {
        match school.fylkesnummer.as_deref().map(str::trim) {
            Some(county) if !county.is_empty() => Fylke::parse(county),
            _ => school.kommunenummer.as_deref().and_then(Fylke::of_kommune),
        }
    }
}

impl fmt::Display for Fylke {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

impl Serialize for Fylke {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn school(county: Option<&str>, kommune: Option<&str>) -> School {
        School {
            skolenummer: "46505".into(),
            organisasjonsnummer: None,
            kommunenummer: kommune.map(Into::into),
            fylkesnummer: county.map(Into::into),
            name: "Fana skule".into(),
        }
    }

    #[test]
    fn a_county_is_two_digits_and_keeps_its_leading_zero() {
        assert_eq!(Fylke::parse("03").map(|f| f.to_string()), Some("03".into()));
        assert_eq!(Fylke::parse("46").map(|f| f.to_string()), Some("46".into()));
        for bad in ["", "4", "460", "4a", " 46", "٤٦"] {
            assert_eq!(Fylke::parse(bad), None, "{bad}");
        }
        assert_eq!(Fylke::of_kommune("0301"), Fylke::parse("03"));
        assert_eq!(Fylke::of_kommune("46"), None);
    }

    #[test]
    fn a_schools_county_falls_back_to_its_kommunenummer() {
        let vestland = Fylke::parse("46");
        assert_eq!(
            Fylke::of_school(&school(Some("46"), Some("0301"))),
            vestland
        );
        assert_eq!(Fylke::of_school(&school(Some(" "), Some("4601"))), vestland);
        assert_eq!(Fylke::of_school(&school(None, Some("4601"))), vestland);
        assert_eq!(Fylke::of_school(&school(None, None)), None);
    }
}
