//! IMS Enterprise 1.1 XML in the Norwegian PIFU-IMS profile: the "IMS-E" file school
//! admin systems send to learning platforms. Like every reader it is the first stage of the
//! pipeline: it streams the export into a [`RosterBuilder`], which validates it on the way
//! to the differ.
//!
//! The file is read with a streaming XML parser, one event at a time. IMS-E lists persons
//! first and memberships last, and only a membership says whether a person is a learner, so
//! the reader keeps the parsed records (not the file's text) until the document ends, then
//! pushes schools, basisgrupper, students and enrollments, in that order. Memory therefore
//! grows with the roster; a single tag or text longer than [`MAX_LINE_BYTES`], nesting deeper
//! than [`MAX_DEPTH`], or a broken document ends the read with a [`ReadError`] that names the
//! line.
//!
//! What the profile says, as read here:
//! - `person`: `sourcedid/id` is the key; `userid useridtype="personNIN"` the national id;
//!   `userid` of type `username`, else a Feide type, the username; `name/n` the names;
//!   `demographics/gender` in IMS coding (1 female, 2 male); `demographics/bday`; `email`.
//!   Only persons with a learner role (`roletype="01"`) in some membership become students.
//! - `group`: scheme `pifu-ims-go-org` typevalue `skole` is a school, `skoleeier` its owner
//!   (which gives the school's kommunenummer when it has one); scheme `pifu-ims-go-grp`
//!   typevalue `basisgruppe` is a class, tied to its school by `relationship relation="1"`.
//!   Other groups (undervisningsgrupper and the like) are not part of the roster.
//! - `membership`: the learners of a basisgruppe become enrollments; membership of the
//!   school group alone gives an enrollment without a class.
//! - `recstatus` 3 (element or attribute) deletes a record: it becomes a tombstone.
//!
//! Elements the profile adds beyond these are skipped without a deviation.

use std::collections::{HashMap, HashSet};
use std::io::{self, BufRead, Read};
use std::path::Path;

use encoding_rs::Encoding;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use skolebro_protocol::national_id::{mask, CivilDate};
use skolebro_protocol::{Enrollment, Entity, Gender, Group, School, Student};

use super::error::{open, ReadError, ReadErrorKind};
use super::format::Format;
use super::stream::{LineTooLong, MAX_LINE_BYTES};
use crate::deviation::{Code, Position, Severity};
use crate::validate::{Admission, Provenance, RosterBuilder, StudentRow};

/// The deepest element nesting accepted. PIFU-IMS needs six levels; a document nested far
/// deeper is broken or hostile, and refusing it keeps the element stack small.
pub const MAX_DEPTH: usize = 64;

/// Reads an IMS Enterprise export into the builder.
pub fn read(path: &Path, builder: &mut RosterBuilder) -> Result<(), ReadError> {
    read_from(path, open(path)?, builder)
}

/// Reads an IMS Enterprise export from any byte stream; `path` names it in errors and
/// deviations. Nothing reaches the builder unless the whole document parses, so a truncated
/// file cannot pass for a roster that lost its last students.
pub fn read_from<R: Read>(
    path: &Path,
    input: R,
    builder: &mut RosterBuilder,
) -> Result<(), ReadError> {
    let export = Parser::new(path, input).parse()?;
    builder.begin_file(&path.display().to_string());
    export.emit(builder);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Input: a buffered stream that counts lines and bounds each event.

/// A buffered reader that counts the newlines the XML parser has consumed, so an event can
/// be given a line, and refuses to let a single event (tag, text, comment) run past
/// [`MAX_LINE_BYTES`] before the parser has buffered it whole.
struct Counted<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    filled: usize,
    newlines: u64,
    /// Bytes consumed since the last event ended.
    run: usize,
    too_long: bool,
}

impl<R: Read> Counted<R> {
    fn new(inner: R) -> Counted<R> {
        Counted {
            inner,
            buf: vec![0; 64 * 1024].into_boxed_slice(),
            pos: 0,
            filled: 0,
            newlines: 0,
            run: 0,
            too_long: false,
        }
    }

    /// The 1-based line of the next byte to be consumed.
    fn line(&self) -> u64 {
        self.newlines + 1
    }

    /// Called after each event: the next event starts a new run.
    fn event_done(&mut self) {
        self.run = 0;
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: Read> BufRead for Counted<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.too_long {
            return Err(io::Error::new(io::ErrorKind::InvalidData, LineTooLong));
        }
        if self.pos >= self.filled {
            self.pos = 0;
            self.filled = 0;
            self.filled = loop {
                match self.inner.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
        }
        Ok(&self.buf[self.pos..self.filled])
    }

    fn consume(&mut self, amt: usize) {
        let end = (self.pos + amt).min(self.filled);
        let consumed = &self.buf[self.pos..end];
        self.newlines += consumed.iter().filter(|&&b| b == b'\n').count() as u64;
        self.run += consumed.len();
        if self.run > MAX_LINE_BYTES {
            self.too_long = true;
        }
        self.pos = end;
    }
}

// ---------------------------------------------------------------------------------------
// Records as the file states them, before validation.

#[derive(Debug, Default)]
struct PersonRec {
    line: u64,
    key: Option<String>,
    deleted: bool,
    national_id: Option<String>,
    /// The best username so far and its rank (lower is better).
    username: Option<(u8, String)>,
    given: Option<String>,
    middle: Option<String>,
    family: Option<String>,
    gender: Option<String>,
    bday: Option<String>,
    email: Option<String>,
}

#[derive(Debug, Default)]
struct GroupRec {
    line: u64,
    key: Option<String>,
    deleted: bool,
    /// `(scheme, typevalues)` per `grouptype`.
    types: Vec<(Option<String>, Vec<String>)>,
    scheme: Option<String>,
    typevalues: Vec<String>,
    short: Option<String>,
    long: Option<String>,
    full: Option<String>,
    org_id: Option<String>,
    school_number: Option<String>,
    grade: Option<String>,
    begin: Option<String>,
    end: Option<String>,
    /// `(relation, id)` per `relationship`.
    relationships: Vec<(Option<String>, Option<String>)>,
    relationship_id: Option<String>,
}

#[derive(Debug, Default)]
struct MembershipRec {
    line: u64,
    group: Option<String>,
    deleted: bool,
    members: Vec<MemberRec>,
}

#[derive(Debug, Default)]
struct MemberRec {
    line: u64,
    person: Option<String>,
    idtype: Option<String>,
    deleted: bool,
    /// Learner roles: whether each is deleted or inactive.
    learner_roles: Vec<bool>,
    role_status: Option<String>,
    role_deleted: bool,
}

impl MemberRec {
    fn is_person(&self) -> bool {
        self.idtype.as_deref().is_none_or(|t| t == "1")
    }

