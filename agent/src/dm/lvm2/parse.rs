//! Reading lvm2 metadata text back into a [`Vg`]: a small parser for lvm's
//! config syntax (`key = value`, `name { ... }`, strings, integers, lists,
//! `#` comments) and the mapping of the VG section onto the model.
//!
//! Only what landfall writes is modelled: linear (`striped`, one stripe) LVs.
//! Anything else in the VG (other segment types, tags, lock or system ids,
//! historical LVs) is listed in [`ParsedVg::unmodelled`], so that a caller
//! never rewrites metadata it would lose parts of.

use std::collections::HashMap;

use super::error::LvmError;
use super::id::LvmId;
use super::model::{Lv, Pv, Segment, Vg};

/// A VG read from metadata text.
#[derive(Debug, Clone)]
pub struct ParsedVg {
    pub vg: Vg,
    /// Keys and sections present in the text that [`Vg`] does not carry.
    pub unmodelled: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Int(i64),
    List(Vec<Value>),
}

#[derive(Debug, Default)]
struct Section {
    values: Vec<(String, Value, usize)>,
    sections: Vec<(String, Section, usize)>,
}

impl Section {
    fn value(&self, key: &str) -> Option<&Value> {
        self.values.iter().find(|v| v.0 == key).map(|v| &v.1)
    }
    fn section(&self, key: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.0 == key).map(|s| &s.1)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Int(i64),
    Sym(char),
}

fn bad(line: usize, reason: impl Into<String>) -> LvmError {
    LvmError::BadMetadataText {
        line,
        reason: reason.into(),
    }
}

fn tokenize(text: &str) -> Result<Vec<(Token, usize)>, LvmError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            '\0' => break,
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '{' | '}' | '[' | ']' | '=' | ',' => {
                out.push((Token::Sym(c), line));
                chars.next();
            }
            '"' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(bad(line, "unterminated string")),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(e) => s.push(e),
                            None => return Err(bad(line, "unterminated string")),
                        },
                        Some('\n') => {
                            line += 1;
                            s.push('\n');
                        }
                        Some(c) => s.push(c),
                    }
                }
                out.push((Token::Str(s), line));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || matches!(c, '_' | '.' | '+' | '-') {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if word.is_empty() {
                    return Err(bad(line, format!("unexpected {c:?}")));
                }
                let token = if word.starts_with(|c: char| c.is_ascii_digit() || c == '-') {
                    match word.parse() {
                        Ok(n) => Token::Int(n),
                        Err(_) => Token::Word(word),
                    }
                } else {
                    Token::Word(word)
                };
                out.push((token, line));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
}

impl Parser {
    fn line(&self) -> usize {
        self.tokens
            .get(self.at)
            .or(self.tokens.last())
            .map_or(1, |t| t.1)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).map(|t| t.0.clone());
        self.at += 1;
        t
    }

    fn section(&mut self, nested: bool) -> Result<Section, LvmError> {
        let mut section = Section::default();
        loop {
            let line = self.line();
            let key = match self.next() {
                None if !nested => return Ok(section),
                None => return Err(bad(line, "missing '}'")),
                Some(Token::Sym('}')) if nested => return Ok(section),
                Some(Token::Word(w)) => w,
                Some(Token::Int(n)) => n.to_string(),
                Some(t) => return Err(bad(line, format!("expected a name, found {t:?}"))),
            };
            match self.next() {
                Some(Token::Sym('{')) => {
                    let inner = self.section(true)?;
                    section.sections.push((key, inner, line));
                }
                Some(Token::Sym('=')) => {
                    let value = self.value()?;
                    section.values.push((key, value, line));
                }
                t => {
                    return Err(bad(
                        line,
                        format!("expected '=' or '{{' after {key}, found {t:?}"),
                    ))
                }
            }
        }
    }

    fn value(&mut self) -> Result<Value, LvmError> {
        let line = self.line();
        match self.next() {
            Some(Token::Str(s)) => Ok(Value::Str(s)),
            Some(Token::Int(n)) => Ok(Value::Int(n)),
            Some(Token::Sym('[')) => {
                let mut items = Vec::new();
                loop {
                    if self.tokens.get(self.at).map(|t| &t.0) == Some(&Token::Sym(']')) {
                        self.at += 1;
                        return Ok(Value::List(items));
                    }
                    items.push(self.value()?);
                    match self.next() {
                        Some(Token::Sym(',')) => {}
                        Some(Token::Sym(']')) => return Ok(Value::List(items)),
                        t => {
                            return Err(bad(
                                self.line(),
                                format!("expected ',' or ']', found {t:?}"),
                            ))
                        }
                    }
                }
            }
            t => Err(bad(line, format!("expected a value, found {t:?}"))),
        }
    }
}

struct Fields<'a> {
    section: &'a Section,
    line: usize,
    path: String,
}

