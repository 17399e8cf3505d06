use super::*;

fn parse(buf: &[u8]) -> Step<Value> {
    decode(buf)
}

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

/// Every reply type, each with its encoding.
fn samples() -> Vec<(&'static [u8], Value)> {
    vec![
        (b"+OK\r\n", Value::Simple("OK".into())),
        (b"+\r\n", Value::Simple(String::new())),
        (
            b"-ERR unknown command\r\n",
            Value::Error("ERR unknown command".into()),
        ),
        (b":0\r\n", Value::Int(0)),
        (b":-42\r\n", Value::Int(-42)),
        (b":9223372036854775807\r\n", Value::Int(i64::MAX)),
        (b"$5\r\nhello\r\n", bulk("hello")),
        (b"$0\r\n\r\n", bulk("")),
        (b"$4\r\na\r\nb\r\n", bulk("a\r\nb")),
        (b"$3\r\n\x00\xff\x01\r\n", Value::Bulk(vec![0, 255, 1])),
        (b"$-1\r\n", Value::Nil),
        (b"*-1\r\n", Value::Nil),
        (b"*0\r\n", Value::Array(vec![])),
        (
            b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n:7\r\n",
            Value::Array(vec![bulk("message"), bulk("ch"), Value::Int(7)]),
        ),
        (
            b"*2\r\n*2\r\n+a\r\n$-1\r\n-WRONGTYPE x\r\n",
            Value::Array(vec![
                Value::Array(vec![Value::Simple("a".into()), Value::Nil]),
                Value::Error("WRONGTYPE x".into()),
            ]),
        ),
    ]
}

#[test]
fn every_type_parses_and_reports_its_length() {
    for (wire, value) in samples() {
        assert_eq!(
            parse(wire),
            Ok(Some((value, wire.len()))),
            "{}",
            wire.escape_ascii()
        );
    }
}

#[test]
fn every_cut_of_every_type_is_partial() {
    for (wire, _) in samples() {
        for cut in 0..wire.len() {
            assert_eq!(
                parse(&wire[..cut]),
                Ok(None),
                "{} cut at {cut}",
                wire.escape_ascii()
            );
        }
    }
}

#[test]
fn pipelined_replies_parse_one_after_another() {
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for (w, v) in samples() {
        wire.extend_from_slice(w);
        expected.push(v);
    }
    let mut got = Vec::new();
    let mut at = 0;
    while let Some((value, n)) = parse(&wire[at..]).unwrap() {
        got.push(value);
        at += n;
    }
    assert_eq!(at, wire.len());
    assert_eq!(got, expected);
}

#[test]
fn a_stream_fed_byte_by_byte_yields_the_same_values() {
    let mut wire = Vec::new();
    for (w, _) in samples() {
        wire.extend_from_slice(w);
    }
    let mut buf = Vec::new();
    let mut got = Vec::new();
    for &byte in &wire {
        buf.push(byte);
        while let Some((value, n)) = parse(&buf).unwrap() {
            got.push(value);
            buf.drain(..n);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(
        got,
        samples().into_iter().map(|(_, v)| v).collect::<Vec<_>>()
    );
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let cases: &[&[u8]] = &[
        b"?\r\n",
        b"hello\r\n",
        b"\r\n",
        b"+OK\n",
        b"+OK\rx\n",
        b"\n",
        b":abc\r\n",
        b":\r\n",
        b":99999999999999999999\r\n",
        b"$abc\r\n",
        b"$-2\r\n",
        b"*-5\r\n",
        b"$3\r\nabcXY",
        b"$3\r\nabc\rX",
        b"*1\r\n?\r\n",
        b"*2\r\n:1\r\n$1\r\nxx\r\n",
    ];
    for case in cases {
        assert!(
            parse(case).is_err(),
            "{} should be an error",
            case.escape_ascii()
        );
    }
}

/// A decoder used for one buffer at a time, as `decode` is.
struct Limited(Decoder);

impl Limited {
    fn parse(&self, buf: &[u8]) -> Step<Value> {
        self.0.clone().decode(buf)
    }
}

#[test]
fn limits_are_enforced_before_allocating() {
    let limited = Decoder {
        max_bulk: 10,
        max_array: 3,
        max_depth: 2,
        max_line: 8,
        ..Decoder::default()
    };
    let parser = Limited(limited);
    assert_eq!(parser.parse(b"$11\r\n"), Err(ParseError::BulkTooLong(11)));
    assert!(parser.parse(b"$10\r\n").unwrap().is_none());
    assert_eq!(parser.parse(b"*4\r\n"), Err(ParseError::ArrayTooLong(4)));
    assert_eq!(
        parser.parse(b"*1\r\n*1\r\n*1\r\n:1\r\n"),
        Err(ParseError::TooDeep)
    );
    assert!(parser.parse(b"*1\r\n*1\r\n:1\r\n").unwrap().is_some());
    assert_eq!(parser.parse(b"+123456789"), Err(ParseError::LineTooLong));
    assert_eq!(
        parser.parse(b"+123456789\r\n"),
        Err(ParseError::LineTooLong)
    );
    assert!(parser.parse(b"+1234567").unwrap().is_none());
    assert!(parser.parse(b"+12345678\r\n").unwrap().is_some());
    // The default refuses a claimed 2^62-byte bulk without allocating it.
    assert!(parse(b"$4611686018427387904\r\n").is_err());
    assert!(parse(b"*4611686018427387904\r\n").is_err());
    // A huge but allowed array count allocates only as elements arrive.
    assert_eq!(parse(b"*1000000\r\n:1\r\n"), Ok(None));
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let wire = b"*1\r\n".repeat(100_000);
    assert_eq!(parse(&wire), Err(ParseError::TooDeep));
}

#[test]
fn pseudo_random_garbage_never_panics() {
    // A tiny xorshift: deterministic and dependency-free.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"+-:$*\r\n0123456789-abc";
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 24) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|i| alphabet[((x >> (i % 8 * 8)) as usize + i) % alphabet.len()])
            .collect();
        let _ = parse(&bytes);
    }
}