    /// A current learner: some learner role is active and not deleted.
    fn is_learner(&self, membership_deleted: bool) -> bool {
        self.is_person()
            && !self.deleted
            && !membership_deleted
            && self.learner_roles.iter().any(|&gone| !gone)
    }

    /// A learner whose membership the export deletes.
    fn is_deleted_learner(&self, membership_deleted: bool) -> bool {
        self.is_person() && !self.learner_roles.is_empty() && !self.is_learner(membership_deleted)
    }
}

enum Current {
    Nothing,
    Person(PersonRec),
    Group(GroupRec),
    Membership(MembershipRec, Option<MemberRec>),
}

#[derive(Default)]
struct Export {
    partial: bool,
    persons: Vec<PersonRec>,
    groups: Vec<GroupRec>,
    memberships: Vec<MembershipRec>,
}

// ---------------------------------------------------------------------------------------
// Parsing: the event loop.

/// One open element: its local name and the attributes the profile gives meaning to.
struct Frame {
    name: Box<[u8]>,
    /// `useridtype`, `partnametype`, `relation` or `roletype`, by element.
    kind: Option<String>,
    /// `recstatus` 3 as an attribute.
    deleted: bool,
}

struct Parser<'p, R> {
    path: &'p Path,
    reader: Reader<Counted<R>>,
    encoding: &'static Encoding,
    stack: Vec<Frame>,
    text: String,
    root_seen: bool,
    root_closed: bool,
    current: Current,
    export: Export,
}

/// Turns a text value into an owned, trimmed value, `None` when blank.
fn value(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn is_delete(status: Option<&str>) -> bool {
    status.is_some_and(|s| s.trim() == "3")
}

impl<'p, R: Read> Parser<'p, R> {
    fn new(path: &'p Path, input: R) -> Parser<'p, R> {
        let mut reader = Reader::from_reader(Counted::new(input));
        let config = reader.config_mut();
        config.trim_text(true);
        config.check_end_names = true;
        Parser {
            path,
            reader,
            encoding: encoding_rs::UTF_8,
            stack: Vec::new(),
            text: String::new(),
            root_seen: false,
            root_closed: false,
            current: Current::Nothing,
            export: Export::default(),
        }
    }

    fn line(&self) -> u64 {
        self.reader.get_ref().line()
    }

    fn syntax(&self, line: u64, reason: impl Into<String>) -> ReadError {
        ReadError::new(
            self.path,
            ReadErrorKind::Syntax {
                format: Format::ImsEnterprise,
                reason: reason.into(),
            },
        )
        .at_line(line)
    }

    fn parse(mut self) -> Result<Export, ReadError> {
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let event = match self.reader.read_event_into(&mut buf) {
                Ok(event) => event,
                Err(error) => return Err(self.parse_error(error)),
            };
            let line_after = self.line();
            if self.reader.get_ref().too_long {
                return Err(self.too_long(line_after));
            }
            self.reader.get_mut().event_done();
            match event {
                Event::Start(start) => {
                    let line = line_after.saturating_sub(newlines(&start));
                    self.open(&start, line)?;
                }
                Event::Empty(start) => {
                    let line = line_after.saturating_sub(newlines(&start));
                    self.open(&start, line)?;
                    self.close(line)?;
                }
                Event::End(_) => self.close(line_after)?,
                Event::Text(text) => {
                    let text = self.decode(&text, line_after)?;
                    self.push_text(&text, line_after)?;
                }
                Event::CData(data) => {
                    let text = self.decode(&data, line_after)?;
                    self.push_text(&text, line_after)?;
                }
                Event::GeneralRef(reference) => {
                    let name = self.decode(&reference, line_after)?;
                    let resolved = match reference.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        Ok(None) => match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => s.to_owned(),
                            None => {
                                return Err(self.syntax(
                                    line_after,
                                    format!("unknown entity `&{}`", shorten(&name)),
                                ))
                            }
                        },
                        Err(error) => return Err(self.syntax(line_after, error.to_string())),
                    };
                    self.push_text(&resolved, line_after)?;
                }
                Event::Decl(decl) => self.declaration(&decl, line_after)?,
                Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
                Event::Eof => break,
            }
        }
        let line = self.line();
        if !self.root_seen {
            return Err(self.syntax(
                line,
                "no <enterprise> element: the file is empty or not XML",
            ));
        }
        if let Some(open) = self.stack.last() {
            let reason = format!(
                "the document ends inside <{}>: it is truncated",
                String::from_utf8_lossy(&open.name)
            );
            return Err(self.syntax(line, reason));
        }
        Ok(self.export)
    }

    /// A single event ran past the limit: refused before it fills memory.
    fn too_long(&self, line: u64) -> ReadError {
        self.syntax(
            line,
            format!("a tag or text is longer than {MAX_LINE_BYTES} bytes"),
        )
    }

    fn parse_error(&self, error: quick_xml::Error) -> ReadError {
        let line = self.line();
        if self.reader.get_ref().too_long {
            return self.too_long(line);
        }
        match error {
            quick_xml::Error::Io(io) => {
                let io = io::Error::new(io.kind(), io.to_string());
                ReadError::new(self.path, ReadErrorKind::Io(io)).at_line(line)
            }
            other => self.syntax(line, other.to_string()),
        }
    }

    /// Honours a declared ASCII-compatible encoding (SAS exports in ISO-8859-1 or
    /// Windows-1252 exist); unknown labels are refused rather than guessed at.
    fn declaration(
        &mut self,
        decl: &quick_xml::events::BytesDecl<'_>,
        line: u64,
    ) -> Result<(), ReadError> {
        let Some(label) = decl.encoding() else {
            return Ok(());
        };
        let label = label.map_err(|e| self.syntax(line, e.to_string()))?;
        match Encoding::for_label(&label) {
            Some(encoding) if encoding.is_ascii_compatible() => {
                self.encoding = encoding;
                Ok(())
            }
            // A declaration readable byte by byte is not UTF-16: serializers that build the
            // text in memory label it so and then write UTF-8, which is what is read.
            Some(encoding)
                if encoding == encoding_rs::UTF_16LE || encoding == encoding_rs::UTF_16BE =>
            {
                Ok(())
            }
            _ => Err(self.syntax(
                line,
                format!(
                    "unsupported encoding `{}`",
                    shorten(&String::from_utf8_lossy(&label))
                ),
            )),
        }
    }

    fn decode(&self, bytes: &[u8], line: u64) -> Result<String, ReadError> {
        if self.encoding == encoding_rs::UTF_8 {
            return std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| self.syntax(line, "invalid UTF-8"));
        }
        self.encoding
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|s| s.into_owned())
            .ok_or_else(|| self.syntax(line, format!("invalid {}", self.encoding.name())))
    }

    fn push_text(&mut self, text: &str, line: u64) -> Result<(), ReadError> {
        if self.stack.is_empty() {
            if text.trim().is_empty() {
                return Ok(());
            }
            return Err(self.syntax(line, "text outside the <enterprise> element"));
        }
        if self.text.len() + text.len() > MAX_LINE_BYTES {
            return Err(self.too_long(line));
        }
        // Only the content of records and properties is kept; text between them is
        // checked and dropped.
        if self.stack.len() > 2 {
            self.text.push_str(text);
        }
        Ok(())
    }

    fn in_properties(&self) -> bool {
        self.stack.get(1).is_some_and(|f| &*f.name == b"properties")
    }

    fn open(&mut self, start: &BytesStart<'_>, line: u64) -> Result<(), ReadError> {
        let name = start.local_name();
        let name = name.as_ref();
        if self.encoding == encoding_rs::UTF_8 && std::str::from_utf8(name).is_err() {
            return Err(self.syntax(line, "invalid UTF-8 in an element name"));
        }
        if self.stack.is_empty() {
            if self.root_closed {
                return Err(self.syntax(line, "a second root element after </enterprise>"));
            }
            if name != b"enterprise" {
                let reason = format!(
                    "the root element is <{}>, not <enterprise>",
                    shorten(&String::from_utf8_lossy(name))
                );
                return Err(self.syntax(line, reason));
            }
            self.root_seen = true;
        }
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.syntax(line, format!("elements nested deeper than {MAX_DEPTH}")));
        }

        let wanted: &[u8] = match name {
            b"userid" => b"useridtype",
            b"partname" => b"partnametype",
            b"relationship" => b"relation",
            b"role" => b"roletype",
            _ => b"",
        };
        let mut frame = Frame {
            name: name.into(),
            kind: None,
            deleted: false,
        };
        for attribute in start.attributes() {
            let attribute = attribute.map_err(|e| self.syntax(line, e.to_string()))?;
            let key = attribute.key.local_name();
            let key = key.as_ref();
            if key != wanted && key != b"recstatus" {
                continue;
            }
            let raw = self.decode(&attribute.value, line)?;
            let unescaped =
                quick_xml::escape::unescape(&raw).map_err(|e| self.syntax(line, e.to_string()))?;
            if key == b"recstatus" {
                frame.deleted = is_delete(Some(&unescaped));
            } else {
                frame.kind = value(&unescaped);
            }
        }
        self.text.clear();
        let deleted = frame.deleted;
        self.stack.push(frame);

        if self.stack.len() == 2 {
            self.current = match name {
                b"person" => Current::Person(PersonRec {
                    line,
                    deleted,
                    ..PersonRec::default()
                }),
                b"group" => Current::Group(GroupRec {
                    line,
                    deleted,
                    ..GroupRec::default()
                }),
                b"membership" => Current::Membership(
                    MembershipRec {
                        line,
                        deleted,
                        ..MembershipRec::default()
                    },
                    None,
                ),
                _ => Current::Nothing,
            };
        } else if let Current::Membership(_, member) = &mut self.current {
            if self.stack.len() == 3 && name == b"member" {
                *member = Some(MemberRec {
                    line,
                    deleted,
                    ..MemberRec::default()
                });
            }
        }
        Ok(())
    }

    fn close(&mut self, line: u64) -> Result<(), ReadError> {
        let Some(frame) = self.stack.last() else {
            return Err(self.syntax(line, "a closing tag without an opening one"));
        };
        let text = value(&std::mem::take(&mut self.text));
        let names: Vec<&[u8]> = self.stack.iter().skip(2).map(|f| &*f.name).collect();
        let kind = frame.kind.clone();
        let deleted = frame.deleted;
        match self.stack.len() {
            0 | 1 => {}
            2 => {
                let record = std::mem::replace(&mut self.current, Current::Nothing);
                match record {
                    Current::Person(p) => self.export.persons.push(p),
                    Current::Group(g) => self.export.groups.push(g),
                    Current::Membership(m, _) => self.export.memberships.push(m),
                    Current::Nothing => {}
                }
            }
            _ => {
                if self.in_properties() && names.as_slice() == [b"type" as &[u8]] {
                    let kind = text.as_deref().unwrap_or("").to_ascii_lowercase();
                    self.export.partial = ["delta", "incremental", "change", "update"]
                        .iter()
                        .any(|w| kind.contains(w));
                }
                match &mut self.current {
                    Current::Person(p) => person_field(p, &names, kind, text),
                    Current::Group(g) => group_field(g, &names, kind, text),
                    Current::Membership(m, member) => {
                        membership_field(m, member, &names, kind, text, deleted)
                    }
                    Current::Nothing => {}
                }
            }
        }
        self.stack.pop();
        if self.stack.is_empty() {
            self.root_closed = true;
        }
        Ok(())
    }
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// At most 40 characters of a value for an error message.
fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

