//! The SDF front end never panics: every fixture cut off at every character, random
//! garbage, random edits of a valid system, and very deep nesting all give either a
//! system or located errors.

use std::path::Path;

use vcpos_tool::sdf;

/// The fixture directory.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdf");

/// Parses `text`; asserts that a rejection has at least one error and that every
/// error is located.
fn parse_any(text: &str) {
    if let Err(errors) = sdf::parse_str("fuzz.system", text) {
        assert!(!errors.is_empty(), "rejected without an error: {text:?}");
        for e in &errors {
            assert!(e.span.is_some(), "unlocated error {e} for {text:?}");
            assert!(e.to_string().starts_with("Error: "), "{e}");
        }
    }
}

/// All fixtures' texts.
fn fixtures() -> Vec<String> {
    let mut texts: Vec<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "system"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    texts.sort();
    texts
}

/// A small deterministic pseudo-random generator (xorshift64*), so failures repeat.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces random texts are made of: XML syntax, element and attribute names, and
/// awkward values.
const PIECES: &[&str] = &[
    "<",
    ">",
    "/>",
    "</",
    "\"",
    "'",
    "=",
    " ",
    "\n",
    "<!--",
    "-->",
    "<?xml version=\"1.0\"?>",
    "&amp;",
    "&",
    "system",
    "protection_domain",
    "memory_region",
    "map",
    "irq",
    "channel",
    "end",
    "setvar",
    "program_image",
    "virtual_machine",
    "vcpu",
    "name",
    "id",
    "pd",
    "mr",
    "vaddr",
    "size",
    "phys_addr",
    "page_size",
    "priority",
    "budget",
    "period",
    "stack_size",
    "perms",
    "pp",
    "true",
    "0x",
    "0x1000",
    "_",
    "99999999999999999999999",
    "18446744073709551615",
    "61",
    "62",
    "a",
    "rwx",
    "\u{e9}",
    "<![CDATA[x]]>",
];

#[test]
fn every_fixture_truncated_anywhere() {
    for text in fixtures() {
        for (cut, _) in text.char_indices() {
            parse_any(&text[..cut]);
        }
    }
}

#[test]
fn random_garbage() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..3000 {
        let len = rng.below(60);
        let text: String = (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect();
        parse_any(&text);
        parse_any(&format!("<system>{text}</system>"));
    }
}

#[test]
fn random_edits_of_a_valid_system() {
    let valid = std::fs::read_to_string(Path::new(FIXTURES).join("valid_full.system")).unwrap();
    let mut rng = Rng(0x0dd_ba11_cafe_f00d);
    for _ in 0..3000 {
        let mut text = valid.clone();
        for _ in 0..1 + rng.below(4) {
            let mut at = rng.below(text.len());
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(3) {
                0 => text.insert_str(at, PIECES[rng.below(PIECES.len())]),
                1 => {
                    let mut end = (at + 1 + rng.below(8)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, "");
                }
                _ => {
                    let digits = ["0", "1", "9", "f", "x", "_", "-"];
                    text.insert_str(at, digits[rng.below(digits.len())]);
                }
            }
        }
        parse_any(&text);
    }
}

#[test]
fn deep_nesting() {
    // Deep enough to overflow the stack if the XML parser were called on it.
    let depth = 100_000;
    let pds = format!(
        "<system>{}{}</system>",
        "<protection_domain name=\"p\" id=\"1\">".repeat(depth),
        "</protection_domain>".repeat(depth)
    );
    parse_any(&pds);
    let unknown = format!("<system>{}{}</system>", "<x>".repeat(depth), "</x>".repeat(depth));
    let errors = sdf::parse_str("deep.system", &unknown).unwrap_err();
    assert_eq!(
        errors[0].to_string(),
        "Error: could not parse 'deep.system': elements are nested more than 256 deep: deep.system:1:774"
    );
    // The deepest nesting the guard lets through parses fine on a test thread's stack.
    let limit = sdf::depth::MAX_DEPTH;
    let deepest = format!(
        "<system>{}{}</system>",
        "<x>".repeat(limit - 1),
        "</x>".repeat(limit - 1)
    );
    let errors: Vec<String> = sdf::parse_str("deep.system", &deepest)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "Error: at least one protection domain must be defined on element 'system': deep.system:1:1",
            "Error: invalid XML element 'x': deep.system:1:9",
        ]
    );
}

#[test]
fn nesting_limit_is_reported() {
    let depth = 70;
    let mut text = String::from("<system>");
    for i in 0..depth {
        text += &format!("<protection_domain name=\"p{i}\" id=\"1\"><program_image path=\"p.elf\"/>");
    }
    text += &"</protection_domain>".repeat(depth);
    text += "</system>";
    let errors: Vec<String> = sdf::parse_str("deep.system", &text)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("Error: protection domains are nested more than 63 deep")),
        "{errors:?}"
    );
    assert!(errors
        .iter()
        .any(|e| e.starts_with("Error: invalid attribute 'id' on element 'protection_domain'")));
}
