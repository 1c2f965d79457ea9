//! RSA public keys from their components (JWK `n` and `e`, SPEC §3), held as the DER
//! of a PKCS#1 `RSAPublicKey` so aws-lc parses each once ([`super::VerifyKey`]).

use jsonwebtoken::DecodingKey;

/// An RSA verification key from its modulus and exponent (big-endian), held as DER
/// so that it can be parsed once (see [`ParsedKeys`]).
pub fn rsa_from_components(n: &[u8], e: &[u8]) -> Result<DecodingKey, String> {
    if n.len() > 2048 || e.len() > 64 {
        return Err("RSA key too large".into());
    }
    Ok(DecodingKey::from_rsa_der(&rsa_public_key_der(n, e)))
}

/// DER of a PKCS#1 `RSAPublicKey` (SEQUENCE { modulus INTEGER, exponent INTEGER })
/// from big-endian unsigned `n` and `e`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, n: usize) {
        match n {
            0..=0x7f => out.push(n as u8),
            0x80..=0xff => out.extend([0x81, n as u8]),
            _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
    }
    fn int(out: &mut Vec<u8>, v: &[u8]) {
        let v = match v.iter().position(|&b| b != 0) {
            Some(i) => &v[i..],
            None => &[0u8][..],
        };
        let pad = v[0] & 0x80 != 0;
        out.push(0x02);
        len(out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 8);
    int(&mut body, n);
    int(&mut body, e);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(0x30);
    len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsa_der_from_components_matches_aws_lc() {
        use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RsaPublicKeyComponents};
        // Small values: leading zeros dropped, a high bit gets a 0x00 pad.
        assert_eq!(
            rsa_public_key_der(&[0, 0x80, 1], &[1, 0, 1]),
            [0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01]
        );
        let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("generate");
        let comps = RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
        assert_eq!(
            rsa_public_key_der(&comps.n, &comps.e),
            kp.public_key().as_ref(),
            "PKCS#1 RSAPublicKey DER"
        );
    }
}
