//! What a name may be, and when two names are the same to a reader.
//!
//! A name is kept in NFC, so the same letters typed two ways are one name.
//! It may not hold what a reader cannot see or that changes how the rest
//! reads: control characters, invisible ones (Unicode's default-ignorable
//! code points: zero-width spaces and joiners, the BOM, bidirectional marks,
//! embeddings, overrides and isolates), spaces other than U+0020 (or two of
//! them in a row), nor more than [`MAX_MARKS`] combining marks on one
//! letter. Two names are the same name when their confusable skeletons
//! (Unicode TR39, from the `unicode-security` crate) are equal, so `аlice`
//! (a Cyrillic а) and `alice` cannot both exist in a room.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Longest name, in characters.
pub const MAX_NAME: usize = 32;

/// Most combining marks on one letter (decomposed): enough for Vietnamese
/// (`ệ` is e and two marks) and the stacked vowels of Indic scripts, not
/// for "Zalgo" text that spills over the lines around it.
pub const MAX_MARKS: usize = 3;

/// Emoji presentation selectors: invisible, but they only choose how the
/// emoji before them is drawn (and the skeleton drops them).
const VARIATION_SELECTORS: [char; 2] = ['\u{FE0E}', '\u{FE0F}'];

/// The name as kept (NFC), or why it is refused.
pub fn normalize(name: &str) -> Result<String, String> {
    let name: String = name.nfc().collect();
    let count = name.chars().count();
    if count == 0 || count > MAX_NAME {
        return Err(format!("a name has 1 to {MAX_NAME} characters"));
    }
    if name.trim() != name || name.contains("  ") {
        return Err("a name has no outer spaces and no two in a row".into());
    }
    if let Some(c) = name.chars().find(|&c| refused(c)) {
        return Err(format!(
            "a name has no control, invisible or direction-changing characters (U+{:04X})",
            u32::from(c)
        ));
    }
    let mut marks = 0;
    for (i, c) in name.nfd().enumerate() {
        if !is_combining_mark(c) {
            marks = 0;
            continue;
        }
        marks += 1;
        if i == 0 || marks > MAX_MARKS {
            return Err(format!(
                "a name has at most {MAX_MARKS} combining marks on a letter, and starts with a letter"
            ));
        }
    }
    Ok(name)
}

/// Control characters, spaces other than U+0020, and what the TR39
/// skeleton drops as default-ignorable (invisible, bidi controls).
fn refused(c: char) -> bool {
    if c.is_control() || (c.is_whitespace() && c != ' ') {
        return true;
    }
    if VARIATION_SELECTORS.contains(&c) {
        return false;
    }
    let mut one = [0; 4];
    unicode_security::skeleton(c.encode_utf8(&mut one))
        .next()
        .is_none()
}

/// The confusable skeleton of a name: equal for names a reader can take
/// for one another.
pub fn skeleton(name: &str) -> String {
    unicode_security::skeleton(name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_and_scripts_pass() {
        for name in [
            "alice",
            "Alice Smith",
            "o'neil",
            "Nguyễn Văn An",
            "Ελένη",
            "Дмитрий",
            "李小龍",
            "🦀 crab",
            "❤\u{FE0F}",
            &"é".repeat(32),
        ] {
            assert_eq!(normalize(name).as_deref(), Ok(name), "{name:?}");
        }
    }

    #[test]
    fn the_audits_names_are_refused() {
        for name in [
            "alice\u{200B}",         // zero-width space
            "\u{202E}ecila",         // right-to-left override
            "\u{FEFF}alice",         // BOM
            "al\u{200D}ice",         // zero-width joiner
            "al\u{2066}ice\u{2069}", // isolate
            "alice\u{200E}",         // left-to-right mark
            "ali\u{00AD}ce",         // soft hyphen
            "a\u{3164}b",            // Hangul filler
            "alice\u{00A0}smith",    // no-break space
            "alice  smith",          // two spaces
            " alice",                // outer space
            "a\nb",                  // control
            "",                      // empty
        ] {
            assert!(normalize(name).is_err(), "{name:?} was accepted");
        }
        let zalgo = format!("a{}", "\u{0301}".repeat(30));
        assert!(normalize(&zalgo).is_err(), "30 combining marks");
        assert!(normalize("\u{0301}a").is_err(), "starts with a mark");
        assert!(normalize(&"x".repeat(33)).is_err());
        assert!(
            normalize("a\u{0301}\u{0302}\u{0303}").is_ok(),
            "three marks"
        );
        assert!(normalize("a\u{0301}\u{0302}\u{0303}\u{0304}").is_err());
    }

    #[test]
    fn one_name_typed_two_ways_is_one_name() {
        let decomposed = "Jose\u{0301}";
        assert_eq!(normalize(decomposed).as_deref(), Ok("José"));
    }

    #[test]
    fn lookalikes_share_a_skeleton() {
        assert_eq!(skeleton("\u{0430}lice"), skeleton("alice"), "Cyrillic а");
        assert_eq!(skeleton("paypal"), skeleton("\u{0440}\u{0430}ypal"));
        assert_eq!(skeleton("rn"), skeleton("m"));
        assert_eq!(skeleton("alice"), skeleton("a\u{200B}lice"));
        assert_ne!(skeleton("alice"), skeleton("alicia"));
        assert_ne!(skeleton("bob"), skeleton("rob"));
    }
}
