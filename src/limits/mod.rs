//! Per-session resource limits: the value types shared by the config file, the
//! wire protocol and the exec-wrapper, and the rules that merge a request's
//! limits with the configured defaults and check them against the ceiling.
//!
//! rlimits (`nofile`, `nproc`, `core`, `as`, `data`, `cpu`, `fsize`) are applied
//! to the session's program by the exec-wrapper; cgroup caps (`memory_max`,
//! `tasks_max`, `cpu_quota`) need systemd. The exec-wrapper's command line is
//! [`exec_args`]; the daemon learns whether it started the program through
//! [`spawn_status`].

pub mod cgroup;
pub mod exec_args;
pub mod nofile;
pub mod reaper;
pub mod spawn_status;
pub mod wrapper;

use std::borrow::Cow;
use std::fmt;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What [`parse_bytes`] takes, as a JSON Schema (ECMA 262) pattern.
const SIZE_PATTERN: &str = "^\\s*[0-9]+\\s*([KkMmGgTt]([Ii]?[Bb])?|[Bb])?\\s*$";

/// An rlimit value: a number or `"unlimited"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rlim {
    /// A finite limit (count, bytes or seconds, depending on the resource).
    Value(u64),
    /// RLIM_INFINITY.
    Unlimited,
}

impl Serialize for Rlim {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Rlim::Value(v) => s.serialize_u64(*v),
            Rlim::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

impl<'de> Deserialize<'de> for Rlim {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a non-negative integer or \"unlimited\"")
        })? {
            Raw::N(n) => Ok(Rlim::Value(n)),
            Raw::S(s) if s == "unlimited" || s == "infinity" => Ok(Rlim::Unlimited),
            Raw::S(s) => match parse_bytes(&s) {
                Some(n) => Ok(Rlim::Value(n)),
                None => Err(serde::de::Error::custom(format!(
                    "invalid limit {s:?}: expected a non-negative integer, a size such as \"64M\", or \"unlimited\""
                ))),
            },
        }
    }
}

impl JsonSchema for Rlim {
    fn schema_name() -> Cow<'static, str> {
        "Rlim".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An rlimit: a count, a size such as \"64M\", or \"unlimited\".",
            "oneOf": [
                {"type": "integer", "format": "uint64", "minimum": 0},
                {"type": "string", "enum": ["unlimited", "infinity"]},
                {"type": "string", "pattern": SIZE_PATTERN},
            ],
        })
    }
}

/// A byte size written as `"512M"`, `"4G"`, `"1048576"` (binary units, K = 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] =
            [("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)];
        for (suffix, unit) in UNITS {
            if self.0 >= unit && self.0 % unit == 0 {
                return write!(f, "{}{}", self.0 / unit, suffix);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// Parses `"123"`, `"64K"`, `"512M"`, `"4G"`, `"1T"` (optionally with `B`/`iB`).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(mult)
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let raw = Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a size such as \"512M\" or \"4G\""))?;
        match raw {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_bytes(&s).filter(|n| *n > 0).map(ByteSize).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {s:?}: expected a positive size such as \"512M\" or \"4G\""
                ))
            }),
        }
    }
}

impl JsonSchema for ByteSize {
    fn schema_name() -> Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A byte size: a number of bytes, or \"512M\", \"4G\" (binary units).",
            "oneOf": [
                {"type": "integer", "format": "uint64", "minimum": 0},
                {"type": "string", "pattern": SIZE_PATTERN},
            ],
        })
    }
}

/// A CPU quota in percent of one core, written `"200%"` (two cores).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CpuQuota(pub u32);

impl Serialize for CpuQuota {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}%", self.0))
    }
}

impl<'de> Deserialize<'de> for CpuQuota {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a percentage such as \"200%\""))?;
        s.strip_suffix('%')
            .and_then(|n| n.trim().parse::<u32>().ok())
            .filter(|n| *n > 0)
            .map(CpuQuota)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid cpu_quota {s:?}: expected a positive percentage such as \"200%\""
                ))
            })
    }
}

impl JsonSchema for CpuQuota {
    fn schema_name() -> Cow<'static, str> {
        "CpuQuota".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A CPU quota in percent of one core, e.g. \"200%\" (two cores).",
            "type": "string",
            "pattern": "^\\s*[0-9]+\\s*%$",
        })
    }
}

/// Limits for one session. Every field is optional: absent means "not set"
/// (for a request: take the configured default; for the defaults: leave the
/// inherited value alone).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// RLIMIT_NOFILE: open files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<Rlim>,
    /// RLIMIT_NPROC: processes of the session user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nproc: Option<Rlim>,
    /// RLIMIT_CORE: core file size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub core: Option<Rlim>,
    /// RLIMIT_AS: address space in bytes.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub address_space: Option<Rlim>,
    /// RLIMIT_DATA: data segment in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Rlim>,
    /// RLIMIT_CPU: CPU seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Rlim>,
    /// RLIMIT_FSIZE: largest file written, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fsize: Option<Rlim>,
    /// cgroup memory cap (systemd `MemoryMax=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<ByteSize>,
    /// cgroup task cap (systemd `TasksMax=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks_max: Option<u64>,
    /// cgroup CPU quota (systemd `CPUQuota=`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<CpuQuota>,
}

