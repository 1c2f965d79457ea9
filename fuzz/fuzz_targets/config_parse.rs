//! Arbitrary text through `config::load_str` (what `portcullis check` and every
//! reload run): it returns a config or `file:line:col` errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A directory that does not exist: relative key/cert/users paths fail to read.
    let path = std::path::Path::new("/nonexistent-portcullis-fuzz/proxy.toml");
    match portcullis::config::load_str(path, text) {
        Ok(cfg) => {
            // A compiled config is usable: its routes answer a lookup.
            let _ = cfg
                .routes
                .find(Some("a.example"), &http::Method::GET, "/a/b");
        }
        Err(errs) => {
            for e in &errs.0 {
                assert!(e.line >= 1 && e.col >= 1, "{e:?}");
                let _ = e.to_string();
            }
        }
    }
});
