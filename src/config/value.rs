//! Parsing of raw configuration strings into typed values.
//!
//! Every setting starts life as a string (from a default, a file, the environment or a flag),
//! so each type says how to parse one and, when it cannot, what it expected. The expectation
//! text is what operators read in `kiln config check`, so it names concrete examples.

use std::net::IpAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// A type that a setting can hold.
pub trait ConfigValue: Sized {
    /// True when the value must never be printed (passwords, keys, URLs with credentials).
    const SECRET: bool = false;
    /// Parses the raw string; `Err` carries nothing because [`Self::expected`] explains.
    fn parse(raw: &str) -> Result<Self, String>;
    /// Human description of the accepted values, e.g. "an integer between 1 and 65535".
    fn expected() -> String;
}

/// Renders a raw value for messages, masking it when the setting is secret.
pub fn display_value(raw: &str, secret: bool) -> String {
    if !secret {
        return format!("{raw:?}");
    }
    if raw.is_empty() {
        return "\"\"".to_owned();
    }
    // URLs keep their shape so an operator can spot a wrong host, but lose the password.
    if let Ok(mut url) = Url::parse(raw)
        && url.has_host()
    {
        if url.password().is_some() {
            // set_password only fails for URLs without a host, excluded above.
            let _ = url.set_password(Some("***"));
        }
        return format!("{:?}", url.to_string());
    }
    "\"***\"".to_owned()
}

impl ConfigValue for String {
    fn parse(raw: &str) -> Result<Self, String> {
        Ok(raw.to_owned())
    }
    fn expected() -> String {
        "a string".into()
    }
}

impl ConfigValue for SecretString {
    const SECRET: bool = true;
    fn parse(raw: &str) -> Result<Self, String> {
        Ok(SecretString::from(raw.to_owned()))
    }
    fn expected() -> String {
        "a secret string".into()
    }
}

fn non_empty(raw: &str) -> Result<&str, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() { Err("the value is empty".into()) } else { Ok(trimmed) }
}

macro_rules! impl_integer {
    ($($ty:ty),*) => {$(
        impl ConfigValue for $ty {
            fn parse(raw: &str) -> Result<Self, String> {
                non_empty(raw)?.parse::<$ty>().map_err(|e| e.to_string())
            }
            fn expected() -> String {
                format!("an integer between {} and {}", <$ty>::MIN, <$ty>::MAX)
            }
        }
    )*};
}
impl_integer!(u16, u32, u64);

/// A count that must be at least one (pool sizes, concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositiveCount(pub u32);

impl ConfigValue for PositiveCount {
    fn parse(raw: &str) -> Result<Self, String> {
        match u32::parse(raw)? {
            0 => Err("zero is not allowed".into()),
            n => Ok(Self(n)),
        }
    }
    fn expected() -> String {
        "a positive integer (1 or more)".into()
    }
}

/// A TCP port; zero asks the OS for a free one (used by tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port(pub u16);

impl ConfigValue for Port {
    fn parse(raw: &str) -> Result<Self, String> {
        u16::parse(raw).map(Self)
    }
    fn expected() -> String {
        "a port number between 0 and 65535".into()
    }
}

/// A duration written in whole seconds, as Dify's variables are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl Seconds {
    /// The duration as a `std::time::Duration`.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl ConfigValue for Seconds {
    fn parse(raw: &str) -> Result<Self, String> {
        u64::parse(raw).map(Self)
    }
    fn expected() -> String {
        "a whole number of seconds (0 or more)".into()
    }
}

/// A positive number of days, possibly fractional (Dify's REFRESH_TOKEN_EXPIRE_DAYS).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Days(pub f64);

impl Days {
    /// The duration as a `std::time::Duration`.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.0 * 86_400.0)
    }
}

impl ConfigValue for Days {
    fn parse(raw: &str) -> Result<Self, String> {
        let value: f64 = non_empty(raw)?.parse().map_err(|e: std::num::ParseFloatError| e.to_string())?;
        if value.is_finite() && value > 0.0 && value < 36_500.0 {
            Ok(Self(value))
        } else {
            Err("out of range".into())
        }
    }
    fn expected() -> String {
        "a positive number of days, e.g. 30 or 0.5".into()
    }
}

/// A positive duration in seconds that may be fractional (Dify's socket timeouts, e.g. 0.1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FractionalSeconds(pub f64);

impl FractionalSeconds {
    /// The duration as a `std::time::Duration`.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.0)
    }
}

impl ConfigValue for FractionalSeconds {
    fn parse(raw: &str) -> Result<Self, String> {
        let value: f64 = non_empty(raw)?.parse().map_err(|e: std::num::ParseFloatError| e.to_string())?;
        if value.is_finite() && value > 0.0 && value <= 3600.0 {
            Ok(Self(value))
        } else {
            Err("out of range".into())
        }
    }
    fn expected() -> String {
        "a positive number of seconds up to 3600, e.g. 0.1 or 5".into()
    }
}

