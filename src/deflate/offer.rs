//! Negotiating permessage-deflate (RFC 7692 §5, §7.1): reading the client's
//! offers from its `Sec-WebSocket-Extensions` headers, choosing the first
//! one the route's mode can accept, and writing the response's parameters.
//!
//! An offer with a parameter this extension does not define, a parameter
//! twice, or a value out of range is declined (the next offer is tried), and
//! so is one that does not parse; the handshake itself never fails over an
//! extension (§5.1: the server declines what it cannot accept).

use super::{Compression, MAX_WINDOW_BITS, MIN_DEFLATE_WINDOW_BITS};

/// The extension's registered name.
const NAME: &str = "permessage-deflate";

/// What the server agreed to for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// Dedicated (per-connection) state rather than the loop's shared one.
    pub(crate) dedicated: bool,
    /// The server resets its compressor after each message.
    pub(crate) server_no_context_takeover: bool,
    /// The client resets its compressor after each message, so the server
    /// may reset its decompressor.
    pub(crate) client_no_context_takeover: bool,
    /// The window the server compresses with, when it was limited in the
    /// response (`server_max_window_bits`).
    pub(crate) server_max_window_bits: Option<u8>,
    /// The window the client compresses with, when the response limited it
    /// (`client_max_window_bits`).
    pub(crate) client_max_window_bits: Option<u8>,
}

impl Agreed {
    /// Whether the server compresses what it sends. A client that limits
    /// the server's window is accepted, and, where pawl has no compressor
    /// of that window, sent its messages uncompressed, which RFC 7692
    /// allows for any message: zlib cannot compress within a 256-byte
    /// window at all (it turns 8 into 9), and the shared mode's one
    /// compressor has the full window (browsers never ask for less).
    pub(crate) fn server_compresses(&self) -> bool {
        match self.server_max_window_bits {
            None | Some(MAX_WINDOW_BITS) => true,
            Some(bits) => self.dedicated && bits >= MIN_DEFLATE_WINDOW_BITS,
        }
    }

    /// The compressor's window.
    pub(crate) fn server_window_bits(&self) -> u8 {
        self.server_max_window_bits.unwrap_or(MAX_WINDOW_BITS)
    }

    /// The decompressor's window.
    pub(crate) fn client_window_bits(&self) -> u8 {
        self.client_max_window_bits.unwrap_or(MAX_WINDOW_BITS)
    }

