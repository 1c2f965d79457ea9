//! The chunked transfer coding (RFC 9112 §7.1) as hyper 1.12's decoder reads it, byte
//! for byte with its limits: chunk extensions, trailers, and which byte it fails on.
//! The framer ([`super::framer`]) feeds it a chunked body's bytes.

/// hyper's `CHUNKED_EXTENSIONS_LIMIT`: chunk-extension bytes per body.
const EXTENSIONS_LIMIT: u64 = 16 * 1024;
/// hyper's `TRAILER_LIMIT`: trailer bytes per body (no `max_header_size` is set).
const TRAILER_LIMIT: usize = 16 * 1024;
/// hyper's `DEFAULT_MAX_HEADERS`, which also bounds the trailer fields.
const MAX_TRAILERS: usize = 100;

/// The chunked decoder's state, byte for byte as hyper's `ChunkedState`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Chunked {
    at: Ch,
    size: u64,
    extensions: u64,
    trailer_bytes: usize,
    trailer_fields: usize,
    in_trailers: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Ch {
    #[default]
    Start,
    Size,
    SizeLws,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    Trailer,
    TrailerLf,
    EndCr,
    EndLf,
}

impl Chunked {
    /// Bytes used, and `Some(true)` at the end of the body, `Some(false)` when all of
    /// `data` was used, `None` when the last byte used is one hyper fails on.
    pub(super) fn feed(&mut self, data: &[u8]) -> (usize, Option<bool>) {
        let mut i = 0;
        while let Some(&b) = data.get(i) {
            if self.at == Ch::Data {
                let k = self.size.min((data.len() - i) as u64);
                self.size -= k;
                i += usize::try_from(k).unwrap_or(data.len());
                if self.size == 0 {
                    self.at = Ch::DataCr;
                }
                continue;
            }
            i += 1;
            match self.byte(b) {
                Ok(Some(next)) => self.at = next,
                Ok(None) => return (i, Some(true)),
                Err(()) => return (i, None),
            }
        }
        (i, Some(false))
    }

    /// One byte outside chunk data: the next state, `None` at the end of the body.
    fn byte(&mut self, b: u8) -> Result<Option<Ch>, ()> {
        use Ch::*;
        let next = match (self.at, b) {
            (Start, _) => {
                self.size = hex(b)?;
                Size
            }
            (Size | SizeLws, b'\t' | b' ') => SizeLws,
            (Size | SizeLws, b';') => Extension,
            (Size | SizeLws, b'\r') => SizeLf,
            (Size, _) => {
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(hex(b).ok()?))
                    .ok_or(())?;
                Size
            }
            (SizeLws, _) => return Err(()),
            (Extension, b'\r') => SizeLf,
            (Extension, b'\n') => return Err(()),
            (Extension, _) => {
                self.extensions += 1;
                if self.extensions >= EXTENSIONS_LIMIT {
                    return Err(());
                }
                Extension
            }
            (SizeLf, b'\n') if self.size == 0 => EndCr,
            (SizeLf, b'\n') => Data,
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Start,
            (Trailer, _) => {
                self.trailer_byte()?;
                if b == b'\r' {
                    TrailerLf
                } else {
                    Trailer
                }
            }
            (TrailerLf, b'\n') => {
                if self.trailer_fields >= MAX_TRAILERS {
                    return Err(());
                }
                self.trailer_fields += 1;
                self.trailer_byte()?;
                EndCr
            }
            (EndCr, b'\r') => {
                if self.in_trailers {
                    self.trailer_byte()?;
                }
                EndLf
            }
            (EndCr, _) => {
                if self.in_trailers {
                    self.trailer_byte()?;
                } else {
                    self.in_trailers = true;
                    self.trailer_bytes = 1;
                }
                Trailer
            }
            (EndLf, b'\n') => {
                if self.in_trailers {
                    self.trailer_byte()?;
                }
                return Ok(None);
            }
            // Chunk data never comes here (`feed` skips it whole).
            (SizeLf | Data | DataCr | DataLf | TrailerLf | EndLf, _) => return Err(()),
        };
        Ok(Some(next))
    }

    fn trailer_byte(&mut self) -> Result<(), ()> {
        self.trailer_bytes += 1;
        if self.trailer_bytes >= TRAILER_LIMIT {
            Err(())
        } else {
            Ok(())
        }
    }
}

fn hex(b: u8) -> Result<u64, ()> {
    char::from(b).to_digit(16).map(u64::from).ok_or(())
}
