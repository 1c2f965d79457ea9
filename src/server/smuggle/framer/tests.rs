//! Table tests for the framer, each also checked under every way of cutting the
//! bytes into two reads and under one-byte reads.

use super::*;

/// What a connection's bytes come to: the bytes hyper may have, how it ended, and
/// the number of heads cleared. Requests that may switch protocols are answered "no".
fn run(max: usize, reads: &[&[u8]]) -> (Vec<u8>, Event, u32) {
    let mut f = Framer::new(max);
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut last = Event::More;
    for r in reads {
        pending.extend_from_slice(r);
        loop {
            let s = f.step(&pending);
            out.extend_from_slice(&pending[..s.cleared]);
            pending.drain(..s.cleared);
            last = s.event;
            match s.event {
                Event::Hold => f.resume(),
                Event::More | Event::Partial => break,
                Event::Refuse(_) | Event::Broken => return (out, last, f.heads()),
            }
        }
    }
    (out, last, f.heads())
}

/// `run` over `bytes` in one read, and checks every other cut gives the same.
fn judge(max: usize, bytes: &[u8]) -> (Vec<u8>, Event, u32) {
    let whole = run(max, &[bytes]);
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        assert_eq!(
            run(max, &[a, b]),
            whole,
            "cut at {cut} of {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(run(max, &singles), whole, "one-byte reads");
    whole
}

const MAX: usize = 65536;

#[test]
fn keep_alive_sequences_are_framed_whole() {
    for (bytes, heads) in [
        (&b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"[..], 2),
        (b"\r\n\r\nGET / HTTP/1.1\r\n\r\n\nGET / HTTP/1.1\r\n\r\n", 2),
        (b"GET / HTTP/1.1\nHost: a\n\nGET / HTTP/1.1\r\nX: y\n\r\n", 2),
        (b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n", 2),
        (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n00000000000000000000\r\nX-T: 1\r\nY: 2\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            2,
        ),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000000005 \t;x\r\nhello\r\n0\r\n\r\n", 1),
        // Upgrade requests answered without a switch: framing goes on after them.
        (b"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\nGET / HTTP/1.1\r\n\r\n", 2),
        (b"POST / HTTP/1.1\r\nUpgrade: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n", 2),
    ] {
        let (out, ev, n) = judge(MAX, bytes);
        assert_eq!((out.as_slice(), ev, n), (bytes, Event::More, heads), "{:?}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn header_looking_bytes_in_a_body_are_body() {
    let b = b"POST / HTTP/1.1\r\nContent-Length: 52\r\n\r\nX\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert_eq!(judge(MAX, b), (b.to_vec(), Event::More, 1));
    let c =
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nContent-Length: \r\n0\r\n\r\n";
    assert_eq!(judge(MAX, c), (c.to_vec(), Event::More, 1));
}

#[test]
fn ambiguous_heads_are_refused_wherever_they_come() {
    let bad: &[&[u8]] = &[
        b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\nContent-Length: 3\ncontent-length: 3\n\nabc",
    ];
    let before: &[&[u8]] = &[
        b"",
        b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        b"\r\n\r\n",
        b"\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000000005\r\nhello\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
        b"GET / HTTP/1.1\nHost: a\n\n",
        b"CONNECT a:1 HTTP/1.1\r\n\r\n",
    ];
    for b in bad {
        for p in before {
            let bytes = [*p, b].concat();
            let (out, ev, _) = judge(MAX, &bytes);
            assert_eq!(
                ev,
                Event::Refuse(Refusal::BadRequest),
                "{:?}",
                String::from_utf8_lossy(&bytes)
            );
            // Not a byte of the refused head was cleared.
            assert_eq!(out, *p);
        }
    }
}

#[test]
fn heads_hyper_refuses_are_refused_with_its_status() {
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    for (bytes, why) in [
        (
            b"GET / HTTP/1.1\r\nX-A : b\r\n\r\n".to_vec(),
            Refusal::BadRequest,
        ),
        (b"\rGET / HTTP/1.1\r\n\r\n".to_vec(), Refusal::BadRequest),
        (
            b"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n".to_vec(),
            Refusal::BadRequest,
        ),
        (
            format!("GET / HTTP/1.1\r\n{many}\r\n").into_bytes(),
            Refusal::TooLarge,
        ),
        (
            [&b"\r\n".repeat(513)[..], b"GET / HTTP/1.1\r\n\r\n"].concat(),
            Refusal::BadRequest,
        ),
    ] {
        let (out, ev, n) = judge(MAX, &bytes);
        assert_eq!(
            (ev, n),
            (Event::Refuse(why), 0),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(out.iter().all(|b| *b == b'\r' || *b == b'\n'));
        assert!(out.len() <= MAX_LEAD);
    }
}

#[test]
fn head_size_limit_counts_leading_empty_lines() {
    let head = |len: usize| {
        let pad = len - b"GET / HTTP/1.1\r\nX: \r\n\r\n".len();
        format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(pad)).into_bytes()
    };
    assert_eq!(run(100, &[&head(100)]).1, Event::More);
    assert_eq!(run(100, &[&head(101)]).1, Event::Refuse(Refusal::TooLarge));
    assert_eq!(run(100, &[b"\r\n", &head(98)]).1, Event::More);
    assert_eq!(
        run(100, &[b"\r\n", &head(99)]).1,
        Event::Refuse(Refusal::TooLarge)
    );
    // An endless head is refused once it passes the limit, not buffered on.
    let endless = vec![b'a'; 101];
    let (out, ev, _) = run(100, &[b"GET / HTTP/1.1\r\nX: ", &endless]);
    assert_eq!((out.len(), ev), (0, Event::Refuse(Refusal::TooLarge)));
}

#[test]
fn broken_bodies_stop_at_the_byte_hyper_fails_on() {
    let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (body, at) in [
        (&b"5\nhello\r\n0\r\n\r\n"[..], 2),
        (b"5\r\nhello\n0\r\n\r\n", 9),
        (b"5\rhello", 3),
        (b"x\r\n", 1),
        (b"-5\r\n", 1),
        (b"0x5\r\n", 2),
        (b"5 x\r\n", 3),
        (b"5;a\nb\r\n", 4),
        (b"10000000000000000\r\n", 17),
        (b"5\r\nhelloX", 9),
        (b"0\r\nX: a\rb", 9),
    ] {
        let bytes = [&head[..], body].concat();
        let (out, ev, _) = judge(MAX, &bytes);
        assert_eq!(ev, Event::Broken, "{:?}", String::from_utf8_lossy(body));
        assert_eq!(
            out.len(),
            head.len() + at,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    // hyper's limits: 16 KiB of chunk extensions, 16 KiB or 100 fields of trailers.
    let ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(16_383));
    assert_eq!(run(MAX, &[head, ext.as_bytes()]).1, Event::More);
    let ext = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(16_384));
    assert_eq!(run(MAX, &[head, ext.as_bytes()]).1, Event::Broken);
    let fields: String = (0..100).map(|i| format!("T{i}: v\r\n")).collect();
    assert_eq!(
        run(MAX, &[head, format!("0\r\n{fields}\r\n").as_bytes()]).1,
        Event::More
    );
    let fields: String = (0..101).map(|i| format!("T{i}: v\r\n")).collect();
    assert_eq!(
        run(MAX, &[head, format!("0\r\n{fields}\r\n").as_bytes()]).1,
        Event::Broken
    );
    let big = format!("0\r\nT: {}\r\n\r\n", "v".repeat(16_400));
    assert_eq!(run(MAX, &[head, big.as_bytes()]).1, Event::Broken);
}

#[test]
fn requests_that_may_switch_protocols_hold_what_follows() {
    let mut f = Framer::new(MAX);
    let up = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
    let bytes = [&up[..], b"\x81\x05hello"].concat();
    let s = f.step(&bytes);
    assert_eq!(
        s,
        Step {
            cleared: up.len(),
            event: Event::Hold
        }
    );
    assert_eq!(f.held(), Some(0));
    assert_eq!(
        f.step(&bytes[up.len()..]),
        Step {
            cleared: 0,
            event: Event::Hold
        }
    );
    f.resume();
    // Not a switch after all: the frame bytes are a (partial) head now.
    assert_eq!(
        f.step(&bytes[up.len()..]),
        Step {
            cleared: 0,
            event: Event::Partial
        }
    );
    assert_eq!(
        f.step(b"\x81\x05hello\r\n\r\n").event,
        Event::Refuse(Refusal::BadRequest)
    );
    // With a body, the hold comes after it.
    let mut f = Framer::new(MAX);
    let b = b"POST / HTTP/1.1\r\nUpgrade: x\r\nContent-Length: 3\r\n\r\nabcGET";
    assert_eq!(
        f.step(b),
        Step {
            cleared: b.len() - 3,
            event: Event::Hold
        }
    );
    let mut f = Framer::new(MAX);
    let c = b"CONNECT a:443 HTTP/1.1\r\n\r\n";
    assert_eq!(
        f.step(c),
        Step {
            cleared: c.len(),
            event: Event::Hold
        }
    );
}
