//! Who is calling: bearer tokens (stored as SHA-256 hashes) map to users with a role, and a
//! directory gives their groups. The directory is a trait so an LDAP server can stand in for the
//! config file; roles always come from the config file.

use crate::config::User;
use crate::identity::Actor;
use sha2::{Digest, Sha256};

/// Where group membership comes from.
pub trait Directory: Send + Sync {
    fn groups_of(&self, user: &str) -> Vec<String>;
}

/// Users and groups from the config file.
pub struct ConfigDirectory {
    users: Vec<User>,
}

impl ConfigDirectory {
    pub fn new(users: Vec<User>) -> ConfigDirectory {
        ConfigDirectory { users }
    }

    /// The user whose token hashes to the stored value; compares in constant time.
    pub fn authenticate(&self, token: &str) -> Option<&User> {
        let hash = hex::encode(Sha256::digest(token.as_bytes()));
        self.users.iter().find(|u| {
            constant_time_eq(
                u.token_sha256.to_ascii_lowercase().as_bytes(),
                hash.as_bytes(),
            )
        })
    }
}

impl Directory for ConfigDirectory {
    fn groups_of(&self, user: &str) -> Vec<String> {
        self.users
            .iter()
            .find(|u| u.name == user)
            .map(|u| u.groups.clone())
            .unwrap_or_default()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The authenticated `user` as an actor: its groups from the directory, its role from the config.
pub fn actor(directory: &dyn Directory, user: &User) -> Actor {
    Actor {
        name: user.name.clone(),
        groups: directory.groups_of(&user.name),
        role: user.role(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Role;

    #[test]
    fn tokens_match_by_hash_only() {
        let dir = ConfigDirectory::new(vec![User {
            name: "jane@example.com".into(),
            groups: vec!["release-managers".into()],
            role: Some(Role::Editor),
            roles: vec![],
            token_sha256: hex::encode(Sha256::digest(b"s3cret-token")),
        }]);
        let jane = dir.authenticate("s3cret-token").expect("jane's token");
        assert_eq!(jane.name, "jane@example.com");
        assert!(dir.authenticate("wrong").is_none());
        let acting = actor(&dir, jane);
        assert_eq!(acting.groups, ["release-managers"]);
        assert_eq!(acting.role, Role::Editor);
    }
}