/// A requested limit above the configured ceiling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limits.{field} = {requested} is above the ceiling {ceiling}")]
pub struct AboveCeiling {
    /// The limit's name as on the wire, e.g. `nofile`.
    pub field: &'static str,
    /// What was asked for.
    pub requested: String,
    /// The configured ceiling.
    pub ceiling: String,
}

/// Compares one optional value against its ceiling (absent ceiling: no bound).
fn check<T: PartialOrd + fmt::Debug + Serialize>(
    field: &'static str,
    value: &Option<T>,
    ceiling: &Option<T>,
) -> Result<(), AboveCeiling> {
    match (value, ceiling) {
        (Some(v), Some(c)) if v > c => {
            Err(AboveCeiling { field, requested: to_text(v), ceiling: to_text(c) })
        }
        _ => Ok(()),
    }
}

fn to_text<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::from("?"),
    }
}

impl Limits {
    /// The request's values where given, else the defaults.
    pub fn or(&self, defaults: &Limits) -> Limits {
        Limits {
            nofile: self.nofile.or(defaults.nofile),
            nproc: self.nproc.or(defaults.nproc),
            core: self.core.or(defaults.core),
            address_space: self.address_space.or(defaults.address_space),
            data: self.data.or(defaults.data),
            cpu: self.cpu.or(defaults.cpu),
            fsize: self.fsize.or(defaults.fsize),
            memory_max: self.memory_max.or(defaults.memory_max),
            tasks_max: self.tasks_max.or(defaults.tasks_max),
            cpu_quota: self.cpu_quota.or(defaults.cpu_quota),
        }
    }

    /// Errors on the first value above `ceiling` (never clamps silently).
    pub fn check_ceiling(&self, ceiling: &Limits) -> Result<(), AboveCeiling> {
        check("nofile", &self.nofile, &ceiling.nofile)?;
        check("nproc", &self.nproc, &ceiling.nproc)?;
        check("core", &self.core, &ceiling.core)?;
        check("as", &self.address_space, &ceiling.address_space)?;
        check("data", &self.data, &ceiling.data)?;
        check("cpu", &self.cpu, &ceiling.cpu)?;
        check("fsize", &self.fsize, &ceiling.fsize)?;
        check("memory_max", &self.memory_max, &ceiling.memory_max)?;
        check("tasks_max", &self.tasks_max, &ceiling.tasks_max)?;
        check("cpu_quota", &self.cpu_quota, &ceiling.cpu_quota)
    }

    /// Whether any cgroup cap is set (those need systemd).
    pub fn has_cgroup_caps(&self) -> bool {
        self.memory_max.is_some() || self.tasks_max.is_some() || self.cpu_quota.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print_in_binary_units() {
        assert_eq!(parse_bytes("4G"), Some(4 << 30));
        assert_eq!(parse_bytes("64M"), Some(64 << 20));
        assert_eq!(parse_bytes("10"), Some(10));
        assert_eq!(parse_bytes("1.5G"), None);
        assert_eq!(parse_bytes("G"), None);
        assert_eq!(ByteSize(2 << 30).to_string(), "2G");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }

    #[test]
    fn limits_round_trip_the_wire_shape() {
        let l: Limits = serde_json::from_str(
            r#"{"nofile": 4096, "nproc": "unlimited", "memory_max": "2G", "cpu_quota": "200%", "as": "1G"}"#,
        )
        .unwrap();
        assert_eq!(l.nofile, Some(Rlim::Value(4096)));
        assert_eq!(l.nproc, Some(Rlim::Unlimited));
        assert_eq!(l.address_space, Some(Rlim::Value(1 << 30)));
        let v = serde_json::to_value(&l).unwrap();
        assert_eq!(v["memory_max"], "2G");
        assert_eq!(v["cpu_quota"], "200%");
        assert_eq!(v["nproc"], "unlimited");
    }

    #[test]
    fn bad_values_and_unknown_keys_are_rejected() {
        assert!(serde_json::from_str::<Limits>(r#"{"nofile": -1}"#).is_err());
        assert!(serde_json::from_str::<Limits>(r#"{"cpu_quota": "fast"}"#).is_err());
        assert!(serde_json::from_str::<Limits>(r#"{"memory_max": "0"}"#).is_err());
        assert!(serde_json::from_str::<Limits>(r#"{"nofiles": 1}"#).is_err());
    }

    #[test]
    fn ceiling_refuses_instead_of_clamping() {
        let ceiling = Limits { nofile: Some(Rlim::Value(100)), ..Default::default() };
        let ok = Limits { nofile: Some(Rlim::Value(100)), ..Default::default() };
        assert!(ok.check_ceiling(&ceiling).is_ok());
        let high = Limits { nofile: Some(Rlim::Unlimited), ..Default::default() };
        let err = high.check_ceiling(&ceiling).unwrap_err();
        assert_eq!(err.field, "nofile");
        assert_eq!(err.to_string(), "limits.nofile = unlimited is above the ceiling 100");
    }

    #[test]
    fn request_values_win_over_defaults() {
        let defaults = Limits {
            nofile: Some(Rlim::Value(10)),
            nproc: Some(Rlim::Value(5)),
            ..Default::default()
        };
        let req = Limits { nofile: Some(Rlim::Value(20)), ..Default::default() };
        let merged = req.or(&defaults);
        assert_eq!(merged.nofile, Some(Rlim::Value(20)));
        assert_eq!(merged.nproc, Some(Rlim::Value(5)));
    }
}
