#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]

use super::*;
use proptest::prelude::*;

fn norm(path: &str) -> Result<String, PathError> {
    normalize_path(path).map(Cow::into_owned)
}

#[test]
fn normalized_paths_are_borrowed() {
    for path in [
        "/",
        "/api/v1/users",
        "/a/",
        "/a%2Fb",
        "/files/x%20y.txt",
        "/..a/b..",
    ] {
        let out = normalize_path(path).unwrap();
        assert!(matches!(out, Cow::Borrowed(_)), "{path}");
        assert_eq!(out, path);
    }
}

#[test]
fn dot_segments_are_resolved() {
    assert_eq!(norm("/public/../admin").unwrap(), "/admin");
    assert_eq!(norm("/public/%2e%2e/admin").unwrap(), "/admin");
    assert_eq!(norm("/public/%2E%2E/admin").unwrap(), "/admin");
    assert_eq!(norm("/a/./b").unwrap(), "/a/b");
    assert_eq!(norm("/a/b/.").unwrap(), "/a/b/");
    assert_eq!(norm("/a/b/..").unwrap(), "/a/");
    assert_eq!(norm("/a/..").unwrap(), "/");
    assert_eq!(norm("/.").unwrap(), "/");
}

#[test]
fn dot_dot_above_root_is_an_error() {
    for path in ["/..", "/%2E%2E/x", "/a/../../x", "/%2e%2e"] {
        let err = norm(path).unwrap_err();
        assert_eq!(err.to_string(), "the path goes above the root with '..'");
    }
}

#[test]
fn repeated_slashes_are_merged_and_trailing_slash_kept() {
    assert_eq!(norm("//a///b").unwrap(), "/a/b");
    assert_eq!(norm("//").unwrap(), "/");
    assert_eq!(norm("/a//").unwrap(), "/a/");
    assert_eq!(norm("/a/").unwrap(), "/a/");
}

#[test]
fn unreserved_escapes_are_decoded_others_uppercased() {
    assert_eq!(norm("/%7euser/%41%2d%5F").unwrap(), "/~user/A-_");
    assert_eq!(norm("/a%2fb").unwrap(), "/a%2Fb");
    assert_eq!(norm("/a%2Fb").unwrap(), "/a%2Fb");
    assert_eq!(norm("/x%3a%20").unwrap(), "/x%3A%20");
}

#[test]
fn encoded_slash_is_not_a_separator() {
    assert_eq!(norm("/a%2F..%2Fb").unwrap(), "/a%2F..%2Fb");
    assert_eq!(norm("/a/%2F/../b").unwrap(), "/a/b");
}

#[test]
fn invalid_inputs_are_errors() {
    for path in ["/%zz", "/a%4", "/%", "/%g1/x", "/a/%2"] {
        let err = norm(path).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the path contains an invalid percent-encoding",
            "{path}"
        );
    }
    assert_eq!(
        norm("a/b").unwrap_err().to_string(),
        "the path must start with '/'"
    );
    assert!(norm("").is_err());
}

fn path_strategy() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/".to_owned()),
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just("%2e".to_owned()),
        Just("%2E".to_owned()),
        Just("%2f".to_owned()),
        Just("%41".to_owned()),
        Just("%7e".to_owned()),
        Just("%3a".to_owned()),
        "[a-z0-9._~-]{1,3}",
        "%[0-9a-fA-F]{2}",
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| format!("/{}", pieces.concat()))
}

proptest! {
    #[test]
    fn normalization_is_idempotent(path in path_strategy()) {
        if let Ok(once) = normalize_path(&path) {
            let twice = normalize_path(&once).unwrap();
            prop_assert!(matches!(twice, Cow::Borrowed(_)));
            prop_assert_eq!(twice.as_ref(), once.as_ref());
        }
    }

    #[test]
    fn output_has_no_dot_segments_or_empty_segments(path in path_strategy()) {
        if let Ok(out) = normalize_path(&path) {
            prop_assert!(out.starts_with('/'));
            prop_assert!(!out.contains("//"), "{}", out);
            let inner = out.strip_suffix('/').unwrap_or(&out);
            for segment in inner.split('/').skip(1) {
                prop_assert!(segment != "." && segment != "..", "{}", out);
                prop_assert!(!segment.is_empty() || inner.is_empty(), "{}", out);
            }
            prop_assert!(!out.contains("/./") && !out.contains("/../"), "{}", out);
        }
    }

    #[test]
    fn decoded_unreserved_never_remain_encoded(path in path_strategy()) {
        if let Ok(out) = normalize_path(&path) {
            let bytes = out.as_bytes();
            for (i, _) in out.match_indices('%') {
                let byte = escape_at(bytes, i).unwrap();
                prop_assert!(!is_unreserved(byte), "{}", out);
                prop_assert!(!bytes[i + 1].is_ascii_lowercase() && !bytes[i + 2].is_ascii_lowercase());
            }
        }
    }

    #[test]
    fn the_quick_scan_agrees_with_normalization(path in path_strategy()) {
        let unchanged = normalize_slow(&path).is_ok_and(|out| out == path);
        prop_assert_eq!(is_normalized(path.as_bytes()), unchanged, "{}", path);
    }

    #[test]
    fn arbitrary_input_never_panics(path in "/[ -~]{0,40}") {
        let _ = normalize_path(&path);
    }
}
