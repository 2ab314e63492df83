//! Who may log in to the web console: users from the config plus those kept in the data
//! directory's `console-users.toml` (`sipbridge user add`, the first-start admin, password changes).

use super::console::hash_password;
use crate::config::{ConsoleRole, ConsoleUser};
use std::path::{Path, PathBuf};
use std::sync::RwLock;

/// The first-start admin's name.
pub const FIRST_ADMIN: &str = "admin";

/// Users from the config plus those `sipbridge user add` wrote to the data directory.
pub fn load_users(configured: &[ConsoleUser], data_dir: &Path) -> Vec<ConsoleUser> {
    let mut users = configured.to_vec();
    if let Ok(text) = std::fs::read_to_string(users_file(data_dir)) {
        match toml::from_str::<UsersFile>(&text) {
            Ok(file) => users.extend(file.users.into_iter().filter(|u| !configured.iter().any(|c| c.username == u.username))),
            Err(e) => tracing::warn!(error = %e, "console-users.toml is unreadable; its users cannot log in"),
        }
    }
    users
}

#[derive(serde::Deserialize, serde::Serialize, Default)]
struct UsersFile {
    #[serde(default)]
    users: Vec<ConsoleUser>,
}

pub fn users_file(data_dir: &Path) -> PathBuf {
    data_dir.join("console-users.toml")
}

fn read_file(data_dir: &Path) -> UsersFile {
    std::fs::read_to_string(users_file(data_dir)).ok().and_then(|t| toml::from_str(&t).ok()).unwrap_or_default()
}

/// Written to a temporary file, then renamed: a crash never leaves half a users file. Only the
/// owner reads it (it holds password hashes).
fn write_file(data_dir: &Path, file: &UsersFile) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    let text = toml::to_string(file).map_err(|e| e.to_string())?;
    let path = users_file(data_dir);
    let temporary = path.with_extension("toml.new");
    let mut out = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary).map_err(|e| format!("{}: {e}", temporary.display()))?;
    out.write_all(text.as_bytes()).and_then(|()| out.sync_all()).map_err(|e| format!("{}: {e}", temporary.display()))?;
    std::fs::rename(&temporary, &path).map_err(|e| format!("{}: {e}", path.display()))
}

fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < 10 {
        return Err("the password needs at least 10 characters".into());
    }
    Ok(())
}

/// `sipbridge user add`: adds or replaces `username` in the data directory's users file.
pub fn add_user(data_dir: &Path, username: &str, password: &str, role: ConsoleRole) -> Result<(), String> {
    if username.is_empty() || username.len() > 64 || !username.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c)) {
        return Err("user names use letters, digits and . _ - @ (at most 64)".into());
    }
    check_password(password)?;
    let mut file = read_file(data_dir);
    file.users.retain(|u| u.username != username);
    file.users.push(ConsoleUser { username: username.into(), password_hash: hash_password(password)?, role, profiles: Vec::new(), must_change_password: false });
    write_file(data_dir, &file)
}

/// On a first start (no console user anywhere) makes user `admin` with a random password that must
/// be changed at the first login, and returns that password, for the log: nobody else will ever
/// see it, and it is useless once changed. `None` when a console user already exists.
pub fn first_admin(configured: &[ConsoleUser], data_dir: &Path) -> Result<Option<String>, String> {
    if !load_users(configured, data_dir).is_empty() || users_file(data_dir).exists() {
        return Ok(None);
    }
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    let password: String = (0..20).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect();
    let admin = ConsoleUser { username: FIRST_ADMIN.into(), password_hash: hash_password(&password)?, role: ConsoleRole::Admin, profiles: Vec::new(), must_change_password: true };
    write_file(data_dir, &UsersFile { users: vec![admin] })?;
    Ok(Some(password))
}

/// The console's users, shared by every request; a password change updates them in place.
pub struct ConsoleUsers {
    users: RwLock<Vec<ConsoleUser>>,
    data_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("{0}")]
    Weak(String),
    #[error("the new password must differ from the current one")]
    Unchanged,
    #[error("this user is defined in the config file; change its password_hash there")]
    Configured,
    #[error("cannot save the new password: {0}")]
    Save(String),
}

impl ConsoleUsers {
    pub fn new(users: Vec<ConsoleUser>, data_dir: &Path) -> ConsoleUsers {
        ConsoleUsers { users: RwLock::new(users), data_dir: data_dir.to_path_buf() }
    }

    /// A copy of one user, if it exists.
    pub fn get(&self, username: &str) -> Option<ConsoleUser> {
        self.users.read().unwrap_or_else(|p| p.into_inner()).iter().find(|u| u.username == username).cloned()
    }

    /// A copy of every user (the softphone's console logins look through them).
    pub fn all(&self) -> Vec<ConsoleUser> {
        self.users.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sets a new password for a user kept in the data directory and clears its
    /// `must_change_password`. The caller has checked the current password. Slow (argon2).
    pub fn change_password(&self, username: &str, current: &str, new: &str) -> Result<(), ChangeError> {
        check_password(new).map_err(ChangeError::Weak)?;
        if new == current {
            return Err(ChangeError::Unchanged);
        }
        let hash = hash_password(new).map_err(ChangeError::Save)?;
        let mut users = self.users.write().unwrap_or_else(|p| p.into_inner());
        let mut file = read_file(&self.data_dir);
        let Some(stored) = file.users.iter_mut().find(|u| u.username == username) else { return Err(ChangeError::Configured) };
        stored.password_hash = hash.clone();
        stored.must_change_password = false;
        write_file(&self.data_dir, &file).map_err(ChangeError::Save)?;
        if let Some(user) = users.iter_mut().find(|u| u.username == username) {
            user.password_hash = hash;
            user.must_change_password = false;
        }
        Ok(())
    }
}
