//! `${NAME}` and `${NAME:-default}` in string values, replaced from the environment while the
//! YAML is deserialized.
//!
//! Substitution happens on parsed string values, never on the file's text, so a value such as
//! a secret containing `#` or `: ` cannot change how the YAML is read, and every error keeps
//! the location of the value it came from. [`EnvDeserializer`] wraps the YAML deserializer and
//! rewrites each string a visitor receives; mapping keys are left as written.
//!
//! Rules:
//! - `${NAME}`: the variable's value; an error naming `NAME` when it is not set.
//! - `${NAME:-default}`: the default when the variable is unset or empty (as in the shell).
//!   The default is literal text up to the first `}`.
//! - `$${` is a literal `${`. Any other `$` is kept as is (so password hashes such as
//!   `$argon2id$v=19$…` need no escaping).
//! - `NAME` is `[A-Za-z_][A-Za-z0-9_]*`; anything else inside `${…}`, or a `${` without its
//!   `}`, is an error.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};

/// A source of environment variables.
pub(crate) trait Env {
    /// The value of variable `name`, or `None` when it is not set (or not valid UTF-8).
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub(crate) struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Replaces the `${…}` references of `text` (see the module docs). Borrows when nothing
/// changes; the error is a user-facing message.
pub(crate) fn interpolate<'a>(text: &'a str, env: &dyn Env) -> Result<Cow<'a, str>, String> {
    if !text.contains("${") {
        return Ok(Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if start > 0 && rest[..start].ends_with('$') {
            // `$${` is an escaped `${`.
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let body_and_rest = &rest[start + 2..];
        let end = body_and_rest
            .find('}')
            .ok_or_else(|| format!("`${{` without a closing `}}` in `{text}`"))?;
        let body = &body_and_rest[..end];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if !is_var_name(name) {
            return Err(format!(
                "invalid environment reference `${{{body}}}`: expected `${{NAME}}` or `${{NAME:-default}}`"
            ));
        }
        match (env.var(name), default) {
            (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &body_and_rest[end + 1..];
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// Whether `name` is a valid variable name.
fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// A deserializer that interpolates every string value read through `inner`.
pub(crate) struct EnvDeserializer<'env, D> {
    inner: D,
    env: &'env dyn Env,
}

impl<'env, D> EnvDeserializer<'env, D> {
    /// Wraps `inner`, reading variables from `env`.
    pub(crate) fn new(inner: D, env: &'env dyn Env) -> Self {
        Self { inner, env }
    }
}

/// Wraps a visitor, seed or access so what it reads is interpolated too.
struct Wrap<'env, T> {
    inner: T,
    env: &'env dyn Env,
}

impl<'env, T> Wrap<'env, T> {
    fn new(inner: T, env: &'env dyn Env) -> Self {
        Self { inner, env }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method($($arg,)* Wrap::new(visitor, self.env))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for EnvDeserializer<'_, D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(),
        deserialize_i32(), deserialize_i64(), deserialize_i128(), deserialize_u8(),
        deserialize_u16(), deserialize_u32(), deserialize_u64(), deserialize_u128(),
        deserialize_f32(), deserialize_f64(), deserialize_char(), deserialize_str(),
        deserialize_string(), deserialize_bytes(), deserialize_byte_buf(),
        deserialize_option(), deserialize_unit(), deserialize_seq(), deserialize_map(),
        deserialize_identifier(), deserialize_ignored_any(),
        deserialize_unit_struct(name: &'static str),
        deserialize_newtype_struct(name: &'static str),
        deserialize_tuple(len: usize),
        deserialize_tuple_struct(name: &'static str, len: usize),
        deserialize_struct(name: &'static str, fields: &'static [&'static str]),
        deserialize_enum(name: &'static str, variants: &'static [&'static str]),
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Wrap<'_, V> {
    /// Hands an interpolated string to the inner visitor. A rejection is reported with the
    /// text as written (`${NAME}`), so an environment value (often a secret) never appears in
    /// an error message.
    fn visit_interpolated<E: de::Error>(self, raw: &str, value: String) -> Result<V::Value, E> {
        let shown = value.clone();
        self.inner.visit_string(value).map_err(|err: E| {
            let message = err.to_string();
            if shown.is_empty() {
                E::custom(message)
            } else {
                E::custom(message.replace(&shown, raw))
            }
        })
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool), visit_i8(i8), visit_i16(i16), visit_i32(i32), visit_i64(i64),
        visit_i128(i128), visit_u8(u8), visit_u16(u16), visit_u32(u32), visit_u64(u64),
        visit_u128(u128), visit_f32(f32), visit_f64(f64), visit_char(char),
        visit_bytes(&[u8]), visit_byte_buf(Vec<u8>),
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
        self.inner.visit_borrowed_bytes(v)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        match interpolate(v, self.env).map_err(E::custom)? {
            Cow::Borrowed(_) => self.inner.visit_str(v),
            Cow::Owned(value) => self.visit_interpolated(v, value),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        match interpolate(v, self.env).map_err(E::custom)? {
            Cow::Borrowed(_) => self.inner.visit_borrowed_str(v),
            Cow::Owned(value) => self.visit_interpolated(v, value),
        }
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        match interpolate(&v, self.env).map_err(E::custom)? {
            Cow::Borrowed(_) => self.inner.visit_string(v),
            Cow::Owned(value) => self.visit_interpolated(&v, value),
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        self.inner.visit_some(EnvDeserializer::new(d, self.env))
    }

    fn visit_newtype_struct<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        self.inner
            .visit_newtype_struct(EnvDeserializer::new(d, self.env))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.inner.visit_seq(Wrap::new(seq, self.env))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(Wrap::new(map, self.env))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Wrap::new(data, self.env))
    }
}

/// Seeds deserialize through an [`EnvDeserializer`].
struct Seed<'env, S> {
    inner: S,
    env: &'env dyn Env,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(EnvDeserializer::new(d, self.env))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.inner.next_element_seed(Seed {
            inner: seed,
            env: self.env,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        // Keys are names, not values: they are never interpolated.
        self.inner.next_key_seed(seed)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.next_value_seed(Seed {
            inner: seed,
            env: self.env,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.inner.size_hint()
    }
}

impl<'de, 'env, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<'env, A> {
    type Error = A::Error;
    type Variant = Wrap<'env, A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let env = self.env;
        let (value, variant) = self.inner.variant_seed(Seed { inner: seed, env })?;
        Ok((value, Wrap::new(variant, env)))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for Wrap<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed {
            inner: seed,
            env: self.env,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(len, Wrap::new(visitor, self.env))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner
            .struct_variant(fields, Wrap::new(visitor, self.env))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.internal".into()),
            "EMPTY" => Some(String::new()),
            "SECRET" => Some("a#b: c".into()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, String> {
        interpolate(text, &env).map(Cow::into_owned)
    }

    #[test]
    fn replaces_set_variables_anywhere_in_a_string() {
        assert_eq!(run("http://${HOST}:80"), Ok("http://db.internal:80".into()));
        assert_eq!(run("${HOST}${HOST}"), Ok("db.internal".repeat(2)));
        assert_eq!(run("${SECRET}"), Ok("a#b: c".into()));
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(run("${MISSING:-x}"), Ok("x".into()));
        assert_eq!(run("${EMPTY:-x}"), Ok("x".into()));
        assert_eq!(run("${HOST:-x}"), Ok("db.internal".into()));
        assert_eq!(run("${MISSING:-}"), Ok(String::new()));
        assert_eq!(run("${EMPTY}"), Ok(String::new()));
    }

    #[test]
    fn missing_variables_are_errors_naming_them() {
        assert_eq!(
            run("${MISSING}"),
            Err("environment variable `MISSING` is not set".into())
        );
    }

    #[test]
    fn escapes_and_lone_dollars_stay_literal() {
        assert_eq!(run("$${HOST}"), Ok("${HOST}".into()));
        assert_eq!(run("$argon2id$v=19$m=1"), Ok("$argon2id$v=19$m=1".into()));
        assert_eq!(run("cost $5"), Ok("cost $5".into()));
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(run("${HOST").is_err());
        assert!(run("${1A}").is_err());
        assert!(run("${}").is_err());
        assert!(run("${A-B}").is_err());
    }
}