/// A comma-separated list of `host:port` pairs (REDIS_SENTINELS).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostPortList(pub Vec<(String, u16)>);

impl ConfigValue for HostPortList {
    fn parse(raw: &str) -> Result<Self, String> {
        let mut pairs = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (host, port) = entry.rsplit_once(':').ok_or_else(|| format!("{entry:?} has no :port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() || host.contains("://") {
                return Err(format!("{entry:?} is not host:port"));
            }
            let port = port.parse::<u16>().map_err(|_| format!("{entry:?} has no valid port"))?;
            pairs.push((host.to_owned(), port));
        }
        Ok(Self(pairs))
    }
    fn expected() -> String {
        "comma-separated host:port pairs, e.g. sentinel-1:26379,sentinel-2:26379".into()
    }
}

impl ConfigValue for bool {
    fn parse(raw: &str) -> Result<Self, String> {
        // The spellings pydantic accepts, so a Dify `.env` keeps working.
        match non_empty(raw)?.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" | "y" | "t" => Ok(true),
            "false" | "0" | "no" | "off" | "n" | "f" => Ok(false),
            _ => Err("not a boolean".into()),
        }
    }
    fn expected() -> String {
        "true or false".into()
    }
}

impl ConfigValue for IpAddr {
    fn parse(raw: &str) -> Result<Self, String> {
        let raw = non_empty(raw)?;
        if raw.eq_ignore_ascii_case("localhost") {
            return Ok(IpAddr::from([127, 0, 0, 1]));
        }
        raw.parse().map_err(|e: std::net::AddrParseError| e.to_string())
    }
    fn expected() -> String {
        "an IP address such as 0.0.0.0, 127.0.0.1 or ::".into()
    }
}

impl ConfigValue for PathBuf {
    fn parse(raw: &str) -> Result<Self, String> {
        Ok(PathBuf::from(non_empty(raw)?))
    }
    fn expected() -> String {
        "a file system path".into()
    }
}

/// An absolute http(s) URL such as `https://console.example.com`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub Url);

impl ConfigValue for HttpUrl {
    fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(non_empty(raw)?).map_err(|e| e.to_string())?;
        match url.scheme() {
            "http" | "https" if url.has_host() => Ok(Self(url)),
            "http" | "https" => Err("the URL has no host".into()),
            other => Err(format!("scheme {other:?} is not http or https")),
        }
    }
    fn expected() -> String {
        "an http(s) URL such as https://dify.example.com".into()
    }
}

/// A Redis connection URL; secret because it usually embeds the password.
#[derive(Debug, Clone)]
pub struct RedisUrl(pub SecretString);

impl RedisUrl {
    /// The URL with its credentials, for the client only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl ConfigValue for RedisUrl {
    const SECRET: bool = true;
    fn parse(raw: &str) -> Result<Self, String> {
        let raw = non_empty(raw)?;
        if raw.starts_with("sentinel://") {
            sentinel_broker(raw)?;
            return Ok(Self(SecretString::from(raw.to_owned())));
        }
        let url = Url::parse(raw).map_err(|e| e.to_string())?;
        match url.scheme() {
            "redis" | "rediss" if url.has_host() => Ok(Self(SecretString::from(raw.to_owned()))),
            "redis" | "rediss" => Err("the URL has no host".into()),
            other => Err(format!("scheme {other:?} is not redis, rediss or sentinel")),
        }
    }
    fn expected() -> String {
        "a Redis URL such as redis://:password@redis:6379/1 (rediss:// for TLS), or Celery's \
         sentinel://:password@sentinel-1:26379;sentinel://:password@sentinel-2:26379/1"
            .into()
    }
}

/// Celery's Sentinel broker URL, split: `sentinel://[[user]:password@]host:port[/db]` parts
/// joined by `;`. The credentials are the Redis primary's (kombu's reading); the database
/// comes from whichever part names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelBroker {
    /// Sentinel addresses.
    pub sentinels: Vec<(String, u16)>,
    /// ACL user for the primary (empty: the default user).
    pub username: String,
    /// Password for the primary (empty: none).
    pub password: String,
    /// Database number on the primary.
    pub db: u32,
}

