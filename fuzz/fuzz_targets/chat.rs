//! The chat's client messages: any text frame a client sends is parsed
//! without a panic (or unbounded recursion), and what the chat keeps from a
//! parsed profile is what it promises: a `#rgb`/`#rrggbb` colour or none, a
//! status of at most `MAX_STATUS` characters with no control character.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pawl_chat::protocol::{ClientMessage, MAX_STATUS, Profile};

fuzz_target!(|data: &[u8]| {
    // The chat gets text frames, which the decoder has checked for UTF-8.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let profile = match ClientMessage::parse(text) {
        Ok(ClientMessage::Profile { profile }) => profile,
        Ok(ClientMessage::Join {
            profile: Some(profile),
            ..
        }) => profile,
        _ => return,
    };
    let kept = profile.sanitized();
    check(&kept);
    assert_eq!(
        kept.clone().sanitized(),
        kept,
        "sanitizing twice changes it"
    );
});

fn check(profile: &Profile) {
    if !profile.color.is_empty() {
        let hex = profile
            .color
            .strip_prefix('#')
            .expect("a colour starts with #");
        assert!(matches!(hex.len(), 3 | 6), "{:?}", profile.color);
        assert!(
            hex.bytes().all(|b| b.is_ascii_hexdigit()),
            "{:?}",
            profile.color
        );
    }
    assert!(profile.status.chars().count() <= MAX_STATUS);
    assert!(
        !profile.status.chars().any(char::is_control),
        "{:?}",
        profile.status
    );
}
