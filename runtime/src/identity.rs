//! Who is acting: a user name and the groups the directory gives them. The daemon's auth
//! produces it; the engine checks it against a step's approvers.

/// Who is acting, with the groups the directory gives them.
#[derive(Clone, Debug)]
pub struct Actor {
    pub name: String,
    pub groups: Vec<String>,
}