#[test]
fn commands_encode_as_arrays_of_bulk_strings() {
    let mut out = Vec::new();
    encode_command(&mut out, &[b"SET", b"k", b"", b"\r\n\x00"]);
    assert_eq!(
        out,
        b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n$3\r\n\r\n\x00\r\n"
    );
    out.clear();
    encode_command(&mut out, &[]);
    assert_eq!(out, b"*0\r\n");
    out.clear();
    let big = vec![b'x'; 1234567];
    encode_command(&mut out, &[&big]);
    assert!(out.starts_with(b"*1\r\n$1234567\r\nxxx"));
}

#[test]
fn encoded_commands_parse_back() {
    let args: [&[u8]; 3] = [b"LPUSH", b"list", b"\x00binary\xff"];
    let mut out = Vec::new();
    encode_command(&mut out, &args);
    let expected = Value::Array(args.iter().map(|a| Value::Bulk(a.to_vec())).collect());
    assert_eq!(parse(&out), Ok(Some((expected, out.len()))));
}

#[test]
fn helpers() {
    assert_eq!(bulk("12").as_int(), Some(12));
    assert_eq!(Value::Int(3).as_int(), Some(3));
    assert_eq!(Value::Simple("OK".into()).as_str(), Some("OK"));
    assert_eq!(bulk("x").as_bytes(), Some(&b"x"[..]));
    assert_eq!(Value::Bulk(vec![0xff]).as_str(), None);
    assert_eq!(Value::Nil.as_bytes(), None);
    assert!(Value::Nil.is_nil());
    assert_eq!(Value::Nil.into_array(), Ok(vec![]));
    assert_eq!(Value::Int(1).into_array(), Err(Value::Int(1)));
    assert_eq!(bulk("y").into_bytes(), Some(b"y".to_vec()));
    assert_eq!(
        format!("{:?}", Value::Bulk(b"a\n".to_vec())),
        "Bulk(b\"a\\n\")"
    );
}

/// Feeds `wire` to one decoder in pieces of `piece` bytes, the way the
/// client reads: the decoder sees the growing buffer and resumes.
fn feed_in_pieces(wire: &[u8], piece: usize) -> Vec<Value> {
    let mut decoder = Decoder::default();
    let mut buf = Vec::new();
    let mut got = Vec::new();
    for chunk in wire.chunks(piece) {
        buf.extend_from_slice(chunk);
        while let Some((value, n)) = decoder.decode(&buf).unwrap() {
            got.push(value);
            buf.drain(..n);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    got
}

#[test]
fn a_large_bulk_reply_in_many_small_pieces_decodes_whole() {
    // 3 MiB of every byte value, CRLFs included, then a small reply behind
    // it in the same stream.
    let payload: Vec<u8> = (0..3 << 20).map(|i: u32| (i * 7 % 251) as u8).collect();
    let mut wire = Vec::new();
    encode_command(&mut wire, &[&payload]);
    wire.extend_from_slice(b":7\r\n");
    for piece in [1000, 4096, 65536] {
        let got = feed_in_pieces(&wire, piece);
        assert_eq!(got.len(), 2, "pieces of {piece}");
        assert_eq!(got[0], Value::Array(vec![Value::Bulk(payload.clone())]));
        assert_eq!(got[1], Value::Int(7));
    }
}

#[test]
fn a_large_array_in_pieces_decodes_whole_and_the_decoder_resumes() {
    // An HGETALL-like reply of 20,000 pairs, fed 1,000 bytes at a time
    // and byte by byte for its first part.
    let items: Vec<Vec<u8>> = (0..40_000)
        .map(|i| format!("field-{i}").into_bytes())
        .collect();
    let args: Vec<&[u8]> = items.iter().map(|i| i.as_slice()).collect();
    let mut wire = Vec::new();
    encode_command(&mut wire, &args);
    let expected = Value::Array(items.iter().map(|i| Value::Bulk(i.clone())).collect());
    assert_eq!(feed_in_pieces(&wire, 1000), std::slice::from_ref(&expected));
    assert_eq!(feed_in_pieces(&wire, 1), [expected]);
}

#[test]
fn a_resumed_decoder_finds_the_same_errors() {
    // Errors after a good start, found whatever the piece size.
    let cases: &[&[u8]] = &[
        b"*3\r\n$3\r\nabc\r\n$3\r\nabcXY",
        b"*2\r\n:1\r\n?\r\n",
        b"*2\r\n*2\r\n:1\r\n:x\r\n",
    ];
    for case in cases {
        for piece in 1..case.len() {
            let mut decoder = Decoder::default();
            let mut buf = Vec::new();
            let mut failed = false;
            for chunk in case.chunks(piece) {
                buf.extend_from_slice(chunk);
                match decoder.decode(&buf) {
                    Ok(None) => {}
                    Ok(Some(v)) => panic!("{} gave {v:?}", case.escape_ascii()),
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            assert!(failed, "{} in pieces of {piece}", case.escape_ascii());
        }
    }
}
