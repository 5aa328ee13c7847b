//! The static keys of `auth.jwt`: `secret` and the `public_key` PEM file, read at compile.

use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// A family's name for messages.
pub(super) fn family_name(family: AlgorithmFamily) -> &'static str {
    match family {
        AlgorithmFamily::Hmac => "HMAC",
        AlgorithmFamily::Rsa => "RSA",
        AlgorithmFamily::Ec => "EC",
        AlgorithmFamily::Ed => "Ed25519",
    }
}

/// Reads a PEM public key (`PUBLIC KEY` or `RSA PUBLIC KEY`) and checks that the listed
/// public-key `algorithms` can use it. `from_jwks`: a JWKS serves the other families.
pub(super) fn public_key(
    pem: &[u8],
    algorithms: &[Algorithm],
    from_jwks: bool,
) -> Result<DecodingKey, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "is not a PEM file".to_owned())?;
    let label = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("-----BEGIN "))
        .and_then(|rest| rest.strip_suffix("-----"))
        .ok_or("is not a PEM file")?;
    if !matches!(label, "PUBLIC KEY" | "RSA PUBLIC KEY") {
        return Err(format!(
            "is a PEM `{label}`, not a public key (`-----BEGIN PUBLIC KEY-----`)"
        ));
    }
    let key = DecodingKey::from_rsa_pem(pem)
        .or_else(|_| DecodingKey::from_ec_pem(pem))
        .or_else(|_| DecodingKey::from_ed_pem(pem))
        .map_err(|_| "is not an RSA, EC (P-256, P-384) or Ed25519 public key".to_owned())?;
    let family = key.family();
    let public: Vec<Algorithm> = algorithms
        .iter()
        .copied()
        .filter(|a| a.family() != AlgorithmFamily::Hmac)
        .collect();
    if !public.iter().any(|a| a.family() == family) {
        return Err(format!(
            "is an {} key, which none of the listed algorithms uses",
            family_name(family)
        ));
    }
    if !from_jwks && let Some(other) = public.iter().find(|a| a.family() != family) {
        return Err(format!(
            "is an {} key, but `{other:?}` needs an {} key (list `jwks_url` for other keys)",
            family_name(family),
            family_name(other.family())
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{b64}\n-----END {label}-----\n")
    }

    #[test]
    fn keys_and_their_families() {
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("ec");
        let ec_pem = ec.public_key_pem();
        let key = public_key(ec_pem.as_bytes(), &[Algorithm::ES256], false).expect("ec key");
        assert_eq!(key.family(), AlgorithmFamily::Ec);
        let err = public_key(ec_pem.as_bytes(), &[Algorithm::RS256], false).err();
        assert!(err.is_some_and(|e| e.contains("is an EC key")));
        let err = public_key(
            ec_pem.as_bytes(),
            &[Algorithm::ES256, Algorithm::RS256],
            false,
        );
        assert!(err.is_err_and(|e| e.contains("`RS256` needs an RSA key")));
        assert!(
            public_key(
                ec_pem.as_bytes(),
                &[Algorithm::ES256, Algorithm::RS256],
                true
            )
            .is_ok()
        );

        let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("ed");
        let key = public_key(ed.public_key_pem().as_bytes(), &[Algorithm::EdDSA], false);
        assert_eq!(key.map(|k| k.family()).ok(), Some(AlgorithmFamily::Ed));

        let private = ec.serialize_pem();
        let err = public_key(private.as_bytes(), &[Algorithm::ES256], false).err();
        assert!(err.is_some_and(|e| e.contains("not a public key")));
        assert!(public_key(b"hello", &[Algorithm::ES256], false).is_err());
        let junk = pem("PUBLIC KEY", b"junk");
        assert!(public_key(junk.as_bytes(), &[Algorithm::ES256], false).is_err());
    }
}
