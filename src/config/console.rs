//! Web console users, as the main file lists them under `[[http.console_users]]`.

use super::profile::Profile;
use super::ConfigErrors;
use serde::Deserialize;
use std::fmt;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleRole {
    /// Everything, including exports and SIP registrations.
    Admin,
    /// Call records and the dashboard.
    Viewer,
}

/// A web console login. The password is only ever stored as an argon2 hash (PHC string).
#[derive(Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    pub username: String,
    pub password_hash: String,
    pub role: ConsoleRole,
    /// Trunk and PBX profiles this user may call out through from the softphone, after a
    /// `password` login with the console password. Without any, the softphone refuses the login.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// Set on the admin made at first start (its password was printed in the log): its sessions
    /// may do nothing but change the password until it is changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub must_change_password: bool,
}

impl fmt::Debug for ConsoleUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleUser").field("username", &self.username).field("role", &self.role).field("profiles", &self.profiles).field("must_change_password", &self.must_change_password).finish()
    }
}

/// A console user's `profiles` follow the rules of a local user's.
pub(super) fn check_grants(file: &Path, users: &[ConsoleUser], profiles: &[Profile], errors: &mut ConfigErrors) {
    for (i, user) in users.iter().enumerate() {
        super::profile::check_grants(file, &format!("http.console_users[{i}]"), &user.profiles, profiles, errors);
    }
}
