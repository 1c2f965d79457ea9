//! `normalize` on every path of a small segment grammar (against a model) and on
//! random ones (against the invariants), and the UTF-8 check against std.

use super::*;

/// A second, deliberately different implementation for the segment grammar of
/// [`generated_paths_match_model`]: a stack of decoded segments.
fn model(atoms: &[&str]) -> Result<String, PathError> {
    let mut stack: Vec<String> = Vec::new();
    let mut trailing = false;
    for atom in atoms {
        let decoded = atom
            .replace("%2e", ".")
            .replace("%2E", ".")
            .replace("%41", "A");
        match decoded.as_str() {
            "" | "." => trailing = true,
            ".." => {
                stack.pop().ok_or(AboveRoot)?;
                trailing = true;
            }
            _ => {
                stack.push(decoded);
                trailing = false;
            }
        }
    }
    let mut out = String::new();
    for s in &stack {
        out.push('/');
        out.push_str(s);
    }
    if trailing || stack.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[test]
fn generated_paths_match_model() {
    let atoms = [
        "a", ".", "..", "%2e", "", "%41", "%20", "%2E%2e", "b;c", ".%2E",
    ];
    let n = atoms.len();
    let (mut ok, mut err) = (0, 0);
    for len in 1..=5u32 {
        for code in 0..n.pow(len) {
            let mut picked = Vec::new();
            let mut c = code;
            for _ in 0..len {
                picked.push(atoms[c % n]);
                c /= n;
            }
            let path: String = picked.iter().flat_map(|a| ["/", a]).collect();
            let got = normalize(&path);
            assert_eq!(
                got.as_deref().map_err(|e| *e),
                model(&picked).as_deref().map_err(|e| *e),
                "{path:?}"
            );
            match got {
                Ok(norm) => {
                    ok += 1;
                    assert!(norm.starts_with('/') && !norm.contains("//"));
                    assert!(segments(&norm).all(|s| s != "." && s != ".."));
                    assert!(!has_unreserved_escape(&norm), "{path:?} -> {norm:?}");
                    let again = normalize(&norm);
                    assert!(matches!(&again, Ok(Cow::Borrowed(x)) if *x == norm));
                }
                Err(_) => err += 1,
            }
        }
    }
    assert!(ok > 50_000 && err > 10_000, "ok {ok} err {err}");
}

/// xorshift64*: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33;
        usize::try_from(x).unwrap_or(0) % n
    }
}

#[test]
fn random_paths_keep_invariants() {
    let pieces = [
        "/",
        "/",
        "/",
        ".",
        ".",
        "a",
        "b",
        "%",
        "2",
        "e",
        "E",
        "f",
        "F",
        "5",
        "c",
        "%2e",
        "%2E",
        "%2F",
        "%5c",
        "%41",
        "%7e",
        "%20",
        "%25",
        "%00",
        "\\",
        "\0",
        ";",
        "\u{e9}",
        "%C3",
        "%A9",
        "%C3%A9",
        "%E2%82%AC",
        "%C0%AE",
        "%FF",
        "..",
        "//",
        "*",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seen = [0usize; 9];
    for _ in 0..50_000 {
        let mut p = String::new();
        if rng.below(10) != 0 {
            p.push('/');
        }
        for _ in 0..rng.below(16) {
            p.push_str(pieces[rng.below(pieces.len())]);
        }
        let slot = match normalize(&p) {
            Ok(n) => {
                assert!(n.starts_with('/') && !n.contains("//"), "{p:?} -> {n:?}");
                assert!(segments(&n).all(|s| s != "." && s != ".."), "{p:?}");
                assert!(!has_unreserved_escape(&n), "{p:?} -> {n:?}");
                assert!(n.len() <= p.len(), "{p:?} -> {n:?}");
                assert_eq!(matches!(n, Cow::Borrowed(_)), n == p, "{p:?}");
                let again = normalize(&n);
                assert!(matches!(&again, Ok(Cow::Borrowed(x)) if *x == n), "{p:?}");
                0
            }
            Err(e) => 1 + e as usize,
        };
        if let Some(s) = seen.get_mut(slot) {
            *s += 1;
        }
    }
    // Every outcome but TooLong was exercised.
    assert!(seen.iter().take(8).all(|&c| c > 0), "{seen:?}");
}

#[test]
fn utf8_check_agrees_with_std() {
    // Random sequences of up to 4 bytes, then every 2-byte sequence, against std.
    let mut rng = Rng(7);
    for _ in 0..200_000 {
        let len = 1 + rng.below(4);
        let bytes: Vec<u8> = (0..len)
            .map(|_| u8::try_from(rng.below(256)).unwrap_or(0))
            .collect();
        let mut check = Utf8Check::default();
        let ours = bytes
            .iter()
            .try_for_each(|&b| check.push(b))
            .and_then(|()| check.finish());
        assert_eq!(
            ours.is_ok(),
            std::str::from_utf8(&bytes).is_ok(),
            "{bytes:02X?}"
        );
    }
    for b0 in 0x80..=0xFFu8 {
        for b1 in 0..=0xFFu8 {
            let mut check = Utf8Check::default();
            let ours = check
                .push(b0)
                .and_then(|()| check.push(b1))
                .and_then(|()| check.finish());
            assert_eq!(
                ours.is_ok(),
                std::str::from_utf8(&[b0, b1]).is_ok(),
                "{b0:02X} {b1:02X}"
            );
        }
    }
}
