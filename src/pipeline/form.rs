//! Query strings as `application/x-www-form-urlencoded` text: the one place that splits them
//! into pairs and decodes names and values the way clients mean them (`%XX`, `+` as space).

use std::borrow::Cow;

/// The `name=value` pairs of a query string as written; a pair without `=` has an empty
/// value, empty pairs (`a=1&&b=2`) are skipped.
pub(crate) fn raw_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// The pairs of a query string, names and values decoded.
pub(crate) fn pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    raw_pairs(query).map(|(name, value)| (decode(name), decode(value)))
}

/// A name or value as the client meant it: percent-decoded (invalid UTF-8 replaced), `+` as
/// a space. Borrowed when there is nothing to decode.
pub(crate) fn decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let spaced = text.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_split_and_decoded() {
        let got: Vec<(String, String)> = pairs("a=1&&b&c%20d=x+y%2Bz&=v")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let want = [("a", "1"), ("b", ""), ("c d", "x y+z"), ("", "v")];
        assert_eq!(
            got,
            want.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec()
        );
        assert!(matches!(decode("plain"), Cow::Borrowed("plain")));
    }
}
