//! Synthetic rosters of any size, for the repo's sample export, tests and benchmarks. Every
//! national id is a synthetic test number (Skatteetaten's month + 80) with valid control
//! digits, so nothing generated can be a real person. Output is deterministic for a seed, and
//! a roster can be evolved into "the next export" (leavers, arrivals, renames, class moves)
//! to exercise the differ.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Write};

use skolebro_protocol::national_id::CivilDate;
use skolebro_protocol::{
    Enrollment, Gender, Group, NationalId, Roster, School, SiteSchool, Student,
};

const GIVEN: &[&str] = &[
    "Ola", "Kari", "Nora", "Jakob", "Emma", "Noah", "Sofie", "Øystein", "Åse", "Ingrid", "Sindre",
    "Thea", "Magnus", "Ærlend", "Leah", "Vilde", "Oskar", "Jørgen", "Maja", "Håkon",
];
const MIDDLE: &[&str] = &[
    "", "", "Marie", "Andre", "Kristian", "Elise", "Sofie", "Bjørn",
];
const FAMILY: &[&str] = &[
    "Nilsen",
    "Mæhle",
    "Vågen",
    "Hansen",
    "Bjørnstad",
    "Åsheim",
    "Larsen",
    "Fjærestad",
    "Olsen",
    "Lægreid",
    "Haugen",
    "Berg",
    "Johansen",
    "Sæther",
    "Kvåle",
    "Dahl",
];
const CLASSES: &[&str] = &["A", "B", "C", "D"];

/// A small, fast, seedable generator (xorshift64*): the roster must be the same on every
/// machine for a seed, and no randomness crate is needed for that.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One generated student row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pupil {
    pub serial: u64,
    pub national_id: String,
    /// The day the national id was made for: what the reader must derive from it.
    pub born: (u16, u8, u8),
    pub given: String,
    pub middle: String,
    pub family: String,
    pub male: bool,
    pub school: usize,
    pub grade: u8,
    pub class: &'static str,
}

/// A generated roster: schools of one municipality and their students.
#[derive(Debug, Clone)]
pub struct Generated {
    pub schools: usize,
    /// The skolenummer of school 0; school `n` is this plus `n`. Sites sharing one central
    /// need schools of their own: central refuses a school another site holds.
    pub first_school: usize,
    pub pupils: Vec<Pupil>,
    next_serial: u64,
    /// Every id handed out, leavers included, so no two people ever share one.
    issued: HashSet<String>,
}

/// The changes [`Generated::evolve`] makes, as fractions of the roster.
#[derive(Debug, Clone, Copy)]
pub struct Churn {
    pub leave: f64,
    pub arrive: f64,
    pub rename: f64,
    pub move_class: f64,
}

impl Default for Churn {
    /// About what a school sees between two nightly exports in a busy week.
    fn default() -> Self {
        Churn {
            leave: 0.02,
            arrive: 0.02,
            rename: 0.01,
            move_class: 0.01,
        }
    }
}

impl Generated {
    /// `students` pupils spread over schools of about 500.
    pub fn new(students: usize, seed: u64) -> Generated {
        Generated::with_schools(students, students.div_ceil(500).max(1), 46_500, seed)
    }

    /// `students` pupils at the one school numbered `skolenummer`: a small site of its own,
    /// as the load generator gives each simulated device.
    pub fn one_school(students: usize, skolenummer: usize, seed: u64) -> Generated {
        Generated::with_schools(students, 1, skolenummer, seed)
    }

    fn with_schools(students: usize, schools: usize, first_school: usize, seed: u64) -> Generated {
        let mut rng = Rng::new(seed);
        let mut generated = Generated {
            schools,
            first_school,
            pupils: Vec::with_capacity(students),
            next_serial: 1,
            issued: HashSet::with_capacity(students),
        };
        for _ in 0..students {
            let pupil = generated.new_pupil(&mut rng);
            generated.pupils.push(pupil);
        }
        generated
    }

    fn new_pupil(&mut self, rng: &mut Rng) -> Pupil {
        let serial = self.next_serial;
        self.next_serial += 1;
        let grade = 1 + rng.below(10) as u8;
        let (national_id, born) = loop {
            let (id, born) = synthetic_id_born(rng, 2026 - 6 - u16::from(grade));
            if self.issued.insert(id.clone()) {
                break (id, born);
            }
        };
        Pupil {
            serial,
            national_id,
            born,
            given: rng.pick(GIVEN).to_owned(),
            middle: rng.pick(MIDDLE).to_owned(),
            family: rng.pick(FAMILY).to_owned(),
            male: rng.below(2) == 0,
            school: rng.below(self.schools as u64) as usize,
            grade,
            class: rng.pick(CLASSES),
        }
    }

