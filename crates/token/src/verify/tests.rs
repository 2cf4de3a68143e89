use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;
use crate::{Audience, SigningKey};

const ISS: &str = "xtreem://lab/vo/demo";
const NOW: u64 = 1_900_000_000;

fn setup() -> (SigningKey, Verifier) {
    let key = SigningKey::generate("demo-1").unwrap();
    let mut v = Verifier::new(vec![Audience::ANY_SITE.into(), Audience::site("lab")]);
    v.trust(ISS, key.public());
    (key, v)
}

fn claims() -> Claims {
    Claims::new(ISS, "alice", Audience::ANY_SITE, NOW, 3600).with_groups(vec!["/demo".into()])
}

/// A token with the given header and payload JSON, signed with garbage.
fn forge(header: &str, payload: &serde_json::Value) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(b"sig")
    )
}

#[test]
fn a_good_token_verifies() {
    let (key, v) = setup();
    let token = key.sign(&claims()).unwrap();
    let c = v.verify_at(&token, NOW + 5).unwrap();
    assert_eq!((c.sub.as_str(), c.vo()), ("alice", Some("demo")));
}

#[test]
fn an_expired_token_is_refused() {
    let (key, v) = setup();
    let token = key.sign(&claims()).unwrap();
    assert!(matches!(
        v.verify_at(&token, NOW + 3600 + 61),
        Err(TokenError::Expired(61))
    ));
    // Within the skew it still passes.
    assert!(v.verify_at(&token, NOW + 3600 + 30).is_ok());
}

#[test]
fn nbf_more_than_60s_ahead_is_refused() {
    let (key, v) = setup();
    let mut c = claims();
    c.nbf = NOW + 120;
    let token = key.sign(&c).unwrap();
    assert!(matches!(
        v.verify_at(&token, NOW),
        Err(TokenError::NotYetValid(_))
    ));
    c.nbf = NOW + 30;
    assert!(v.verify_at(&key.sign(&c).unwrap(), NOW).is_ok());
}

#[test]
fn a_token_signed_by_an_unknown_key_is_refused() {
    let (_, v) = setup();
    let stranger = SigningKey::generate("demo-1").unwrap();
    let token = stranger.sign(&claims()).unwrap();
    assert_eq!(v.verify_at(&token, NOW), Err(TokenError::Signature));
    let other_kid = SigningKey::generate("demo-9").unwrap();
    let token = other_kid.sign(&claims()).unwrap();
    assert!(matches!(
        v.verify_at(&token, NOW),
        Err(TokenError::UnknownKey { .. })
    ));
}

#[test]
fn alg_none_and_hs256_are_refused() {
    let (_, v) = setup();
    let payload = serde_json::to_value(claims()).unwrap();
    for header in [
        r#"{"alg":"none","kid":"demo-1"}"#,
        r#"{"alg":"HS256","kid":"demo-1","typ":"JWT"}"#,
        r#"{"alg":"RS256","kid":"demo-1"}"#,
        r#"{"alg":"ES256","kid":"demo-1"}"#,
    ] {
        let err = v.verify_at(&forge(header, &payload), NOW).unwrap_err();
        assert!(matches!(err, TokenError::Algorithm(_)), "{header}: {err}");
    }
}

#[test]
fn a_missing_or_wrong_audience_is_refused() {
    let (key, v) = setup();
    let mut c = claims();
    c.aud = vec!["https://some-other-grid".into()];
    assert!(matches!(
        v.verify_at(&key.sign(&c).unwrap(), NOW),
        Err(TokenError::Audience(_))
    ));
    let mut payload = serde_json::to_value(claims()).unwrap();
    payload.as_object_mut().unwrap().remove("aud");
    let header = r#"{"alg":"EdDSA","kid":"demo-1","typ":"JWT"}"#;
    // Re-sign properly without aud: the claim is required.
    let token = {
        let encoded = jsonwebtoken::encode(
            &{
                let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
                h.kid = Some("demo-1".into());
                h
            },
            &payload,
            &jsonwebtoken::EncodingKey::from_ed_der(key.pkcs8()),
        )
        .unwrap();
        let _ = header;
        encoded
    };
    let err = v.verify_at(&token, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            TokenError::MissingClaim("aud") | TokenError::Malformed(_)
        ),
        "{err}"
    );
}

#[test]
fn an_untrusted_issuer_is_refused() {
    let (key, v) = setup();
    let mut c = claims();
    c.iss = "xtreem://lab/vo/other".into();
    assert!(matches!(
        v.verify_at(&key.sign(&c).unwrap(), NOW),
        Err(TokenError::UnknownIssuer(_))
    ));
}

#[test]
fn garbage_never_panics() {
    let (_, v) = setup();
    let mut seed = 7u64;
    for len in 0..2000usize {
        let text: String = (0..len % 200)
            .map(|_| {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let alphabet = b"abcXYZ019-_.=";
                alphabet[(seed >> 33) as usize % alphabet.len()] as char
            })
            .collect();
        assert!(v.verify_at(&text, NOW).is_err());
    }
    assert!(v.verify_at(&"a".repeat(20_000), NOW).is_err());
}

#[test]
fn a_remembered_credential_still_expires_and_a_refused_one_is_not_remembered() {
    let (key, v) = setup();
    let token = key.sign(&claims()).unwrap();
    assert!(v.verify_at(&token, NOW).is_ok());
    assert!(v.verify_at(&token, NOW + 10).is_ok());
    assert!(matches!(
        v.verify_at(&token, NOW + 3600 + 61),
        Err(TokenError::Expired(_))
    ));
    // A forged token is refused every time, not just the first.
    let stranger = SigningKey::generate("demo-1")
        .unwrap()
        .sign(&claims())
        .unwrap();
    assert_eq!(v.verify_at(&stranger, NOW), Err(TokenError::Signature));
    assert_eq!(v.verify_at(&stranger, NOW), Err(TokenError::Signature));
}

#[test]
fn a_new_verifier_without_the_key_refuses_what_the_old_one_remembered() {
    let (key, v) = setup();
    let token = key.sign(&claims()).unwrap();
    assert!(v.verify_at(&token, NOW).is_ok());
    // The key was withdrawn: the node builds a verifier without it.
    let fresh = Verifier::new(vec![Audience::ANY_SITE.into()]);
    assert!(fresh.verify_at(&token, NOW).is_err());
}
