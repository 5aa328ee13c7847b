//! Small value shapes the file allows in several places: one-or-many lists, plugin entries
//! that may be `false`, header values that may be `false`, and other either/or values.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, MapDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// A key that takes one value or a list of them (`listen: a` or `listen: [a, b]`).
#[derive(Debug, Clone, PartialEq)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    /// The values as a slice, whichever way they were written.
    pub fn as_slice(&self) -> &[T] {
        match self {
            Self::One(value) => std::slice::from_ref(value),
            Self::Many(values) => values,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a value or a list of values")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(Scalar(v.into_deserializer())).map(OneOrMany::One)
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                T::deserialize(Scalar(v.into_deserializer())).map(OneOrMany::One)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                T::deserialize(Scalar(v.into_deserializer())).map(OneOrMany::One)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                T::deserialize(Scalar(v.into_deserializer())).map(OneOrMany::One)
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                T::deserialize(Scalar(v.into_deserializer())).map(OneOrMany::One)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(OneOrMany::Many)
            }
        }

        deserializer.deserialize_any(OneOrManyVisitor(PhantomData))
    }
}

/// A plain scalar deserializer that also offers itself as a newtype, so wrappers such as
/// [`Spanned`] accept a value that arrives through a visitor (their location is then unknown;
/// [`located`] fills it in).
struct Scalar<D>(D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Scalar<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        visitor.visit_newtype_struct(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

/// The values of a located one-or-many list, each with its own location. A single value
/// written inline takes the location of the whole entry.
pub fn located<T: Clone>(entry: &Spanned<OneOrMany<Spanned<T>>>) -> Vec<Spanned<T>> {
    entry
        .value
        .as_slice()
        .iter()
        .map(|item| {
            if item.referenced.line() == 0 {
                Spanned::new(item.value.clone(), entry.referenced, entry.defined)
            } else {
                item.clone()
            }
        })
        .collect()
}

/// A plugin entry: `NAME: {settings}`, or `NAME: false` to turn off a plugin inherited from
/// the service or the global `plugins`. `NAME: true` means "on with default settings" and is
/// accepted only for plugins whose settings all have defaults.
#[derive(Debug, Clone, PartialEq)]
pub enum PluginSetting<T> {
    /// `false`: the plugin does not run on this route even if inherited.
    Off,
    /// The plugin runs with these settings.
    On(T),
}

impl<T> PluginSetting<T> {
    /// The settings when the plugin is on.
    pub fn settings(&self) -> Option<&T> {
        match self {
            Self::Off => None,
            Self::On(settings) => Some(settings),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for PluginSetting<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SettingVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for SettingVisitor<T> {
            type Value = PluginSetting<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("plugin settings (a mapping), `true` or `false`")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if !v {
                    return Ok(PluginSetting::Off);
                }
                let empty = MapDeserializer::<_, E>::new(std::iter::empty::<(&str, &str)>());
                T::deserialize(empty).map(PluginSetting::On).map_err(|err| {
                    E::custom(format_args!(
                        "`true` turns a plugin on with default settings, but this plugin needs settings ({err})"
                    ))
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(PluginSetting::On)
            }
        }

        deserializer.deserialize_any(SettingVisitor(PhantomData))
    }
}

/// A header a plugin sets: its value, or `false` to not send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderSetting {
    /// Send the header with this value.
    Value(String),
    /// `false`: do not send the header.
    Off,
}

impl HeaderSetting {
    /// A header sent with `value`.
    pub fn value(value: &str) -> Self {
        Self::Value(value.to_owned())
    }
}

impl<'de> Deserialize<'de> for HeaderSetting {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeaderVisitor;

        impl Visitor<'_> for HeaderVisitor {
            type Value = HeaderSetting;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a header value or `false`")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                if v {
                    Err(E::invalid_value(de::Unexpected::Bool(true), &self))
                } else {
                    Ok(HeaderSetting::Off)
                }
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(HeaderSetting::Value(v.to_owned()))
            }
        }

        deserializer.deserialize_any(HeaderVisitor)
    }
}

/// Which query parameters are part of a cache key: `all`, `none`, or a list of names.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VaryQuery {
    /// Every query parameter (the default).
    #[default]
    All,
    /// No query parameter.
    None,
    /// Only these parameters.
    Only(Vec<String>),
}

impl<'de> Deserialize<'de> for VaryQuery {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct VaryVisitor;

        impl<'de> Visitor<'de> for VaryVisitor {
            type Value = VaryQuery;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`all`, `none` or a list of query parameter names")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "all" => Ok(VaryQuery::All),
                    "none" => Ok(VaryQuery::None),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq)).map(VaryQuery::Only)
            }
        }

        deserializer.deserialize_any(VaryVisitor)
    }
}

/// Whether cache entries are kept per consumer: `auto` (when the route has `auth`), `true`
/// or `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PerConsumer {
    /// Per consumer when the route authenticates (the default).
    #[default]
    Auto,
    /// Always per consumer.
    Yes,
    /// Shared by all consumers.
    No,
}

impl<'de> Deserialize<'de> for PerConsumer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PerConsumerVisitor;

        impl Visitor<'_> for PerConsumerVisitor {
            type Value = PerConsumer;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`auto`, `true` or `false`")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(if v { PerConsumer::Yes } else { PerConsumer::No })
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "auto" => Ok(PerConsumer::Auto),
                    "true" => Ok(PerConsumer::Yes),
                    "false" => Ok(PerConsumer::No),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }

        deserializer.deserialize_any(PerConsumerVisitor)
    }
}

/// The body of a `respond` route: a string sent as `text/plain`, or a YAML mapping or list
/// sent as JSON (`application/json`). Numbers and booleans are sent as their text.
#[derive(Debug, Clone, PartialEq)]
pub enum RespondBody {
    /// A text body.
    Text(String),
    /// A JSON body, written as YAML in the file.
    Json(serde_json::Value),
}

impl Default for RespondBody {
    fn default() -> Self {
        Self::Text(String::new())
    }
}

impl<'de> Deserialize<'de> for RespondBody {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BodyVisitor;

        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = RespondBody;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, or a mapping or list to send as JSON")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RespondBody::Text(v.to_owned()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(RespondBody::Text(v.to_string()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RespondBody::Text(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RespondBody::Text(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RespondBody::Text(v.to_string()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(RespondBody::default())
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                serde_json::Value::deserialize(MapAccessDeserializer::new(map))
                    .map(RespondBody::Json)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))
                    .map(RespondBody::Json)
            }
        }

        deserializer.deserialize_any(BodyVisitor)
    }
}

/// Reads a section that may be left empty (`plugins:` with nothing under it) as its default.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}
