//! The secret on disk and the data dir that holds it. Only `pytake serve`
//! creates them; the tools that sign or check tokens read the secret and say
//! how to get one when there is none.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::RngCore;

/// Name of the generated secret inside the data dir.
pub const SECRET_FILE: &str = "secret";

/// Why there is no secret to sign or check tokens with.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Most often a mistyped `--data-dir`, or a server never started there.
    #[error(
        "no secret at {}; start `pytake serve --data-dir {}` once to create it, \
         or give it with --secret-file (PYTAKE_SECRET_FILE) or PYTAKE_SECRET",
        path.display(),
        shell_word(dir)
    )]
    Missing { path: PathBuf, dir: PathBuf },
    #[error("cannot read the secret at {}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the data dir's secret for signing or checking tokens. It never
/// creates one: a secret made here would sign tokens no server accepts.
pub fn read_secret(data_dir: &Path) -> Result<String, SecretError> {
    let path = secret_path(data_dir);
    let missing = || SecretError::Missing {
        path: path.clone(),
        dir: data_dir.to_path_buf(),
    };
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Ok(_) => Err(missing()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(source) => Err(SecretError::Unreadable {
            path: path.clone(),
            source,
        }),
    }
}

/// Path of the generated secret in a data dir.
pub fn secret_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SECRET_FILE)
}

/// The shortest secret a server accepts: HS256 needs a key at least as
/// long as its hash (RFC 7518, 3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// Reads the data dir's secret, creating it (32 random bytes, hex, mode
/// 0600) on first start.
///
/// Never returns an empty or short secret: an empty file (a failed copy, a
/// truncation) would otherwise make the empty string the key, and anyone
/// could sign tokens. The new file appears whole or not at all (written
/// aside, then linked into place), so a server starting at the same moment
/// reads either nothing or the complete secret.
pub fn load_or_create_secret(data_dir: &Path) -> std::io::Result<String> {
    let path = secret_path(data_dir);
    if let Some(secret) = read_existing(&path)? {
        return Ok(secret);
    }
    create_private_dir(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let aside = data_dir.join(format!(".{SECRET_FILE}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&aside)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    drop(file);
    // A link fails if the name exists: no secret is ever overwritten.
    let linked = std::fs::hard_link(&aside, &path);
    let _ = std::fs::remove_file(&aside);
    match linked {
        Ok(()) => Ok(secret),
        // Another server won the race: use its secret, complete by now.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_existing(&path)?
            .ok_or_else(|| std::io::Error::other(format!("{} is empty", path.display()))),
        Err(e) => Err(e),
    }
}

/// The secret in `path`; `None` if there is no such file. An empty or
/// short one is an error that says what to do.
fn read_existing(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let secret = s.trim();
            if secret.len() < MIN_SECRET_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "{} holds {} bytes, fewer than the {MIN_SECRET_BYTES} a secret needs: \
                         delete it to have a new one generated (tokens signed with the old one \
                         stop working), or write a longer secret into it",
                        path.display(),
                        secret.len()
                    ),
                ));
            }
            Ok(Some(secret.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates `dir` and its missing parents with mode 0700: the data dir holds
/// the secret and every tenant's events. An existing directory keeps its
/// mode (the server warns about it, see [`open_data_dir`]).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// The server's start: creates the data dir 0700, or, when it exists and
/// other local users may enter it, warns with the command that fixes it. It
/// never changes an existing directory's mode behind the operator's back.
pub fn open_data_dir(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return create_private_dir(dir);
    }
    if let Some(mode) = shared_mode(dir) {
        tracing::warn!(
            path = %dir.display(),
            mode = %format!("{mode:04o}"),
            "data dir is open to other local users, who may read every tenant's events: \
             run `chmod 700 {}`",
            shell_word(dir)
        );
    }
    Ok(())
}

/// The permission bits of `path` when its group or others have any
/// access; `None` when only the owner has, or it cannot be read.
pub fn shared_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o7777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// `path` as one shell word, for the commands warnings suggest.
pub fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,".contains(c));
    if plain {
        text
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Reads the data dir's secret if it exists (client side: never creates it).
pub fn read_local_secret(data_dir: &Path) -> Option<String> {
    read_secret(data_dir).ok()
}