    /// The next export: some pupils leave, some arrive, some change name, some move class.
    pub fn evolve(&self, churn: Churn, seed: u64) -> Generated {
        let mut rng = Rng::new(seed);
        let mut next = self.clone();
        let n = self.pupils.len() as f64;
        let fraction = |f: f64| (n * f).round() as usize;
        for _ in 0..fraction(churn.leave).min(next.pupils.len()) {
            let i = rng.below(next.pupils.len() as u64) as usize;
            next.pupils.swap_remove(i);
        }
        for _ in 0..fraction(churn.rename) {
            let i = rng.below(next.pupils.len() as u64) as usize;
            next.pupils[i].family = format!("{}-{}", next.pupils[i].family, rng.pick(FAMILY));
        }
        for _ in 0..fraction(churn.move_class) {
            let i = rng.below(next.pupils.len() as u64) as usize;
            let class = next.pupils[i].class;
            next.pupils[i].class = CLASSES
                .iter()
                .find(|c| **c != class)
                .copied()
                .unwrap_or(class);
        }
        for _ in 0..fraction(churn.arrive) {
            let pupil = next.new_pupil(&mut rng);
            next.pupils.push(pupil);
        }
        next.pupils.sort_by_key(|p| p.serial);
        next
    }

    /// Every school this roster's pupils are, or after [`Generated::evolve`] may be, at, as
    /// the site is registered with them (`4601/<skolenummer>=<name>`): what the end-to-end
    /// tests and the quickstart register before an export reaches central, which refuses any
    /// other school.
    pub fn registration(&self) -> Vec<SiteSchool> {
        (0..self.schools)
            .map(|school| {
                let skolenummer = (self.first_school + school).to_string();
                let name = SCHOOL_NAMES[school % SCHOOL_NAMES.len()];
                SiteSchool::new("4601", Some(&skolenummer), None, name)
                    .expect("the generator's schools are valid")
            })
            .collect()
    }

    /// The roster the elevliste of [`Generated::write_elevliste`] holds, built from what was
    /// written, field by field, not by reading the file: end-to-end tests compare central
    /// with this, so a reader bug cannot hide behind an expectation made by the same reader.
    /// The student key is the national id (the file has no student number), the birth date
    /// is the day the id was made for, and schools and classes are those the rows name.
    pub fn truth(&self) -> Roster {
        let mut roster = Roster::default();
        let mut schools = BTreeSet::new();
        let mut groups = BTreeSet::new();
        for p in &self.pupils {
            let skolenummer = (self.first_school + p.school).to_string();
            let class = format!("{}{}", p.grade, p.class);
            let group = format!("{skolenummer}-{class}");
            if schools.insert(skolenummer.clone()) {
                roster.schools.push(School {
                    skolenummer: skolenummer.as_str().into(),
                    organisasjonsnummer: None,
                    kommunenummer: Some("4601".into()),
                    fylkesnummer: Some("46".into()),
                    name: SCHOOL_NAMES[p.school % SCHOOL_NAMES.len()].into(),
                });
            }
            if groups.insert(group.clone()) {
                roster.groups.push(Group {
                    source_key: group.as_str().into(),
                    name: class.as_str().into(),
                    grade: Some(p.grade.to_string().into()),
                    school: skolenummer.as_str().into(),
                    school_year: None,
                });
            }
            let (year, month, day) = p.born;
            roster.students.push(Student {
                source_key: p.national_id.as_str().into(),
                national_id: NationalId::parse(&p.national_id).ok(),
                username: None,
                given_name: p.given.as_str().into(),
                middle_name: (!p.middle.is_empty()).then(|| p.middle.as_str().into()),
                family_name: p.family.as_str().into(),
                birth_date: CivilDate::new(year, month, day),
                gender: if p.male { Gender::Male } else { Gender::Female },
                email: Some(format!("elev{}@skule.example.no", p.serial).into()),
            });
            roster.enrollments.push(Enrollment {
                source_key: format!("{}@{skolenummer}", p.national_id).into(),
                student: p.national_id.as_str().into(),
                school: skolenummer.as_str().into(),
                group: Some(group.as_str().into()),
            });
        }
        roster
    }

    /// Writes the roster as an elevliste (semicolon text, header row, CRLF when `crlf`).
    pub fn write_elevliste(&self, out: &mut impl Write, crlf: bool) -> io::Result<()> {
        let eol = if crlf { "\r\n" } else { "\n" };
        write!(
            out,
            "Fylkesnummer;Kommunenummer;Skolenummer;Skolenavn;Klasse;Trinn;Fødselsnummer;\
             Etternavn;Fornavn;Mellomnavn;Kjønn;E-post{eol}"
        )?;
        for p in &self.pupils {
            let class = format!("{}{}", p.grade, p.class);
            writeln!(
                out,
                "46;4601;{};{};{class};{};{};{};{};{};{};elev{}@skule.example.no{}",
                self.first_school + p.school,
                SCHOOL_NAMES[p.school % SCHOOL_NAMES.len()],
                p.grade,
                p.national_id,
                p.family,
                p.given,
                p.middle,
                if p.male { "M" } else { "K" },
                p.serial,
                if crlf { "\r" } else { "" },
            )?;
        }
        Ok(())
    }
}

