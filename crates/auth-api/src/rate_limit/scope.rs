//! Which counter a hit belongs to, with its counter key, its variable and its default limit, each a `match` the
//! compiler checks: a new limited route is one variant here, one field in `Limits`, and one row in docs/auth-api.md's
//! table (which a test compares with [`Scope::ALL`], which cannot miss a variant: see [`Scope::index`]).

/// One per limited route, and one for failed logins per user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `POST /login`, per client.
    Login,
    /// Failed logins per user name, whatever the client: slows a password guess spread over many addresses.
    LoginFailures,
    /// `GET /protected`, per client.
    Protected,
    /// `POST /refresh`, per client.
    Refresh,
    /// `POST /logout`, per client.
    Logout,
}

impl Scope {
    /// Every scope, in the order of [`index`](Self::index).
    pub const ALL: [Scope; 5] = [Scope::Login, Scope::LoginFailures, Scope::Protected, Scope::Refresh, Scope::Logout];

    /// Its place in [`ALL`](Self::ALL). A new variant does not compile until it has one, and a test checks that
    /// `ALL` holds each scope at its place; the next free place is `ALL.len()`, so a new variant is added to `ALL`
    /// in the same edit (the docs check walks `ALL`).
    pub const fn index(self) -> usize {
        match self {
            Scope::Login => 0,
            Scope::LoginFailures => 1,
            Scope::Protected => 2,
            Scope::Refresh => 3,
            Scope::Logout => 4,
        }
    }

    /// Its name in counter keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Login => "login",
            Scope::LoginFailures => "login-failures",
            Scope::Protected => "protected",
            Scope::Refresh => "refresh",
            Scope::Logout => "logout",
        }
    }

    /// The variable that sets its limit.
    pub fn variable(self) -> &'static str {
        match self {
            Scope::Login => "RATE_LIMIT_LOGIN",
            Scope::LoginFailures => "RATE_LIMIT_LOGIN_FAILURES_PER_USER",
            Scope::Protected => "RATE_LIMIT_PROTECTED",
            Scope::Refresh => "RATE_LIMIT_REFRESH",
            Scope::Logout => "RATE_LIMIT_LOGOUT",
        }
    }

    /// Its limit when the variable is unset.
    pub fn default_limit(self) -> &'static str {
        match self {
            Scope::Login => "3/minute",
            Scope::LoginFailures => "10/minute",
            Scope::Protected => "5/minute",
            Scope::Refresh | Scope::Logout => "10/minute",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_holds_every_scope_at_its_index() {
        for (i, scope) in Scope::ALL.into_iter().enumerate() {
            assert_eq!(scope.index(), i, "{scope:?}");
        }
    }

    #[test]
    fn the_readme_table_has_a_row_for_every_scope_with_its_default() {
        let readme = include_str!("../../../../docs/auth-api.md");
        for scope in Scope::ALL {
            let row = format!("| `{}` | `{}` |", scope.variable(), scope.default_limit());
            assert!(readme.contains(&row), "docs/auth-api.md has no row {row}");
        }
    }
}