fn set_first(slot: &mut Option<String>, text: Option<String>) {
    if slot.is_none() {
        *slot = text;
    }
}

/// The rank of a `useridtype` as a username: `username` first, then a Feide name.
fn username_rank(kind: &str) -> Option<u8> {
    let kind = kind.to_ascii_lowercase();
    if kind == "username" {
        Some(0)
    } else if kind.contains("feide") {
        Some(1)
    } else {
        None
    }
}

fn person_field(p: &mut PersonRec, path: &[&[u8]], kind: Option<String>, text: Option<String>) {
    match path {
        [b"sourcedid", b"id"] => set_first(&mut p.key, text),
        [b"userid"] => {
            let Some(kind) = kind else { return };
            if kind.eq_ignore_ascii_case("personNIN") {
                set_first(&mut p.national_id, text);
            } else if let (Some(rank), Some(text)) = (username_rank(&kind), text) {
                if p.username.as_ref().is_none_or(|(best, _)| rank < *best) {
                    p.username = Some((rank, text));
                }
            }
        }
        [b"name", b"n", b"family"] => set_first(&mut p.family, text),
        [b"name", b"n", b"given"] => set_first(&mut p.given, text),
        [b"name", b"n", b"partname"]
            if kind.is_some_and(|k| k.eq_ignore_ascii_case("middlename")) =>
        {
            set_first(&mut p.middle, text)
        }
        [b"demographics", b"gender"] => set_first(&mut p.gender, text),
        [b"demographics", b"bday"] => set_first(&mut p.bday, text),
        [b"email"] => set_first(&mut p.email, text),
        [b"recstatus"] => p.deleted |= is_delete(text.as_deref()),
        _ => {}
    }
}

