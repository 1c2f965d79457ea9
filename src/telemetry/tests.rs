//! Unit tests of the log filter, the target list and the time format.

use tracing::Level;
use tracing_subscriber::prelude::*;

#[test]
fn capped_directives() {
    let own = |l: &str| {
        super::OWN_TARGETS
            .iter()
            .map(|t| format!("{t}={l},"))
            .collect::<String>()
    };
    let cases = [
        ("debug", format!("{}info", own("debug"))),
        ("TRACE", format!("{}info", own("trace"))),
        ("warn", format!("{}warn", own("warn"))),
        ("off", format!("{}off", own("off"))),
        ("debug,h2=debug", format!("{}info,h2=debug", own("debug"))),
        ("h2", "h2".to_owned()),
        (
            "access=off,debug",
            format!("{}info,access=off", own("debug")),
        ),
        ("rustls=", "rustls=".to_owned()),
        (
            "portcullis::server=trace",
            "portcullis::server=trace".to_owned(),
        ),
        (
            "[conn{peer=1}]=debug",
            "portcullis[conn{peer=1}]=debug,access[conn{peer=1}]=debug,\
             issuer[conn{peer=1}]=debug,[conn{peer=1}]=info"
                .to_owned(),
        ),
        (
            "[conn]",
            "portcullis[conn]=trace,access[conn]=trace,issuer[conn]=trace,[conn]=info".to_owned(),
        ),
    ];
    for (spec, want) in cases {
        assert_eq!(super::capped(spec), want, "{spec}");
    }
}

/// What each `RUST_LOG` lets through, asked of the real filter.
fn enabled(spec: Option<&str>) -> [bool; 7] {
    let sub = tracing_subscriber::registry().with(super::filter(spec));
    tracing::subscriber::with_default(sub, || {
        [
            tracing::enabled!(target: "portcullis::server", Level::DEBUG),
            tracing::enabled!(target: "access", Level::INFO),
            tracing::enabled!(target: "h2::server", Level::DEBUG),
            tracing::enabled!(target: "h2::server", Level::INFO),
            tracing::enabled!(target: "rustls::server", Level::TRACE),
            tracing::enabled!(target: "hyper_util::client", Level::DEBUG),
            tracing::enabled!(target: "redis", Level::WARN),
        ]
    })
}

#[test]
fn third_party_targets_stay_at_info_unless_named() {
    let t = true;
    let f = false;
    assert_eq!(enabled(Some("debug")), [t, t, f, t, f, f, t]);
    assert_eq!(enabled(Some("trace")), [t, t, f, t, f, f, t]);
    assert_eq!(enabled(Some("debug,h2=debug")), [t, t, t, t, f, f, t]);
    assert_eq!(enabled(Some("info,rustls=trace")), [f, t, f, t, t, f, t]);
    assert_eq!(enabled(Some("warn")), [f, f, f, f, f, f, t]);
    assert_eq!(enabled(Some("access=off,debug")), [t, f, f, t, f, f, t]);
    assert_eq!(enabled(Some("info,access=off")), [f, f, f, t, f, f, t]);
    assert_eq!(enabled(None), [f, t, f, t, f, f, t]);
    assert_eq!(enabled(Some("")), [f, t, f, t, f, f, t]);
    // An invalid RUST_LOG falls back to info, as before.
    assert_eq!(enabled(Some("debug,h2=loud")), [f, t, f, t, f, f, t]);
}

/// Every explicit `target:` in `src/` (outside tests) is one of [`super::OWN_TARGETS`], so a new
/// target cannot be capped at info by mistake.
#[test]
fn every_target_in_src_is_our_own() {
    fn walk(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs")
                // Unit-test files (`tests.rs`, `*_tests.rs`) may name any target.
                && !p.file_stem().is_some_and(|s| s.to_string_lossy().ends_with("tests"))
            {
                let text = std::fs::read_to_string(&p).unwrap();
                // Unit tests may name any target.
                let text = text.split("#[cfg(test)]").next().unwrap_or_default();
                for (i, _) in text.match_indices("target: \"") {
                    let rest = &text[i + 9..];
                    let name = rest.split('"').next().unwrap_or_default();
                    out.push((p.display().to_string(), name.to_owned()));
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(found.iter().any(|(_, t)| t == "access"), "{found:?}");
    for (file, target) in found {
        let own = super::OWN_TARGETS
            .iter()
            .any(|o| target == *o || target.starts_with(&format!("{o}::")));
        assert!(own, "{file}: target {target:?} is not in OWN_TARGETS");
    }
}

#[test]
fn rfc3339() {
    assert_eq!(super::rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
    assert_eq!(super::rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
    assert_eq!(
        super::rfc3339(1_795_445_353, 120),
        "2026-11-23T14:49:13.120Z"
    );
}
