//! Property tests over the two parsers that read user files: suite YAML and results JSONL.
//! Bounded (a few hundred cases each, a few seconds) so they run in every CI build; a failing
//! case is printed in full for a regression test.

use proptest::prelude::*;
use std::path::Path;
use ticketbench::runner::store::{self, StoreError};
use ticketbench::runner::suite::Suite;

const SUITES: &[&str] = &[
    include_str!("data/tiny.yaml"),
    include_str!("data/zoo.yaml"),
    include_str!("data/sanity-tiny.yaml"),
    include_str!("data/planted.yaml"),
];

/// Tokens that matter to YAML and to our schema, so mutations reach deep into the parser.
const TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ",",
    "\n",
    "  ",
    "\t",
    "'",
    "\"",
    "#",
    "&a ",
    "*a",
    "!!int ",
    "!!str ",
    "? ",
    "| ",
    "> ",
    "~",
    "null",
    "-1",
    "0",
    "1.5",
    "1e400",
    ".nan",
    ".inf",
    "0.5",
    "1e-300",
    "99999999999999999999",
    "planted",
    "dense",
    "random",
    "imp",
    "seeds",
    "densities",
    "methods",
    "tasks",
    "models",
    "hidden",
    "plant: pns",
    "checks",
    "rule: erk",
    "name: ",
    "transfer: true",
    "matched_random: true",
    "\u{feff}",
    "é",
    "\0",
];

#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, token: usize },
    Duplicate { at: usize, len: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 1..40usize).prop_map(|(at, len)| Edit::Delete { at, len }),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(at, token)| Edit::Insert { at, token }),
        (any::<usize>(), 1..80usize).prop_map(|(at, len)| Edit::Duplicate { at, len }),
    ]
}

/// Applies `edits` to `text` on character boundaries.
fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len().max(1);
        match *e {
            Edit::Delete { at, len } => {
                let at = at % n;
                let end = (at + len).min(chars.len());
                chars.drain(at.min(end)..end);
            }
            Edit::Insert { at, token } => {
                let at = at % (chars.len() + 1);
                chars.splice(at..at, TOKENS[token].chars());
            }
            Edit::Duplicate { at, len } => {
                let at = at % n;
                let end = (at + len).min(chars.len());
                let copy: Vec<char> = chars[at.min(end)..end].to_vec();
                chars.splice(end..end, copy);
            }
        }
    }
    chars.into_iter().collect()
}

fn parses_or_names_the_file(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("fuzzed-suite.yaml");
    if let Err(e) = Suite::parse(text, path) {
        let message = e.to_string();
        prop_assert!(
            message.contains("fuzzed-suite.yaml"),
            "error without the file name: {message}\n--- input:\n{text}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_suites_parse_or_fail_naming_the_file(
        base in 0..SUITES.len(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        parses_or_names_the_file(&mutate(SUITES[base], &edits))?;
    }

    #[test]
    fn arbitrary_text_never_panics_the_suite_parser(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        parses_or_names_the_file(&String::from_utf8_lossy(&bytes))?;
    }
}

const RECORDS: &str = include_str!("data/records.jsonl");

/// A results file line: a whole record, a cut one, a byte-flipped one, or noise.
#[derive(Debug, Clone)]
enum Line {
    Whole(usize),
    Cut(usize, usize),
    Flipped(usize, usize, u8),
    Noise(Vec<u8>),
}

fn line() -> impl Strategy<Value = Line> {
    let n = RECORDS.lines().count();
    prop_oneof![
        (0..n).prop_map(Line::Whole),
        (0..n, any::<usize>()).prop_map(|(i, at)| Line::Cut(i, at)),
        (0..n, any::<usize>(), any::<u8>()).prop_map(|(i, at, b)| Line::Flipped(i, at, b)),
        prop::collection::vec(any::<u8>().prop_filter("one line", |b| *b != b'\n'), 0..200)
            .prop_map(Line::Noise),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Every whole record is read back equal; everything else is skipped or, when no line at
    /// all is a record, refused with the file named. Never a panic.
    #[test]
    fn the_results_reader_keeps_whole_records_and_skips_the_rest(lines in prop::collection::vec(line(), 0..12)) {
        let records: Vec<&str> = RECORDS.lines().collect();
        let mut bytes = Vec::new();
        let mut whole = Vec::new();
        for l in &lines {
            match l {
                Line::Whole(i) => {
                    bytes.extend_from_slice(records[*i].as_bytes());
                    whole.push(records[*i]);
                }
                Line::Cut(i, at) => {
                    let r = records[*i].as_bytes();
                    bytes.extend_from_slice(&r[..at % r.len()]);
                }
                Line::Flipped(i, at, b) => {
                    let mut r = records[*i].as_bytes().to_vec();
                    let at = at % r.len();
                    r[at] = if *b == b'\n' { b'x' } else { *b };
                    bytes.extend_from_slice(&r);
                }
                Line::Noise(noise) => bytes.extend_from_slice(noise),
            }
            bytes.push(b'\n');
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(store::RESULTS_FILE), &bytes).unwrap();
        match store::load(dir.path()) {
            Ok(loaded) => {
                // A flipped byte can leave a valid record (e.g. inside a label): count at least
                // the whole ones, each equal to its source line.
                prop_assert!(loaded.records.len() >= whole.len());
                for w in &whole {
                    let expected: ticketbench::runner::job::JobRecord = serde_json::from_str(w).unwrap();
                    prop_assert!(loaded.records.contains(&expected));
                }
            }
            Err(StoreError::NotResults { path, .. }) => {
                prop_assert!(whole.is_empty());
                prop_assert!(path.ends_with(store::RESULTS_FILE));
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}