fn group_field(g: &mut GroupRec, path: &[&[u8]], kind: Option<String>, text: Option<String>) {
    match path {
        [b"sourcedid", b"id"] => set_first(&mut g.key, text),
        [b"grouptype", b"scheme"] => g.scheme = text,
        [b"grouptype", b"typevalue"] => g.typevalues.extend(text),
        [b"grouptype"] => {
            let scheme = g.scheme.take();
            let values = std::mem::take(&mut g.typevalues);
            g.types.push((scheme, values));
        }
        [b"description", b"short"] => set_first(&mut g.short, text),
        [b"description", b"long"] => set_first(&mut g.long, text),
        [b"description", b"full"] => set_first(&mut g.full, text),
        [b"org", b"id"] => set_first(&mut g.org_id, text),
        [b"timeframe", b"begin"] => set_first(&mut g.begin, text),
        [b"timeframe", b"end"] => set_first(&mut g.end, text),
        [b"relationship", b"sourcedid", b"id"] => set_first(&mut g.relationship_id, text),
        [b"relationship"] => {
            let id = g.relationship_id.take();
            g.relationships.push((kind, id));
        }
        [b"recstatus"] => g.deleted |= is_delete(text.as_deref()),
        [b"extension", .., last] if last.eq_ignore_ascii_case(b"skolenummer") => {
            set_first(&mut g.school_number, text)
        }
        [.., last]
            if [&b"grade"[..], b"trinn", b"aarstrinn", b"klassetrinn"]
                .iter()
                .any(|n| last.eq_ignore_ascii_case(n)) =>
        {
            set_first(&mut g.grade, text)
        }
        _ => {}
    }
}