    /// Appends the response header, `Sec-WebSocket-Extensions: ...\r\n`.
    pub(crate) fn write_header(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"Sec-WebSocket-Extensions: ");
        out.extend_from_slice(NAME.as_bytes());
        if self.server_no_context_takeover {
            out.extend_from_slice(b"; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.extend_from_slice(b"; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            out.extend_from_slice(format!("; server_max_window_bits={bits}").as_bytes());
        }
        if let Some(bits) = self.client_max_window_bits {
            out.extend_from_slice(format!("; client_max_window_bits={bits}").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// One permessage-deflate offer's parameters, validated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// Chooses the first acceptable permessage-deflate offer among the values
/// of the request's `Sec-WebSocket-Extensions` headers, in order. `None`
/// when compression is off or nothing offered is acceptable.
pub(crate) fn negotiate<'v>(
    headers: impl IntoIterator<Item = &'v [u8]>,
    mode: Compression,
) -> Option<Agreed> {
    if !mode.is_on() {
        return None;
    }
    headers
        .into_iter()
        .filter_map(|value| std::str::from_utf8(value).ok())
        .flat_map(|value| split_outside_quotes(value, ','))
        .filter_map(parse_offer)
        .map(|offer| accept(offer, mode))
        .next()
}

/// The response to an acceptable offer in `mode`.
fn accept(offer: Offer, mode: Compression) -> Agreed {
    match mode {
        Compression::Off | Compression::Shared => Agreed {
            dedicated: false,
            // Shared state needs both: a compressor and a decompressor
            // that start afresh at every message can serve every connection.
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            // Accepting an offer that limits the server's window means
            // repeating the limit (§7.1.2.1).
            server_max_window_bits: offer.server_max_window_bits,
            client_max_window_bits: None,
        },
        Compression::Dedicated { window_bits } => {
            let server_bits = match offer.server_max_window_bits {
                Some(offered) => Some(offered.min(window_bits)),
                None if window_bits < MAX_WINDOW_BITS => Some(window_bits),
                None => None,
            };
            // The client's window can be limited only when it offered the
            // parameter (§7.1.2.2); below 9 it could not be honoured by a
            // zlib compressor on the client either, so 9 is the floor asked.
            let client_bits = offer.client_max_window_bits.map(|offered| {
                let ours = window_bits.max(MIN_DEFLATE_WINDOW_BITS);
                offered.map_or(ours, |offered| offered.min(ours))
            });
            Agreed {
                dedicated: true,
                server_no_context_takeover: offer.server_no_context_takeover,
                client_no_context_takeover: offer.client_no_context_takeover,
                server_max_window_bits: server_bits,
                client_max_window_bits: client_bits,
            }
        }
    }
}

/// Parses one extension of the list; `None` unless it is a valid
/// permessage-deflate offer.
fn parse_offer(extension: &str) -> Option<Offer> {
    let mut parts = split_outside_quotes(extension, ';').map(str::trim);
    if parts.next()? != NAME {
        return None;
    }
    let mut offer = Offer::default();
    for param in parts {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim_end(), Some(unquote(value.trim_start())?)),
            None => (param, None),
        };
        match (name, value) {
            ("server_no_context_takeover", None) if !offer.server_no_context_takeover => {
                offer.server_no_context_takeover = true;
            }
            ("client_no_context_takeover", None) if !offer.client_no_context_takeover => {
                offer.client_no_context_takeover = true;
            }
            ("server_max_window_bits", Some(value)) if offer.server_max_window_bits.is_none() => {
                offer.server_max_window_bits = Some(window_bits(value)?);
            }
            ("client_max_window_bits", value) if offer.client_max_window_bits.is_none() => {
                offer.client_max_window_bits = Some(match value {
                    Some(value) => Some(window_bits(value)?),
                    None => None,
                });
            }
            // Unknown, repeated, or with a value where none belongs (or
            // none where one must be): decline this offer.
            _ => return None,
        }
    }
    Some(offer)
}

/// A window size: 8 to 15, in decimal without a leading zero (§7.1.2.1).
fn window_bits(value: &str) -> Option<u8> {
    if value.len() > 2 || value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// A parameter value: a token, or a quoted string (RFC 7230 §3.2.6) with
/// its quotes and escapes removed. `None` for an empty or unterminated one.
fn unquote(value: &str) -> Option<&str> {
    match value.strip_prefix('"') {
        // The only values this extension defines are digits, so a quoted
        // string with an escape in it cannot be valid anyway.
        Some(rest) => rest.strip_suffix('"').filter(|v| !v.contains(['"', '\\'])),
        None => Some(value),
    }
    .filter(|v| !v.is_empty() && !v.contains(char::is_whitespace))
}

/// Splits at `sep` except inside double quotes.
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in s.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                c if c == sep && !quoted => {
                    rest = Some(&s[i + 1..]);
                    return Some(&s[..i]);
                }
                _ => {}
            }
        }
        rest = None;
        Some(s)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(headers: &[&str], mode: Compression) -> Option<String> {
        let agreed = negotiate(headers.iter().map(|h| h.as_bytes()), mode)?;
        let mut out = Vec::new();
        agreed.write_header(&mut out);
        let line = String::from_utf8(out).expect("ascii");
        Some(
            line.trim_end()
                .trim_start_matches("Sec-WebSocket-Extensions: ")
                .to_owned(),
        )
    }

    const SHARED: &str =
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

    #[test]
    fn a_browser_offer_is_accepted_in_shared_mode_without_context_takeover() {
        let chrome = "permessage-deflate; client_max_window_bits";
        assert_eq!(
            agree(&[chrome], Compression::Shared).as_deref(),
            Some(SHARED)
        );
        assert_eq!(agree(&[chrome], Compression::Off), None);
    }

    #[test]
    fn dedicated_mode_keeps_context_and_limits_windows_it_may() {
        let chrome = "permessage-deflate; client_max_window_bits";
        assert_eq!(
            agree(&[chrome], Compression::dedicated()).as_deref(),
            Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12")
        );
        // Without client_max_window_bits in the offer, the client's window
        // is not ours to limit.
        assert_eq!(
            agree(
                &["permessage-deflate"],
                Compression::Dedicated { window_bits: 15 }
            )
            .as_deref(),
            Some("permessage-deflate")
        );
        assert_eq!(
            agree(
                &["permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9"],
                Compression::Dedicated { window_bits: 12 }
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9")
        );
    }

    #[test]
    fn a_server_window_limit_is_repeated_and_eight_means_uncompressed() {
        let agreed = negotiate(
            [&b"permessage-deflate; server_max_window_bits=8"[..]],
            Compression::Shared,
        )
        .expect("accepted");
        assert_eq!(agreed.server_max_window_bits, Some(8));
        assert!(!agreed.server_compresses());
        let offer = &b"permessage-deflate; server_max_window_bits=\"9\""[..];
        // The shared compressor has the full window: 9 goes uncompressed.
        let agreed = negotiate([offer], Compression::Shared).expect("accepted");
        assert_eq!(agreed.server_max_window_bits, Some(9));
        assert!(!agreed.server_compresses());
        let agreed = negotiate([offer], Compression::dedicated()).expect("accepted");
        assert!(agreed.server_compresses());
        assert_eq!(agreed.server_window_bits(), 9);
        let agreed = negotiate(
            [&b"permessage-deflate; server_max_window_bits=8"[..]],
            Compression::dedicated(),
        )
        .expect("accepted");
        assert!(!agreed.server_compresses());
    }

    #[test]
    fn bad_offers_are_declined_and_the_next_one_tried() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; client_max_window_bits=",
            "permessage-deflate; client_max_window_bits=\"1 0\"",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; mystery",
            "permessage-deflate; client_max_window_bits=\"10",
            "x-webkit-deflate-frame",
        ] {
            assert_eq!(agree(&[bad], Compression::Shared), None, "{bad}");
            if bad.matches('"').count() % 2 == 1 {
                // An open quote runs to the end of the header.
                continue;
            }
            // A good offer after it, in the same header or the next.
            let list = format!("{bad}, permessage-deflate");
            assert_eq!(
                agree(&[&list], Compression::Shared).as_deref(),
                Some(SHARED),
                "{list}"
            );
            assert_eq!(
                agree(&[bad, "permessage-deflate"], Compression::Shared).as_deref(),
                Some(SHARED),
                "{bad}"
            );
        }
    }

    #[test]
    fn offers_are_tried_in_order() {
        let offers = "permessage-deflate; server_max_window_bits=10, permessage-deflate";
        let agreed = negotiate([offers.as_bytes()], Compression::Shared).expect("accepted");
        assert_eq!(agreed.server_max_window_bits, Some(10));
    }

    #[test]
    fn quoted_commas_do_not_split_extensions() {
        let offers = "foo; bar=\"a,b\", permessage-deflate";
        assert_eq!(
            agree(&[offers], Compression::Shared).as_deref(),
            Some(SHARED)
        );
    }
}
