//! Parsing: the event loop. It reads the export one XML event at a time, checks that the
//! document is well formed within the limits, and collects the records the profile gives
//! meaning to into an [`Export`], which is emitted only once the whole document has parsed.

use std::collections::HashSet;
use std::io::{self, Read};
use std::path::Path;

use encoding_rs::Encoding;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::input::Counted;
use super::records::{Export, GroupRec, MemberRec, MembershipRec, PersonRec};
use crate::reader::error::{ReadError, ReadErrorKind};
use crate::reader::format::Format;
use crate::reader::stream::MAX_LINE_BYTES;

/// The deepest element nesting accepted. PIFU-IMS needs six levels; a document nested far
/// deeper is broken or hostile, and refusing it keeps the element stack small.
pub const MAX_DEPTH: usize = 64;

/// The most attributes one element may have. PIFU-IMS elements have one or two, and a root
/// a handful of namespace declarations; thousands are a broken or hostile file, refused
/// before they cost time.
pub const MAX_ATTRIBUTES: usize = 256;

/// The record being read: the second-level element the parser is inside.
enum Current {
    Nothing,
    Person(PersonRec),
    Group(GroupRec),
    Membership(MembershipRec, Option<MemberRec>),
}

/// One open element: its local name and the attributes the profile gives meaning to.
struct Frame {
    name: Box<[u8]>,
    /// `useridtype`, `partnametype`, `relation`, `roletype`, `sourcedidtype` or (of a
    /// `pifu_id`) `type`, by element.
    kind: Option<String>,
    /// `recstatus` 3 as an attribute.
    deleted: bool,
}

pub(super) struct Parser<'p, R> {
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
    pub(super) fn new(path: &'p Path, input: R) -> Parser<'p, R> {
        let mut reader = Reader::from_reader(Counted::new(input));
        let config = reader.config_mut();
        // Not trimmed per event: quick-xml splits text at every entity reference, and
        // trimming each piece would drop the spaces beside it (`Nilsen &amp; Berg` read as
        // `Nilsen &Berg`). A value is trimmed whole when its element closes.
        config.trim_text(false);
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

    pub(super) fn parse(mut self) -> Result<Export, ReadError> {
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
            b"sourcedid" => b"sourcedidtype",
            b"pifu_id" => b"type",
            _ => b"",
        };
        let mut frame = Frame {
            name: name.into(),
            kind: None,
            deleted: false,
        };
        // quick-xml's own duplicate check compares each attribute with every earlier one;
        // a hash set keeps a tag of many attributes linear, and the bound keeps it small.
        let mut seen: HashSet<&[u8]> = HashSet::new();
        for attribute in start.attributes().with_checks(false) {
            let attribute = attribute.map_err(|e| self.syntax(line, e.to_string()))?;
            if seen.len() == MAX_ATTRIBUTES {
                let reason = format!(
                    "<{}> has more than {MAX_ATTRIBUTES} attributes",
                    shorten(&String::from_utf8_lossy(name))
                );
                return Err(self.syntax(line, reason));
            }
            if !seen.insert(attribute.key.into_inner()) {
                let reason = format!(
                    "<{}> has the attribute `{}` twice",
                    shorten(&String::from_utf8_lossy(name)),
                    shorten(&String::from_utf8_lossy(attribute.key.as_ref()))
                );
                return Err(self.syntax(line, reason));
            }
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
        [b"sourcedid", b"id"] => set_first(&mut p.pending_id, text),
        [b"sourcedid"] => {
            let id = p.pending_id.take();
            p.ids.push((kind, id));
        }
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
        [b"sourcedid", b"id"] => set_first(&mut g.pending_id, text),
        [b"sourcedid"] => {
            let id = g.pending_id.take();
            g.ids.push((kind, id));
        }
        [b"extension", b"pifu_id", b"pifu_value"] => set_first(&mut g.pending_pifu_value, text),
        [b"extension", b"pifu_id"] => {
            if let (Some(kind), Some(value)) = (kind, g.pending_pifu_value.take()) {
                g.pifu_ids.push((kind, value));
            }
        }
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
