//! Host-wide sandbox settings (`[sandbox]` in the config file).

use serde::{Deserialize, Serialize};

/// Host-wide sandbox settings.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// When the kernel lacks a confinement feature: `refuse` to run programs (default) or
    /// `allow` them with what confinement there is.
    #[serde(default)]
    pub unconfined: Unconfined,
    /// Who programs run as when the daemon is root: `"65534:65534"` (nobody, the default), any
    /// other `"UID:GID"`, or `"root"`. A daemon that is not root runs them as itself.
    #[serde(default)]
    pub program_user: ProgramUser,
}

/// What to do when the kernel cannot confine a program as asked (`[sandbox] unconfined` in the
/// config file: `refuse` or `allow`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Unconfined {
    /// Do not run the program; the step fails with the reason.
    #[default]
    Refuse,
    /// Run it with whatever confinement the kernel offers and a warning line.
    Allow,
}

/// The user a root daemon's programs run as (`[sandbox] program_user`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum ProgramUser {
    /// Stay root, with only the file capabilities (the operator's explicit choice).
    Root,
    /// This uid and gid, with no supplementary groups.
    Ids(u32, u32),
}

/// nobody:nogroup on Debian, Red Hat and Alpine alike.
pub const NOBODY: ProgramUser = ProgramUser::Ids(65534, 65534);

impl Default for ProgramUser {
    fn default() -> Self {
        NOBODY
    }
}

impl ProgramUser {
    /// The ids to switch to, given whether the daemon is root; `None` keeps the daemon's.
    pub fn switch_to(self, daemon_is_root: bool) -> Option<(u32, u32)> {
        match self {
            ProgramUser::Ids(uid, gid) if daemon_is_root && uid != 0 => Some((uid, gid)),
            _ => None,
        }
    }
}

impl ProgramUser {
    /// Who programs run as on this host, in words, for `plugins inspect`.
    pub fn describe(self) -> String {
        // SAFETY: geteuid has no failure mode.
        let root = unsafe { libc::geteuid() } == 0;
        match self.switch_to(root) {
            Some((uid, gid)) => format!("as uid {uid}, gid {gid} ([sandbox] program_user)"),
            None if root => {
                "as root with only file capabilities ([sandbox] program_user = \"root\")".into()
            }
            None => "as the daemon's user".into(),
        }
    }
}

impl TryFrom<String> for ProgramUser {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if text == "root" {
            return Ok(ProgramUser::Root);
        }
        let parsed = text
            .split_once(':')
            .and_then(|(u, g)| Some(ProgramUser::Ids(u.parse().ok()?, g.parse().ok()?)));
        match parsed {
            Some(ProgramUser::Ids(0, _)) | None => Err(format!(
                "program_user `{text}`: expected \"UID:GID\" with a non-zero uid \
                 (e.g. \"65534:65534\") or \"root\""
            )),
            Some(user) => Ok(user),
        }
    }
}

impl From<ProgramUser> for String {
    fn from(user: ProgramUser) -> String {
        match user {
            ProgramUser::Root => "root".into(),
            ProgramUser::Ids(uid, gid) => format!("{uid}:{gid}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_user_reads_ids_or_root() {
        let s: SandboxSettings = toml::from_str("program_user = \"1000:100\"").unwrap();
        assert_eq!(s.program_user, ProgramUser::Ids(1000, 100));
        assert_eq!(s.program_user.switch_to(true), Some((1000, 100)));
        assert_eq!(s.program_user.switch_to(false), None);
        let s: SandboxSettings = toml::from_str("program_user = \"root\"").unwrap();
        assert_eq!(s.program_user.switch_to(true), None);
        assert_eq!(SandboxSettings::default().program_user, NOBODY);
        for bad in ["0:0", "nobody", "1:", "-1:2"] {
            let err = toml::from_str::<SandboxSettings>(&format!("program_user = \"{bad}\""))
                .unwrap_err()
                .to_string();
            assert!(err.contains("UID:GID"), "{bad}: {err}");
        }
    }
}
