//! The password policy: lengths at login and for a new password.

use super::UserError;

/// Longest accepted password, in bytes (argon2 takes any length; this bounds the work a request can ask for).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The shortest password `add-user` accepts by default, in characters: NIST SP 800-63B and OWASP's
/// authentication cheat sheet ask for at least 8 and recommend longer; 12 (`PASSWORD_MIN_LENGTH`).
pub const DEFAULT_PASSWORD_MIN_LENGTH: usize = 12;

/// Checks a password's length at login: 1 to 1024 bytes (existing passwords shorter than the minimum keep
/// working; the minimum applies when a password is set, [`check_new_password`]).
pub fn check_password(password: &str) -> Result<(), UserError> {
    match password.len() {
        0 => Err(UserError::InvalidPassword("it is empty".into())),
        n if n > MAX_PASSWORD_BYTES => Err(UserError::InvalidPassword("it is longer than 1024 bytes".into())),
        _ => Ok(()),
    }
}

/// Checks a new password: at least `min_chars` characters, at most 1024 bytes.
pub fn check_new_password(password: &str, min_chars: usize) -> Result<(), UserError> {
    check_password(password)?;
    let chars = password.chars().count();
    if chars < min_chars {
        return Err(UserError::InvalidPassword(format!(
            "it has {chars} characters; at least {min_chars} are required (PASSWORD_MIN_LENGTH)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_lengths() {
        assert!(check_password("p").is_ok(), "an existing short password still logs in");
        assert!(check_password("").is_err());
        assert!(check_password(&"p".repeat(1025)).is_err());
        assert!(check_new_password("short-pw", 12).is_err());
        assert!(check_new_password("twelve chars", 12).is_ok());
        assert!(check_new_password("ｐａｓｓｗｏｒｄ１２", 12).is_err(), "characters, not bytes");
    }
}
