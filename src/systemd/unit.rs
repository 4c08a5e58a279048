//! What a transient unit is made of, typed: [`Property`] and its enums, and
//! which slice a process runs in.

use zbus::zvariant::Value;

/// `KillMode=` of a unit. Never `process`: it leaves processes behind when
/// the unit stops (see DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillMode {
    /// Every process of the unit's cgroup gets the stop signal.
    ControlGroup,
    /// The main process gets SIGTERM, the rest of the cgroup SIGKILL.
    Mixed,
}

/// `CollectMode=` of a transient unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectMode {
    /// Unload the unit once inactive, also after a failure (so its name can
    /// be used again at once, like `systemd-run --collect`).
    InactiveOrFailed,
}

/// A property of a transient unit, typed as systemd's D-Bus API wants it
/// (a `MemoryMax` sent as a string instead of a `t` is refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Property {
    /// `Description=`.
    Description(String),
    /// `MemoryMax=` in bytes.
    MemoryMax(u64),
    /// `TasksMax=`.
    TasksMax(u64),
    /// `CPUQuota=N%` is `CPUQuotaPerSecUSec = N * 10000` µs per second.
    CpuQuotaPerSecUSec(u64),
    /// `KillMode=`.
    KillMode(KillMode),
    /// `CollectMode=`.
    CollectMode(CollectMode),
    /// The hard limit of `LimitNOFILE=`.
    LimitNofile(u64),
    /// The soft limit of `LimitNOFILE=`.
    LimitNofileSoft(u64),
}

impl Property {
    pub(super) fn to_dbus(&self) -> (&'static str, Value<'_>) {
        match self {
            Property::Description(d) => ("Description", Value::from(d.as_str())),
            Property::MemoryMax(b) => ("MemoryMax", Value::from(*b)),
            Property::TasksMax(n) => ("TasksMax", Value::from(*n)),
            Property::CpuQuotaPerSecUSec(us) => ("CPUQuotaPerSecUSec", Value::from(*us)),
            Property::KillMode(m) => (
                "KillMode",
                Value::from(match m {
                    KillMode::ControlGroup => "control-group",
                    KillMode::Mixed => "mixed",
                }),
            ),
            Property::CollectMode(CollectMode::InactiveOrFailed) => {
                ("CollectMode", Value::from("inactive-or-failed"))
            }
            Property::LimitNofile(n) => ("LimitNOFILE", Value::from(*n)),
            Property::LimitNofileSoft(n) => ("LimitNOFILESoft", Value::from(*n)),
        }
    }
}

/// The innermost `.slice` of the systemd hierarchy in a `/proc/PID/cgroup`
/// text (the `0::` line of cgroup v2, else `name=systemd` of v1).
pub fn slice_of_cgroup(text: &str) -> Option<String> {
    let path = |prefix: &str| text.lines().find_map(|l| l.strip_prefix(prefix)).map(str::to_owned);
    let path = path("0::").filter(|p| p != "/").or_else(|| {
        text.lines().find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p.to_owned()))
    })?;
    path.split('/').rfind(|c| c.ends_with(".slice")).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_from_cgroup_v2_and_v1() {
        assert_eq!(
            slice_of_cgroup("0::/system.slice/ccmanagerd.service\n").as_deref(),
            Some("system.slice")
        );
        let v1 = "12:memory:/system.slice/x.service\n1:name=systemd:/user.slice/user-1000.slice/session-3.scope\n0::/\n";
        assert_eq!(slice_of_cgroup(v1).as_deref(), Some("user-1000.slice"));
        assert_eq!(slice_of_cgroup("0::/init.scope\n"), None);
        assert_eq!(slice_of_cgroup(""), None);
    }

    #[test]
    fn properties_have_systemds_types() {
        let sig = |p: Property| p.to_dbus().1.value_signature().to_string();
        assert_eq!(sig(Property::MemoryMax(1)), "t");
        assert_eq!(sig(Property::TasksMax(1)), "t");
        assert_eq!(sig(Property::CpuQuotaPerSecUSec(1)), "t");
        assert_eq!(sig(Property::KillMode(KillMode::ControlGroup)), "s");
        assert_eq!(
            Property::KillMode(KillMode::ControlGroup).to_dbus().1,
            Value::from("control-group")
        );
        assert_eq!(sig(Property::CollectMode(CollectMode::InactiveOrFailed)), "s");
        assert_eq!(sig(Property::Description("d".into())), "s");
    }

    #[test]
    fn exec_start_is_a_sasb() {
        let exec = vec![("/bin/true".to_string(), vec!["/bin/true".to_string()], false)];
        assert_eq!(Value::from(exec).value_signature().to_string(), "a(sasb)");
        assert_eq!(Value::from(vec![1u32, 2]).value_signature().to_string(), "au");
    }
}
