//! The one place config code writes to disk: creating the `generate_key` private
//! keys a config lists in [`Config::keys_to_generate`] (a demo convenience: an
//! Ed25519 PKCS#8 PEM, mode 0600, written to a temporary file and renamed, so a
//! reader never sees half a key and a key another process made first is kept).
//!
//! `portcullis` (run), `portcullis token` and a reload call
//! [`load_creating_keys`]; `portcullis check` calls only [`super::load`], so it
//! changes nothing on disk.

use super::{Config, ConfigError, ConfigErrors};
use crate::auth::keys;
use std::path::Path;

/// Loads `path`, first creating the missing `generate_key` keys it names.
pub fn load_creating_keys(path: &Path) -> Result<Config, ConfigErrors> {
    let cfg = super::load(path)?;
    if cfg.keys_to_generate.is_empty() {
        return Ok(cfg);
    }
    let mut errors = Vec::new();
    for k in &cfg.keys_to_generate {
        if let Err(e) = write_generated_key(&k.path) {
            errors.push(ConfigError {
                message: format!("cannot create key `{}`: {e}", k.path.display()),
                ..k.at.clone()
            });
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let cfg = super::load(path)?;
    match cfg.keys_to_generate.first() {
        // Removed again in between: refuse rather than run without the key.
        Some(k) => Err(ConfigErrors(vec![ConfigError {
            message: format!("key `{}` vanished after it was created", k.path.display()),
            ..k.at.clone()
        }])),
        None => Ok(cfg),
    }
}

fn write_generated_key(path: &Path) -> Result<(), String> {
    let pem = keys::generate_ed25519_pem()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| e.to_string())?;
        f.write_all(pem.as_bytes()).map_err(|e| e.to_string())?;
    }
    // Another process may have created it meanwhile: keep theirs.
    if path.exists() {
        let _ = std::fs::remove_file(&tmp);
        return Ok(());
    }
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}