/// Parses a `sentinel://…;sentinel://…` broker URL.
pub fn sentinel_broker(raw: &str) -> Result<SentinelBroker, String> {
    let mut broker =
        SentinelBroker { sentinels: Vec::new(), username: String::new(), password: String::new(), db: 0 };
    for part in raw.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let url = Url::parse(part).map_err(|e| format!("a part of the sentinel URL: {e}"))?;
        if url.scheme() != "sentinel" {
            return Err(format!("every part must start with sentinel://, not {}://", url.scheme()));
        }
        let (Some(host), Some(port)) = (url.host_str(), url.port()) else {
            return Err("every sentinel:// part needs host:port".into());
        };
        broker.sentinels.push((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port));
        if !url.username().is_empty() {
            broker.username = percent_decode(url.username());
        }
        if let Some(password) = url.password() {
            broker.password = percent_decode(password);
        }
        let path = url.path().trim_start_matches('/');
        if !path.is_empty() {
            broker.db = path.parse().map_err(|_| format!("database {path:?} is not a number"))?;
        }
    }
    if broker.sentinels.is_empty() {
        return Err("no sentinel address".into());
    }
    Ok(broker)
}

fn percent_decode(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// A comma-separated list of names (queues), trimmed, empty entries dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NameList(pub Vec<String>);

impl ConfigValue for NameList {
    fn parse(raw: &str) -> Result<Self, String> {
        let names: Vec<String> =
            raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if let Some(bad) =
            names.iter().find(|n| !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            return Err(format!("{bad:?} is not a queue name"));
        }
        Ok(Self(names))
    }
    fn expected() -> String {
        "a comma-separated list of queue names, e.g. dataset,mail".into()
    }
}

/// A comma-separated list of allowed CORS origins, or `*` for any origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// `*`: any origin.
    Any,
    /// The exact origins listed (scheme, host and port, no path).
    List(Vec<String>),
}

impl ConfigValue for Origins {
    fn parse(raw: &str) -> Result<Self, String> {
        let items: Vec<&str> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
        if items.contains(&"*") {
            return Ok(Self::Any);
        }
        let mut origins = Vec::with_capacity(items.len());
        for item in items {
            let url = Url::parse(item).map_err(|e| format!("{item:?}: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
                return Err(format!("{item:?} is not an http(s) origin"));
            }
            if url.path() != "/" || url.query().is_some() {
                return Err(format!("{item:?} has a path; an origin is scheme://host[:port]"));
            }
            origins.push(url.origin().ascii_serialization());
        }
        Ok(Self::List(origins))
    }
    fn expected() -> String {
        "* or a comma-separated list of origins such as https://console.example.com".into()
    }
}

impl<T: ConfigValue> ConfigValue for Option<T> {
    const SECRET: bool = T::SECRET;
    fn parse(raw: &str) -> Result<Self, String> {
        if raw.trim().is_empty() { Ok(None) } else { T::parse(raw).map(Some) }
    }
    fn expected() -> String {
        format!("{} (or empty)", T::expected())
    }
}

/// Declares a configuration enum whose variants are spelled as in `.env` files.
///
/// Parsing is case-insensitive and an unknown value lists every valid spelling, the
/// behaviour Dify lacks for `MODE` (it silently starts the API on a typo).
macro_rules! config_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal $(| $alias:literal)* ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every accepted spelling, for error messages and docs.
            pub const VALUES: &'static [&'static str] = &[$($text),+];

            /// The canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(raw: &str) -> Result<Self, String> {
                let lower = raw.trim().to_ascii_lowercase();
                $( if lower == $text $(|| lower == $alias)* { return Ok(Self::$variant); } )+
                Err(format!("{raw:?} is not one of {}", Self::VALUES.join(", ")))
            }
        }

        impl $crate::config::value::ConfigValue for $name {
            fn parse(raw: &str) -> Result<Self, String> {
                raw.parse()
            }
            fn expected() -> String {
                format!("one of {}", Self::VALUES.join(", "))
            }
        }
    };
}
pub(crate) use config_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secret_urls_but_keeps_host() {
        let shown = display_value("redis://:hunter2@redis:6379/1", true);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redis:6379"), "{shown}");
        assert_eq!(display_value("hunter2", true), "\"***\"");
        assert_eq!(display_value("plain", false), "\"plain\"");
    }

    #[test]
    fn origins_accept_star_and_lists() {
        assert_eq!(Origins::parse("*").unwrap(), Origins::Any);
        assert_eq!(
            Origins::parse("https://a.example.com, http://b.example.com:8080").unwrap(),
            Origins::List(vec!["https://a.example.com".into(), "http://b.example.com:8080".into()])
        );
        assert!(Origins::parse("https://a.example.com/path").is_err());
        assert!(Origins::parse("ftp://a.example.com").is_err());
    }

    #[test]
    fn booleans_follow_pydantic_spellings() {
        assert!(bool::parse("True").unwrap());
        assert!(!bool::parse("off").unwrap());
        assert!(bool::parse("maybe").is_err());
        assert!(bool::parse("").is_err());
    }
}