impl Fields<'_> {
    fn int(&self, key: &str) -> Result<u64, LvmError> {
        match self.section.value(key) {
            Some(Value::Int(n)) if *n >= 0 => Ok(*n as u64),
            _ => Err(bad(
                self.line,
                format!("{}: missing or bad {key}", self.path),
            )),
        }
    }
    fn string(&self, key: &str) -> Result<&str, LvmError> {
        match self.section.value(key) {
            Some(Value::Str(s)) => Ok(s),
            _ => Err(bad(
                self.line,
                format!("{}: missing or bad {key}", self.path),
            )),
        }
    }
    fn id(&self) -> Result<LvmId, LvmError> {
        LvmId::parse(self.string("id")?)
            .ok_or_else(|| bad(self.line, format!("{}: bad id", self.path)))
    }
    /// Keys beyond `known`, and values of `status`/`flags` beyond `plain`.
    fn extras(&self, known: &[&str], out: &mut Vec<String>) {
        for (key, value, _) in &self.section.values {
            if !known.contains(&key.as_str()) {
                out.push(format!("{}/{key}", self.path));
            }
            if key == "flags" && value != &Value::List(vec![]) {
                out.push(format!("{}/flags", self.path));
            }
        }
    }
}

/// Parse metadata text (a trailing NUL is allowed).
pub fn parse_vg(text: &str) -> Result<ParsedVg, LvmError> {
    let tokens = tokenize(text)?;
    let top = Parser { tokens, at: 0 }.section(false)?;
    if let Some(v) = top.value("contents") {
        if v != &Value::Str("Text Format Volume Group".into()) {
            return Err(bad(1, "contents is not \"Text Format Volume Group\""));
        }
    }
    if let Some(v) = top.value("version") {
        if v != &Value::Int(1) {
            return Err(bad(1, "version is not 1"));
        }
    }
    let (name, vg_section, line) = match top.sections.as_slice() {
        [one] => one,
        _ => return Err(bad(1, "expected exactly one volume group section")),
    };
    let vg_fields = Fields {
        section: vg_section,
        line: *line,
        path: name.clone(),
    };
    let mut unmodelled = Vec::new();
    vg_fields.extras(
        &[
            "id",
            "seqno",
            "format",
            "status",
            "flags",
            "extent_size",
            "max_lv",
            "max_pv",
            "metadata_copies",
        ],
        &mut unmodelled,
    );
    for (key, _, _) in &vg_section.sections {
        if key != "physical_volumes" && key != "logical_volumes" {
            unmodelled.push(format!("{name}/{key}"));
        }
    }

    let mut pvs = Vec::new();
    let mut pv_index = HashMap::new();
    if let Some(section) = vg_section.section("physical_volumes") {
        for (pv_name, s, line) in &section.sections {
            let f = Fields {
                section: s,
                line: *line,
                path: format!("{name}/{pv_name}"),
            };
            f.extras(
                &[
                    "id", "device", "status", "flags", "dev_size", "pe_start", "pe_count",
                ],
                &mut unmodelled,
            );
            pv_index.insert(pv_name.clone(), pvs.len());
            pvs.push(Pv {
                id: f.id()?,
                device: f.string("device").unwrap_or_default().to_string(),
                dev_size: f.int("dev_size")?,
                pe_start: f.int("pe_start")?,
                pe_count: f.int("pe_count")?,
            });
        }
    }

    let mut lvs = Vec::new();
    if let Some(section) = vg_section.section("logical_volumes") {
        for (lv_name, s, line) in &section.sections {
            let f = Fields {
                section: s,
                line: *line,
                path: format!("{name}/{lv_name}"),
            };
            f.extras(
                &[
                    "id",
                    "status",
                    "flags",
                    "creation_time",
                    "creation_host",
                    "segment_count",
                ],
                &mut unmodelled,
            );
            let count = f.int("segment_count")?;
            let mut segments = Vec::new();
            let mut next_le = 0;
            for n in 1..=count {
                let seg_name = format!("segment{n}");
                let seg = s
                    .section(&seg_name)
                    .ok_or_else(|| bad(*line, format!("{}: missing {seg_name}", f.path)))?;
                let sf = Fields {
                    section: seg,
                    line: *line,
                    path: format!("{}/{seg_name}", f.path),
                };
                sf.extras(
                    &[
                        "start_extent",
                        "extent_count",
                        "type",
                        "stripe_count",
                        "stripes",
                    ],
                    &mut unmodelled,
                );
                if sf.string("type")? != "striped" || sf.int("stripe_count")? != 1 {
                    return Err(bad(
                        *line,
                        format!("{}: only linear segments are supported", sf.path),
                    ));
                }
                let (pv, pv_start) = match seg.value("stripes") {
                    Some(Value::List(items)) => match items.as_slice() {
                        [Value::Str(pv), Value::Int(start)] if *start >= 0 => {
                            let pv = *pv_index.get(pv).ok_or_else(|| {
                                bad(*line, format!("{}: unknown PV {pv}", sf.path))
                            })?;
                            (pv, *start as u64)
                        }
                        _ => return Err(bad(*line, format!("{}: bad stripes", sf.path))),
                    },
                    _ => return Err(bad(*line, format!("{}: missing stripes", sf.path))),
                };
                let start_extent = sf.int("start_extent")?;
                if start_extent != next_le {
                    return Err(bad(
                        *line,
                        format!("{}: segments are not contiguous", sf.path),
                    ));
                }
                let extent_count = sf.int("extent_count")?;
                next_le += extent_count;
                segments.push(Segment {
                    start_extent,
                    extent_count,
                    pv,
                    pv_start,
                });
            }
            if s.sections.len() as u64 != count {
                unmodelled.push(format!("{}/(extra sections)", f.path));
            }
            lvs.push(Lv {
                name: lv_name.clone(),
                id: f.id()?,
                creation_time: f.int("creation_time").unwrap_or(0),
                creation_host: f.string("creation_host").unwrap_or_default().to_string(),
                segments,
            });
        }
    }

    let seqno = u32::try_from(vg_fields.int("seqno")?).map_err(|_| bad(*line, "seqno too big"))?;
    let max = |key| -> Result<u32, LvmError> {
        u32::try_from(vg_fields.int(key)?).map_err(|_| bad(*line, format!("{key} too big")))
    };
    Ok(ParsedVg {
        vg: Vg {
            name: name.clone(),
            id: vg_fields.id()?,
            seqno,
            extent_size: vg_fields.int("extent_size")?,
            max_lv: max("max_lv")?,
            max_pv: max("max_pv")?,
            pvs,
            lvs,
        },
        unmodelled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dm::lvm2::text::{render, Trailer};

    fn sample() -> Vg {
        Vg {
            name: "my-vg".into(),
            id: LvmId::from_random_bytes([1; 32]),
            seqno: 7,
            extent_size: 8192,
            max_lv: 0,
            max_pv: 0,
            pvs: vec![Pv {
                id: LvmId::from_random_bytes([2; 32]),
                device: "/dev/vd\"a\"2".into(),
                dev_size: 4_194_304,
                pe_start: 2048,
                pe_count: 511,
            }],
            lvs: vec![Lv {
                name: "lv+1".into(),
                id: LvmId::from_random_bytes([3; 32]),
                creation_time: 1_796_609_414,
                creation_host: "host".into(),
                segments: vec![
                    Segment {
                        start_extent: 0,
                        extent_count: 10,
                        pv: 0,
                        pv_start: 5,
                    },
                    Segment {
                        start_extent: 10,
                        extent_count: 3,
                        pv: 0,
                        pv_start: 0,
                    },
                ],
            }],
        }
    }

    #[test]
    fn round_trips_what_render_writes() {
        let vg = sample();
        let trailer = Trailer {
            host: "h".into(),
            uname: "Linux h".into(),
            time: 5,
            description: "d \"quoted\"".into(),
        };
        let bytes = render(&vg, &trailer);
        let parsed = parse_vg(std::str::from_utf8(&bytes).unwrap()).unwrap();
        assert_eq!(parsed.vg, vg);
        assert!(parsed.unmodelled.is_empty(), "{:?}", parsed.unmodelled);
    }

    #[test]
    fn reads_indented_backup_style_text_with_comments() {
        let text = "# a comment\ncontents = \"Text Format Volume Group\"\nversion = 1\n\npool {\n\tid = \"bD4PcY-s67j-U9Gx-iag1-cWH1-8GQx-e6qIYQ\"\n\tseqno = 3\n\tformat = \"lvm2\" # informational\n\tstatus = [\"RESIZEABLE\", \"READ\", \"WRITE\"]\n\tflags = []\n\textent_size = 8192\t# 4 Megabytes\n\tmax_lv = 0\n\tmax_pv = 0\n\tmetadata_copies = 0\n\ttags = [\"x\"]\n\tphysical_volumes {\n\t\tpv0 {\n\t\t\tid = \"negY9c-Yafl-iw1N-gcqJ-6R6v-bs26-h3jinf\"\n\t\t\tdevice = \"/dev/loop0\"\t# Hint only\n\t\t\tstatus = [\"ALLOCATABLE\"]\n\t\t\tflags = []\n\t\t\tdev_size = 4194304\n\t\t\tpe_start = 2048\n\t\t\tpe_count = 511\n\t\t}\n\t}\n}\n";
        let parsed = parse_vg(text).unwrap();
        assert_eq!(parsed.vg.name, "pool");
        assert_eq!(parsed.vg.seqno, 3);
        assert_eq!(parsed.vg.pvs[0].pe_count, 511);
        assert!(parsed.vg.lvs.is_empty());
        assert_eq!(parsed.unmodelled, ["pool/tags"]);
    }

    #[test]
    fn refuses_non_linear_segments_and_garbage() {
        let thin = render(
            &sample(),
            &Trailer {
                host: "h".into(),
                uname: "u".into(),
                time: 0,
                description: "d".into(),
            },
        );
        let text = String::from_utf8(thin).unwrap().replacen(
            "type = \"striped\"",
            "type = \"thin-pool\"",
            1,
        );
        assert!(matches!(
            parse_vg(&text),
            Err(LvmError::BadMetadataText { .. })
        ));
        assert!(parse_vg("pool { id = ").is_err());
        assert!(parse_vg("pool { id = \"x\"").is_err());
        assert!(parse_vg("").is_err());
    }
}