/// How many students the repo's sample export (`samples/elevliste.csv`) holds.
pub const SAMPLE_STUDENTS: usize = 300;
/// The seed the repo's samples were written with: `skolebro-rostergen --students 300 --seed
/// 2026 --evolve 1 --out samples/elevliste.csv` (`samples/elevliste.2.csv` is the night
/// after).
pub const SAMPLE_SEED: u64 = 2026;

/// The roster behind the repo's sample export `name` (`elevliste.csv`, or `elevliste.2.csv`,
/// the night after), as the generator made it: tests that deliver a sample expect its
/// [`Generated::truth`], not what a reader makes of the file. `None` for any other name.
pub fn sample(name: &str) -> Option<Generated> {
    let first = Generated::new(SAMPLE_STUDENTS, SAMPLE_SEED);
    match name {
        "elevliste.csv" => Some(first),
        "elevliste.2.csv" => Some(first.evolve(Churn::default(), SAMPLE_SEED + 1)),
        _ => None,
    }
}

const SCHOOL_NAMES: &[&str] = &[
    "Fana skule",
    "Åsane skule",
    "Bjørgvin skule",
    "Sandsli skule",
    "Nordnes skule",
    "Møhlenpris skule",
];

/// A synthetic national id born in `year`: month + 80, individual number in the range for
/// the century, both control digits valid.
pub fn synthetic_id(rng: &mut Rng, year: u16) -> String {
    synthetic_id_born(rng, year).0
}

/// [`synthetic_id`] with the day it was made for, (year, month, day).
fn synthetic_id_born(rng: &mut Rng, year: u16) -> (String, (u16, u8, u8)) {
    loop {
        let month = 1 + rng.below(12) as u8;
        let day = 1 + rng.below(28) as u8;
        let individual = if year >= 2000 {
            500 + rng.below(500)
        } else {
            rng.below(500)
        } as u16;
        let mut digits = [0u8; 11];
        let head = format!("{day:02}{:02}{:02}{individual:03}", month + 80, year % 100);
        for (d, c) in digits.iter_mut().zip(head.bytes()) {
            *d = c - b'0';
        }
        let Some(k1) = control(&digits[..9], &[3, 7, 6, 1, 8, 9, 4, 5, 2]) else {
            continue;
        };
        digits[9] = k1;
        let Some(k2) = control(&digits[..10], &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2]) else {
            continue;
        };
        digits[10] = k2;
        return (
            digits.iter().map(|d| char::from(b'0' + d)).collect(),
            (year, month, day),
        );
    }
}

fn control(digits: &[u8], weights: &[u32]) -> Option<u8> {
    let sum: u32 = digits
        .iter()
        .zip(weights)
        .map(|(&d, w)| u32::from(d) * w)
        .sum();
    match 11 - sum % 11 {
        11 => Some(0),
        10 => None,
        k => Some(k as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skolebro_protocol::NationalId;

    #[test]
    fn generated_ids_are_valid_synthetic_numbers() {
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            let id = NationalId::parse(&synthetic_id(&mut rng, 2015)).unwrap();
            assert!(id.is_synthetic());
        }
    }

    #[test]
    fn the_truth_is_what_the_agent_reads_from_the_written_elevliste() {
        let generated = Generated::new(1200, 5).evolve(Churn::default(), 6);
        let mut bytes = Vec::new();
        generated.write_elevliste(&mut bytes, true).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let read = crate::expected::read_as_agent(scratch.path(), "elevliste.csv", &bytes)
            .unwrap()
            .roster;
        let truth = generated.truth();
        assert_eq!(
            crate::expected::counts_of(&read),
            crate::expected::counts_of(&truth)
        );
        assert!(crate::expected::same(&read, &truth));
    }

    #[test]
    fn the_repos_samples_are_what_the_generator_writes_for_their_seed() {
        let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("samples");
        for name in ["elevliste.csv", "elevliste.2.csv"] {
            let mut written = Vec::new();
            sample(name)
                .unwrap()
                .write_elevliste(&mut written, false)
                .unwrap();
            let on_disk = std::fs::read(samples.join(name)).unwrap();
            assert!(written == on_disk, "samples/{name} is not the generator's");
        }
        assert!(sample("other.csv").is_none());
    }

    #[test]
    fn the_same_seed_gives_the_same_roster() {
        let a = Generated::new(200, 1);
        let b = Generated::new(200, 1);
        assert_eq!(a.pupils, b.pupils);
    }

    #[test]
    fn evolving_changes_what_the_churn_asks_for() {
        let a = Generated::new(1000, 1);
        let b = a.evolve(Churn::default(), 2);
        assert_eq!(b.pupils.len(), 1000);
        let kept = b.pupils.iter().filter(|p| p.serial <= 1000).count();
        assert_eq!(kept, 980);
    }
}
