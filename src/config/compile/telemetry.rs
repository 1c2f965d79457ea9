//! `[telemetry]` -> [`Telemetry`] (SPEC §11): the OTLP/HTTP collector's base URL
//! (`http` or `https`, a host, no query; a trailing `/` dropped, so spans go to
//! `{otlp_endpoint}/v1/traces` as with `OTEL_EXPORTER_OTLP_ENDPOINT`), the service
//! name and the sampling ratio in `[0, 1]`. Each bad value is an error at its span.

use super::Cx;
use crate::config::file::RawTelemetry;
use crate::config::values::EnvStr;
use crate::config::Telemetry;
use crate::defaults;
use toml::Spanned;

impl RawTelemetry {
    /// `None` when a key is invalid (reported).
    pub(super) fn compile(self, cx: &mut Cx<'_>) -> Option<Telemetry> {
        let endpoint = endpoint(cx, &self.otlp_endpoint);
        let service_name = match &self.service_name {
            None => Some(defaults::TELEMETRY_SERVICE_NAME.to_owned()),
            Some(s) if s.get_ref().trim().is_empty() => {
                cx.rep.at(s.span(), "`service_name` must not be empty");
                None
            }
            Some(s) => Some(s.get_ref().0.clone()),
        };
        let sample_ratio = match &self.sample_ratio {
            None => Some(defaults::TELEMETRY_SAMPLE_RATIO),
            Some(r) if (0.0..=1.0).contains(r.get_ref()) => Some(*r.get_ref()),
            Some(r) => {
                cx.rep.at(
                    r.span(),
                    format!(
                        "`sample_ratio` must be between 0 and 1 (got {})",
                        r.get_ref()
                    ),
                );
                None
            }
        };
        Some(Telemetry {
            otlp_endpoint: endpoint?,
            service_name: service_name?,
            sample_ratio: sample_ratio?,
        })
    }
}

/// The base URL without its trailing `/`s, or an error at `s`.
fn endpoint(cx: &mut Cx<'_>, s: &Spanned<EnvStr>) -> Option<String> {
    let text = s.get_ref().trim_end_matches('/');
    match check(text) {
        Ok(()) => Some(text.to_owned()),
        Err(why) => {
            cx.rep.at(
                s.span(),
                format!(
                    "`otlp_endpoint` must be an http:// or https:// URL such as \
                     `http://127.0.0.1:4318` ({why})"
                ),
            );
            None
        }
    }
}

fn check(text: &str) -> Result<(), &'static str> {
    let uri: http::Uri = text.parse().map_err(|_| "not a URL")?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err("the scheme is not http or https"),
        None => return Err("no scheme"),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("no host");
    }
    if uri.query().is_some() {
        return Err("it has a query");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn endpoints() {
        for ok in [
            "http://127.0.0.1:4318",
            "https://otel.example.com",
            "http://[::1]:4318/otlp",
        ] {
            assert_eq!(super::check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1:4318",
            "grpc://127.0.0.1:4317",
            "http://",
            "not a url",
            "http://h:4318/?x=1",
            "",
        ] {
            assert!(super::check(bad).is_err(), "{bad}");
        }
    }
}
