//! Who is calling: bearer tokens (stored as SHA-256 hashes) map to users, and a directory gives
//! their groups. The directory is a trait so an LDAP server can stand in for the config file.

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

pub fn actor(directory: &dyn Directory, name: &str) -> Actor {
    Actor {
        name: name.to_string(),
        groups: directory.groups_of(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_by_hash_only() {
        let dir = ConfigDirectory::new(vec![User {
            name: "jane@example.com".into(),
            groups: vec!["release-managers".into()],
            token_sha256: hex::encode(Sha256::digest(b"s3cret-token")),
        }]);
        assert_eq!(
            dir.authenticate("s3cret-token").map(|u| u.name.as_str()),
            Some("jane@example.com")
        );
        assert!(dir.authenticate("wrong").is_none());
        assert_eq!(actor(&dir, "jane@example.com").groups, ["release-managers"]);
    }
}