fn membership_field(
    m: &mut MembershipRec,
    member: &mut Option<MemberRec>,
    path: &[&[u8]],
    kind: Option<String>,
    text: Option<String>,
    deleted: bool,
) {
    match path {
        [b"sourcedid", b"id"] => set_first(&mut m.group, text),
        [b"recstatus"] => m.deleted |= is_delete(text.as_deref()),
        [b"member", rest @ ..] => {
            let Some(current) = member.as_mut() else {
                return;
            };
            match rest {
                [] => {
                    if let Some(done) = member.take() {
                        m.members.push(done);
                    }
                }
                [b"sourcedid", b"id"] => set_first(&mut current.person, text),
                [b"idtype"] => set_first(&mut current.idtype, text),
                [b"recstatus"] => current.deleted |= is_delete(text.as_deref()),
                [b"role", b"status"] => current.role_status = text,
                [b"role", b"recstatus"] => current.role_deleted |= is_delete(text.as_deref()),
                [b"role"] => {
                    let learner = kind
                        .as_deref()
                        .is_some_and(|k| k.trim_start_matches('0') == "1");
                    let inactive = current.role_status.take().is_some_and(|s| s == "0");
                    let gone = deleted || std::mem::take(&mut current.role_deleted) || inactive;
                    if learner {
                        current.learner_roles.push(gone);
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------
// Emitting: from file records to roster records.

/// What a group id stands for, once all groups are known.
#[derive(Debug, Clone)]
enum GroupKind {
    /// A school, with its skolenummer.
    School(String),
    /// A basisgruppe, with its school's skolenummer.
    Basis(String),
    /// Known but not a roster record (owner, undervisningsgruppe, deleted, unusable).
    Other,
}

fn has_type(g: &GroupRec, scheme: &str, typevalue: &str) -> bool {
    g.types.iter().any(|(s, values)| {
        s.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(scheme))
            && values.iter().any(|v| v.eq_ignore_ascii_case(typevalue))
    })
}

/// The parent named by `relationship relation="1"`.
fn parent(g: &GroupRec) -> Option<&str> {
    g.relationships
        .iter()
        .filter(|(relation, _)| relation.as_deref().is_none_or(|r| r == "1"))
        .find_map(|(_, id)| id.as_deref())
}

/// A 9-digit organisation number, as NSR has it, with or without `NO` and `MVA`.
fn organisasjonsnummer(id: &str) -> Option<String> {
    let digits: String = id.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = digits.strip_prefix("NO").unwrap_or(&digits);
    let digits = digits.strip_suffix("MVA").unwrap_or(digits);
    (digits.len() == 9 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.to_owned())
}

/// The kommunenummer (4 digits) or fylkesnummer (2 digits) a school owner states in its
/// short description or at the end of its id (`kommune-4601`).
fn owner_numbers(g: &GroupRec) -> (Option<String>, Option<String>) {
    let digits = |s: &str| -> Option<String> {
        let tail: String = s.chars().rev().take_while(char::is_ascii_digit).collect();
        let tail: String = tail.chars().rev().collect();
        matches!(tail.len(), 2 | 4).then_some(tail)
    };
    let number = g
        .short
        .as_deref()
        .filter(|s| s.chars().all(|c| c.is_ascii_digit()))
        .and_then(digits)
        .or_else(|| g.key.as_deref().and_then(digits));
    match number {
        Some(n) if n.len() == 4 => (Some(n.clone()), Some(n[..2].to_owned())),
        Some(n) => (None, Some(n)),
        None => (None, None),
    }
}

/// The school year a `timeframe` spans, as `2025/2026` (one year when it does not span two).
fn school_year(g: &GroupRec) -> Option<String> {
    let year = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| s.get(..4))
            .filter(|y| y.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
    };
    match (year(&g.begin), year(&g.end)) {
        (Some(b), Some(e)) if b != e => Some(format!("{b}/{e}")),
        (Some(b), _) => Some(b),
        (None, e) => e,
    }
}

/// IMS coding, not ISO 5218: 1 is female, 2 male, anything else unknown.
fn gender(value: Option<&str>) -> Gender {
    match value.map(str::trim) {
        Some("1") => Gender::Female,
        Some("2") => Gender::Male,
        _ => Gender::Unknown,
    }
}

impl Export {
    fn emit(self, builder: &mut RosterBuilder) {
        if self.partial {
            builder.set_partial();
        }
        let kinds = self.emit_groups(builder);

        // A person is a student when some membership gives it a current learner role.
        let learners: HashSet<&str> = self
            .memberships
            .iter()
            .flat_map(|m| {
                m.members
                    .iter()
                    .filter(move |x| x.is_learner(m.deleted))
                    .filter_map(|x| x.person.as_deref())
            })
            .collect();

        let mut in_file: HashSet<&str> = HashSet::new();
        let mut accepted: HashSet<&str> = HashSet::new();
        for person in &self.persons {
            let at = Position::Line(person.line);
            let Some(key) = person.key.as_deref() else {
                builder.deviation(
                    at,
                    Code::MissingRequired,
                    Severity::Error,
                    "person without sourcedid/id; it is left out".to_owned(),
                );
                continue;
            };
            in_file.insert(key);
            if person.deleted {
                builder.tombstone(Entity::Student, key.to_owned());
                continue;
            }
            if !learners.contains(key) {
                continue;
            }
            let mut name = |field: Option<&String>, what: &str| {
                field.cloned().unwrap_or_else(|| {
                    let detail = format!("person {}: {what} is missing", mask(key));
                    builder.deviation(at, Code::MissingRequired, Severity::Error, detail);
                    String::new()
                })
            };
            let given_name = name(person.given.as_ref(), "name/n/given");
            let family_name = name(person.family.as_ref(), "name/n/family");
            let student = Student {
                source_key: key.to_owned().into(),
                national_id: None,
                username: person
                    .username
                    .as_ref()
                    .map(|(_, u)| u.clone())
                    .map(Into::into),
                given_name: given_name.into(),
                middle_name: person.middle.clone().map(Into::into),
                family_name: family_name.into(),
                birth_date: person.bday.as_deref().and_then(CivilDate::parse_iso),
                gender: gender(person.gender.as_deref()),
                email: person.email.clone().map(Into::into),
            };
            let row = StudentRow {
                student,
                national_id: person.national_id.clone().map(Into::into),
                key_is_national_id: false,
            };
            if builder.student(at, row) == Admission::Accepted {
                accepted.insert(key);
            }
        }

        self.emit_enrollments(builder, &kinds, &in_file, &accepted);
    }

    /// Pushes schools and basisgrupper; returns what each group id stands for.
    fn emit_groups(&self, builder: &mut RosterBuilder) -> HashMap<String, GroupKind> {
        let mut kinds: HashMap<String, GroupKind> = HashMap::new();
        let mut owners: HashMap<&str, &GroupRec> = HashMap::new();
        for group in &self.groups {
            let Some(key) = group.key.as_deref() else {
                builder.deviation(
                    Position::Line(group.line),
                    Code::MissingRequired,
                    Severity::Error,
                    "group without sourcedid/id; it is left out".to_owned(),
                );
                continue;
            };
            let kind = if group.deleted {
                if has_type(group, "pifu-ims-go-org", "skole") {
                    let skolenummer = group
                        .school_number
                        .clone()
                        .unwrap_or_else(|| key.to_owned());
                    builder.tombstone(Entity::School, skolenummer);
                } else if has_type(group, "pifu-ims-go-grp", "basisgruppe") {
                    builder.tombstone(Entity::Group, key.to_owned());
                }
                GroupKind::Other
            } else if has_type(group, "pifu-ims-go-org", "skole") {
                let explicit = group.school_number.clone().or_else(|| {
                    group
                        .org_id
                        .clone()
                        .filter(|id| organisasjonsnummer(id).is_none())
                });
                GroupKind::School(explicit.unwrap_or_else(|| key.to_owned()))
            } else if has_type(group, "pifu-ims-go-grp", "basisgruppe") {
                GroupKind::Basis(String::new())
            } else {
                if has_type(group, "pifu-ims-go-org", "skoleeier") {
                    owners.entry(key).or_insert(group);
                }
                GroupKind::Other
            };
            kinds.entry(key.to_owned()).or_insert(kind);
        }

        // Schools first, so that basisgrupper can name their skolenummer.
        for group in &self.groups {
            let Some(key) = group.key.as_deref() else {
                continue;
            };
            if group.deleted || !has_type(group, "pifu-ims-go-org", "skole") {
                continue;
            }
            let Some(GroupKind::School(skolenummer)) = kinds.get(key) else {
                continue;
            };
            let (kommunenummer, fylkesnummer) = parent(group)
                .and_then(|p| owners.get(p))
                .map(|owner| owner_numbers(owner))
                .unwrap_or((None, None));
            let school = School {
                skolenummer: skolenummer.clone().into(),
                organisasjonsnummer: group
                    .org_id
                    .as_deref()
                    .and_then(organisasjonsnummer)
                    .map(Into::into),
                kommunenummer: kommunenummer.map(Into::into),
                fylkesnummer: fylkesnummer.map(Into::into),
                name: group
                    .long
                    .clone()
                    .or_else(|| group.full.clone())
                    .or_else(|| group.short.clone())
                    .unwrap_or_else(|| skolenummer.clone())
                    .into(),
            };
            builder.school(Position::Line(group.line), school, Provenance::Stated);
        }

        for group in &self.groups {
            let Some(key) = group.key.as_deref() else {
                continue;
            };
            if !matches!(kinds.get(key), Some(GroupKind::Basis(_))) || group.deleted {
                continue;
            }
            if !has_type(group, "pifu-ims-go-grp", "basisgruppe") {
                continue;
            }
            let at = Position::Line(group.line);
            let Some(parent) = parent(group) else {
                let detail = format!(
                    "basisgruppe {key} names no school (relationship relation=\"1\"); it is left out"
                );
                builder.deviation(at, Code::MissingRequired, Severity::Error, detail);
                kinds.insert(key.to_owned(), GroupKind::Other);
                continue;
            };
            // An unknown parent is kept as named, so validation reports the dangling school.
            let school = match kinds.get(parent) {
                Some(GroupKind::School(skolenummer)) => skolenummer.clone(),
                _ => parent.to_owned(),
            };
            let record = Group {
                source_key: key.to_owned().into(),
                name: group
                    .short
                    .clone()
                    .or_else(|| group.long.clone())
                    .unwrap_or_else(|| key.to_owned())
                    .into(),
                grade: group.grade.clone().map(Into::into),
                school: school.clone().into(),
                school_year: school_year(group).map(Into::into),
            };
            builder.group(at, record, Provenance::Stated);
            if let Some(GroupKind::Basis(s)) = kinds.get_mut(key) {
                if s.is_empty() {
                    *s = school;
                }
            }
        }
        kinds
    }

    fn emit_enrollments(
        &self,
        builder: &mut RosterBuilder,
        kinds: &HashMap<String, GroupKind>,
        in_file: &HashSet<&str>,
        accepted: &HashSet<&str>,
    ) {
        // Where a learner has a basisgruppe, membership of the school adds nothing.
        let mut in_class: HashSet<(&str, &str)> = HashSet::new();
        for m in &self.memberships {
            let Some(GroupKind::Basis(school)) = m.group.as_deref().and_then(|g| kinds.get(g))
            else {
                continue;
            };
            for member in m.members.iter().filter(|x| x.is_learner(m.deleted)) {
                if let Some(person) = member.person.as_deref() {
                    in_class.insert((person, school.as_str()));
                }
            }
        }

        let mut pushed: HashSet<String> = HashSet::new();
        let mut removed: Vec<String> = Vec::new();
        for m in &self.memberships {
            let Some(group) = m.group.as_deref() else {
                builder.deviation(
                    Position::Line(m.line),
                    Code::MissingRequired,
                    Severity::Error,
                    "membership without sourcedid/id of its group; it is left out".to_owned(),
                );
                continue;
            };
            let kind = kinds.get(group);
            for member in m.members.iter().filter(|x| x.is_person()) {
                let at = Position::Line(member.line);
                let learner = member.is_learner(m.deleted);
                if !learner && !member.is_deleted_learner(m.deleted) {
                    continue;
                }
                let Some(person) = member.person.as_deref() else {
                    let detail =
                        format!("member of group {group} without sourcedid/id; it is left out");
                    builder.deviation(at, Code::MissingRequired, Severity::Error, detail);
                    continue;
                };
                let (school, class) = match kind {
                    Some(GroupKind::Basis(school)) => (school, Some(group.to_owned())),
                    Some(GroupKind::School(school)) => {
                        if in_class.contains(&(person, school.as_str())) {
                            continue;
                        }
                        (school, None)
                    }
                    Some(GroupKind::Other) => continue,
                    None => {
                        if learner {
                            let detail = format!(
                                "membership names group {group} that the export does not contain"
                            );
                            builder.deviation(at, Code::DanglingReference, Severity::Error, detail);
                        }
                        continue;
                    }
                };
                let key = format!("{person}@{school}");
                if !learner {
                    removed.push(key);
                    continue;
                }
                // A person the export holds but validation refused takes its memberships
                // along; an unknown person is pushed so validation reports it.
                if in_file.contains(person) && !accepted.contains(person) {
                    continue;
                }
                pushed.insert(key.clone());
                builder.enrollment(
                    at,
                    Enrollment {
                        source_key: key.into(),
                        student: person.to_owned().into(),
                        school: school.clone().into(),
                        group: class.map(Into::into),
                    },
                );
            }
        }

        // A deleted membership deletes the enrollment unless the learner still has one at
        // that school (a class move is a delete of the old class and an add of the new).
        let mut seen = HashSet::new();
        for key in removed {
            if !pushed.contains(&key) && seen.insert(key.clone()) {
                builder.tombstone(Entity::Enrollment, key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use crate::validate::Validated;

    const CLEAN: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/clean/ims-enterprise.xml"
    );
    const CLEAN_V2: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/clean/v2/ims-enterprise.xml"
    );
    const FAULTY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/testdata/faulty/ims-enterprise.xml"
    );

    fn read_path(path: &Path) -> Result<Validated, ReadError> {
        let mut builder = RosterBuilder::new(Default::default());
        read(path, &mut builder)?;
        Ok(builder.finish())
    }

    fn read_text(text: &str) -> Result<Validated, ReadError> {
        let mut builder = RosterBuilder::new(Default::default());
        read_from(Path::new("inline.xml"), text.as_bytes(), &mut builder)?;
        Ok(builder.finish())
    }

    fn codes(validated: &Validated) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for d in &validated.deviations {
            *counts.entry(d.code.as_str()).or_default() += 1;
        }
        counts
    }

    fn syntax_reason(result: Result<Validated, ReadError>) -> (Option<u64>, String) {
        match result {
            Err(ReadError {
                line,
                kind:
                    ReadErrorKind::Syntax {
                        format: Format::ImsEnterprise,
                        reason,
                    },
                ..
            }) => (line, reason),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn the_clean_export_yields_the_roster_truth_json_describes() {
        let v = read_path(Path::new(CLEAN)).unwrap();
        assert_eq!(v.roster.students.len(), 60);
        assert_eq!(v.roster.schools.len(), 1);
        assert_eq!(v.roster.groups.len(), 25);
        assert_eq!(v.roster.enrollments.len(), 60);
        assert!(v.deviations.is_empty(), "{:?}", v.deviations);
        assert!(v.tombstones.is_empty());
        assert!(!v.partial);
    }

    #[test]
    fn the_clean_export_maps_schools_classes_and_people_as_the_profile_says() {
        let v = read_path(Path::new(CLEAN)).unwrap();
        let school = &v.roster.schools[0];
        assert_eq!(school.skolenummer, "46505");
        assert_eq!(school.name, "Fana skule");
        assert_eq!(school.kommunenummer.as_deref(), Some("4601"));
        assert_eq!(school.fylkesnummer.as_deref(), Some("46"));
        let class = v
            .roster
            .groups
            .iter()
            .find(|g| g.source_key == "46505-3C")
            .unwrap();
        assert_eq!(class.name, "3C");
        assert_eq!(class.school, "46505");

        let first = &v.roster.students[0];
        assert_eq!(first.source_key, "46505-elev-000001");
        assert_eq!(first.username.as_deref(), Some("elev1"));
        assert_eq!(first.family_name, "Nilsen");
        assert_eq!(first.given_name, "Oskar");
        assert_eq!(first.middle_name.as_deref(), Some("Kristian"));
        assert_eq!(first.gender, Gender::Male);
        assert!(first.national_id.is_some());
        assert!(first.birth_date.is_some());
        let enrollment = v
            .roster
            .enrollments
            .iter()
            .find(|e| e.student == "46505-elev-000001")
            .unwrap();
        assert_eq!(enrollment.source_key, "46505-elev-000001@46505");
        assert_eq!(enrollment.group.as_deref(), Some("46505-3C"));
    }

    #[test]
    fn the_next_clean_export_reads_without_deviations() {
        let v = read_path(Path::new(CLEAN_V2)).unwrap();
        assert!(v.deviations.is_empty(), "{:?}", v.deviations);
        assert_eq!(v.roster.students.len(), v.roster.enrollments.len());
        assert_eq!(v.roster.schools.len(), 1);
    }

    #[test]
    fn the_faulty_export_yields_the_distinct_people_and_reports_each_fault() {
        let v = read_path(Path::new(FAULTY)).unwrap();
        assert_eq!(v.roster.students.len(), 80);
        assert_eq!(v.roster.schools.len(), 1);
        assert_eq!(v.roster.groups.len(), 28);
        assert_eq!(v.roster.enrollments.len(), 80);
        let counts = codes(&v);
        assert_eq!(counts.get("invalid_national_id"), Some(&4), "{counts:?}");
        assert_eq!(counts.get("duplicate_national_id"), Some(&1), "{counts:?}");
        assert!(
            counts.get("duplicate_record").is_some_and(|&n| n >= 1),
            "{counts:?}"
        );
        let others: Vec<_> = v
            .deviations
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .filter(|d| !matches!(d.code, Code::InvalidNationalId | Code::DuplicateNationalId))
            .collect();
        assert!(others.is_empty(), "{others:?}");
    }

    #[test]
    fn deviations_point_at_the_line_of_the_record_and_never_show_an_id_in_clear() {
        let v = read_path(Path::new(FAULTY)).unwrap();
        let text = std::fs::read_to_string(FAULTY).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for d in &v.deviations {
            let Position::Line(n) = d.position else {
                panic!("IMS deviations have lines: {d:?}");
            };
            let line = lines[(n - 1) as usize].trim_start();
            assert!(
                line.starts_with("<person>") || line.starts_with("<member>"),
                "{d:?} points at {line:?}"
            );
            assert!(!has_eleven_digits(&d.detail), "{d:?}");
        }
    }

    fn has_eleven_digits(s: &str) -> bool {
        let mut run = 0;
        for c in s.chars() {
            run = if c.is_ascii_digit() { run + 1 } else { 0 };
            if run >= 11 {
                return true;
            }
        }
        false
    }

    const SMALL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<enterprise>
  <properties><datasource>sas</datasource><type>full</type></properties>
  <group><sourcedid><id>eier</id></sourcedid><grouptype><scheme>pifu-ims-go-org</scheme><typevalue>skoleeier</typevalue></grouptype><description><short>4601</short></description></group>
  <group><sourcedid><id>S1</id></sourcedid><grouptype><scheme>pifu-ims-go-org</scheme><typevalue>skole</typevalue></grouptype><description><short>S1</short><long>Liten skule</long></description><relationship relation="1"><sourcedid><id>eier</id></sourcedid></relationship></group>
  <group><sourcedid><id>S1-1A</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue>basisgruppe</typevalue></grouptype><description><short>1A</short></description><relationship relation="1"><sourcedid><id>S1</id></sourcedid></relationship></group>
  <group><sourcedid><id>S1-NOR</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue>undervisningsgruppe</typevalue></grouptype><description><short>Norsk</short></description><relationship relation="1"><sourcedid><id>S1</id></sourcedid></relationship></group>
  <group recstatus="3"><sourcedid><id>S1-9Z</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue>basisgruppe</typevalue></grouptype></group>
  <person><sourcedid><id>p-girl</id></sourcedid><userid useridtype="personFeide">girl@feide</userid><name><n><family>A&amp;B</family><given>Kari</given></n></name><demographics><gender>1</gender><bday>2015-03-04</bday></demographics></person>
  <person><sourcedid><id>p-boy</id></sourcedid><userid useridtype="personFeide">boy@feide</userid><userid useridtype="username">boy</userid><name><n><family>Berg</family><given>Ola</given></n></name><demographics><gender>2</gender></demographics></person>
  <person><sourcedid><id>p-teacher</id></sourcedid><name><n><family>Lærer</family><given>Lise</given></n></name><demographics><gender>1</gender></demographics></person>
  <person><recstatus>3</recstatus><sourcedid><id>p-gone</id></sourcedid></person>
  <person><sourcedid><id>p-school-only</id></sourcedid><name><n><family>Dahl</family><given>Per</given></n></name></person>
  <membership><sourcedid><id>S1-1A</id></sourcedid>
    <member><sourcedid><id>p-girl</id></sourcedid><idtype>1</idtype><role roletype="01"><status>1</status></role></member>
    <member><sourcedid><id>p-boy</id></sourcedid><idtype>1</idtype><role roletype="01"><status>1</status></role></member>
    <member><sourcedid><id>p-teacher</id></sourcedid><idtype>1</idtype><role roletype="02"><status>1</status></role></member>
  </membership>
  <membership><sourcedid><id>S1-NOR</id></sourcedid>
    <member><sourcedid><id>p-girl</id></sourcedid><idtype>1</idtype><role roletype="01"/></member>
  </membership>
  <membership><sourcedid><id>S1</id></sourcedid>
    <member><sourcedid><id>p-girl</id></sourcedid><idtype>1</idtype><role roletype="01"/></member>
    <member><sourcedid><id>p-school-only</id></sourcedid><idtype>1</idtype><role roletype="01"/></member>
  </membership>
</enterprise>
"#;

    #[test]
    fn a_small_export_maps_learners_staff_deletes_and_ims_gender() {
        let v = read_text(SMALL).unwrap();
        assert!(v.deviations.is_empty(), "{:?}", v.deviations);
        let keys: Vec<&str> = v
            .roster
            .students
            .iter()
            .map(|s| s.source_key.as_str())
            .collect();
        assert_eq!(
            keys,
            ["p-girl", "p-boy", "p-school-only"],
            "the teacher is no student"
        );

        let girl = &v.roster.students[0];
        assert_eq!(girl.gender, Gender::Female, "IMS 1 is female");
        assert_eq!(girl.family_name, "A&B");
        assert_eq!(girl.username.as_deref(), Some("girl@feide"));
        assert_eq!(girl.birth_date, CivilDate::parse_iso("2015-03-04"));
        let boy = &v.roster.students[1];
        assert_eq!(boy.gender, Gender::Male, "IMS 2 is male");
        assert_eq!(
            boy.username.as_deref(),
            Some("boy"),
            "username beats a Feide name"
        );

        assert_eq!(v.roster.schools.len(), 1);
        assert_eq!(v.roster.schools[0].name, "Liten skule");
        assert_eq!(
            v.roster.groups.len(),
            1,
            "undervisningsgrupper are not basisgrupper"
        );

        let enrollments: Vec<(&str, Option<&str>)> = v
            .roster
            .enrollments
            .iter()
            .map(|e| (e.source_key.as_str(), e.group.as_deref()))
            .collect();
        assert_eq!(
            enrollments,
            [
                ("p-girl@S1", Some("S1-1A")),
                ("p-boy@S1", Some("S1-1A")),
                ("p-school-only@S1", None),
            ]
        );

        let tombstones: Vec<(Entity, &str)> = v
            .tombstones
            .iter()
            .map(|t| (t.entity, t.key.as_str()))
            .collect();
        assert_eq!(
            tombstones,
            [(Entity::Group, "S1-9Z"), (Entity::Student, "p-gone")]
        );
    }

    #[test]
    fn a_deleted_membership_becomes_an_enrollment_tombstone_in_a_delta() {
        let text = r#"<enterprise><properties><type>Delta</type></properties>
<group><sourcedid><id>S1</id></sourcedid><grouptype><scheme>pifu-ims-go-org</scheme><typevalue>skole</typevalue></grouptype></group>
<group><sourcedid><id>S1-1A</id></sourcedid><grouptype><scheme>pifu-ims-go-grp</scheme><typevalue>basisgruppe</typevalue></grouptype><relationship relation="1"><sourcedid><id>S1</id></sourcedid></relationship></group>
<membership><sourcedid><id>S1-1A</id></sourcedid>
<member recstatus="3"><sourcedid><id>p1</id></sourcedid><idtype>1</idtype><role roletype="01"/></member>
</membership></enterprise>"#;
        let v = read_text(text).unwrap();
        assert!(v.partial);
        assert!(v.roster.students.is_empty());
        assert_eq!(v.tombstones.len(), 1);
        assert_eq!(v.tombstones[0].entity, Entity::Enrollment);
        assert_eq!(v.tombstones[0].key, "p1@S1");
    }

    #[test]
    fn a_person_without_a_key_or_a_name_is_reported_by_line() {
        let text = "<enterprise>\n<person><name><n><given>X</given></n></name></person>\n\
<person><sourcedid><id>p1</id></sourcedid></person>\n\
<membership><sourcedid><id>nowhere</id></sourcedid><member><sourcedid><id>p1</id></sourcedid><role roletype=\"01\"/></member></membership>\n\
</enterprise>";
        let v = read_text(text).unwrap();
        let found: Vec<(Code, Position)> =
            v.deviations.iter().map(|d| (d.code, d.position)).collect();
        assert_eq!(
            found,
            [
                (Code::MissingRequired, Position::Line(2)),
                (Code::MissingRequired, Position::Line(3)),
                (Code::MissingRequired, Position::Line(3)),
                (Code::DanglingReference, Position::Line(4)),
            ]
        );
        assert!(v.deviations.iter().all(|d| !d.detail.contains("p1")));
    }

    #[test]
    fn a_membership_of_an_unknown_person_is_left_for_validation_to_report() {
        let text = r#"<enterprise>
<group><sourcedid><id>S1</id></sourcedid><grouptype><scheme>pifu-ims-go-org</scheme><typevalue>skole</typevalue></grouptype></group>
<membership><sourcedid><id>S1</id></sourcedid><member><sourcedid><id>ghost</id></sourcedid><role roletype="01"/></member></membership>
</enterprise>"#;
        let v = read_text(text).unwrap();
        assert_eq!(codes(&v).get("dangling_reference"), Some(&1));
    }

    #[test]
    fn broken_documents_are_syntax_errors_with_a_line() {
        let cases = [
            ("", "empty"),
            ("just some text\n", "not XML"),
            ("<roster><person/></roster>", "wrong root"),
            ("<enterprise>\n<person>\n<sourcedid>", "truncated"),
            (
                "<enterprise>\n<person></group>\n</enterprise>",
                "unbalanced",
            ),
            (
                "<enterprise><person a=\"1\" a=\"2\"/></enterprise>",
                "duplicate attribute",
            ),
            ("<enterprise/><enterprise/>", "two roots"),
            ("<enterprise>&bogus;</enterprise>", "unknown entity"),
            ("<enterprise><person><email>\u{0}x", "truncated after junk"),
        ];
        for (text, what) in cases {
            let (line, reason) = syntax_reason(read_text(text));
            assert!(line.is_some(), "{what}: {reason}");
        }
        let (line, _) = syntax_reason(read_text("<enterprise>\n\n<person></group>\n</enterprise>"));
        assert_eq!(line, Some(3));
    }

    #[test]
    fn invalid_utf8_is_a_syntax_error_not_a_panic() {
        let mut builder = RosterBuilder::new(Default::default());
        let bytes: &[u8] = b"<enterprise><person><email>\xff\xfe</email></person></enterprise>";
        let result = read_from(Path::new("x.xml"), bytes, &mut builder);
        assert!(matches!(
            result,
            Err(ReadError {
                kind: ReadErrorKind::Syntax { .. },
                ..
            })
        ));
    }

    #[test]
    fn a_declared_latin1_export_is_decoded() {
        let mut bytes = b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><enterprise><person><sourcedid><id>p</id></sourcedid><name><n><family>L\xe6rer</family><given>O</given></n></name></person><membership><sourcedid><id>g</id></sourcedid><member><sourcedid><id>p</id></sourcedid><role roletype=\"01\"/></member></membership></enterprise>".to_vec();
        bytes.push(b'\n');
        let mut builder = RosterBuilder::new(Default::default());
        read_from(Path::new("x.xml"), &bytes[..], &mut builder).unwrap();
        let v = builder.finish();
        assert_eq!(v.roster.students[0].family_name, "Lærer");
    }

    #[test]
    fn a_utf16_label_on_a_byte_readable_file_is_read_as_utf8_and_unknown_labels_are_refused() {
        let text = "<?xml version=\"1.0\" encoding=\"utf-16\"?><enterprise/>";
        assert!(read_text(text).is_ok());
        let text = "<?xml version=\"1.0\" encoding=\"x-nonsense\"?><enterprise/>";
        let (_, reason) = syntax_reason(read_text(text));
        assert!(reason.contains("encoding"), "{reason}");
    }

    #[test]
    fn a_record_whose_start_tag_spans_lines_is_placed_at_its_first_line() {
        let text = "<enterprise>\n<person\n recstatus=\"1\"\n><sourcedid><id>p</id></sourcedid></person>\n\
<membership><sourcedid><id>g</id></sourcedid><member><sourcedid><id>p</id></sourcedid><role roletype=\"01\"/></member></membership></enterprise>";
        let v = read_text(text).unwrap();
        let lines: Vec<Position> = v
            .deviations
            .iter()
            .filter(|d| d.code == Code::MissingRequired)
            .map(|d| d.position)
            .collect();
        assert_eq!(lines, [Position::Line(2), Position::Line(2)]);
    }

    #[test]
    fn an_oversized_text_or_deep_nesting_is_refused() {
        let long = format!(
            "<enterprise><person><email>{}</email></person></enterprise>",
            "x".repeat(MAX_LINE_BYTES + 10)
        );
        let (_, reason) = syntax_reason(read_text(&long));
        assert!(reason.contains("longer"), "{reason}");

        let long_tag = format!(
            "<enterprise><person {}/></enterprise>",
            "a".repeat(MAX_LINE_BYTES + 10)
        );
        let (_, reason) = syntax_reason(read_text(&long_tag));
        assert!(reason.contains("longer"), "{reason}");

        let deep = format!("<enterprise>{}", "<a>".repeat(MAX_DEPTH + 1));
        let (_, reason) = syntax_reason(read_text(&deep));
        assert!(reason.contains("deeper"), "{reason}");
    }

    fn read_bytes(bytes: &[u8]) -> Result<(), ReadError> {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut file, bytes).expect("write temp file");
        let mut builder = RosterBuilder::new(Default::default());
        let result = read(file.path(), &mut builder);
        builder.finish();
        result
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = read_bytes(&bytes);
        }

        #[test]
        fn mutated_or_truncated_exports_never_panic(
            cut in 0usize..50_000,
            edits in proptest::collection::vec((0usize..50_000, any::<u8>()), 0..8),
        ) {
            let mut bytes = std::fs::read(CLEAN).expect("clean test data");
            for (at, byte) in edits {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            bytes.truncate(cut.min(bytes.len()));
            let _ = read_bytes(&bytes);
        }
    }
}
