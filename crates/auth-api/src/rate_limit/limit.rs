//! A limit (`3/minute`) and the limit of every scope, read from the environment.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::scope::Scope;

/// At most `count` requests per `period`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests allowed in one window.
    pub count: u32,
    /// The window's length.
    pub period: Duration,
}

impl fmt::Debug for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.count, self.period.as_secs())
    }
}

impl FromStr for Limit {
    type Err = String;

    /// `3/minute`, `3 per minute`, `100/hour`, `10/second`, `1000/day` (units may be plural).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a limit like 3/minute, 5 per minute or 100/hour");
        let s_lower = s.trim().to_ascii_lowercase();
        let (count, unit) = s_lower
            .split_once('/')
            .or_else(|| s_lower.split_once(" per "))
            .map(|(c, u)| (c.trim(), u.trim()))
            .ok_or_else(bad)?;
        let count: u32 = count.parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("{s:?} allows no request at all; the smallest limit is 1 per period"));
        }
        let seconds = match unit.trim_end_matches('s') {
            "second" | "sec" => 1,
            "minute" | "min" => 60,
            "hour" => 3600,
            "day" => 86_400,
            _ => return Err(bad()),
        };
        Ok(Limit { count, period: Duration::from_secs(seconds) })
    }
}

/// The limit of every scope: one field each, so the compiler checks that every scope has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    login: Limit,
    login_failures: Limit,
    protected: Limit,
    refresh: Limit,
    logout: Limit,
}

impl Limits {
    /// Each scope's limit from its variable (through `get`), or its default; the error names the variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, (&'static str, String)> {
        let read = |scope: Scope| -> Result<Limit, (&'static str, String)> {
            let raw = get(scope.variable()).unwrap_or_else(|| scope.default_limit().into());
            raw.parse().map_err(|reason| (scope.variable(), reason))
        };
        Ok(Self {
            login: read(Scope::Login)?,
            login_failures: read(Scope::LoginFailures)?,
            protected: read(Scope::Protected)?,
            refresh: read(Scope::Refresh)?,
            logout: read(Scope::Logout)?,
        })
    }

    /// The limit of `scope`.
    pub fn get(&self, scope: Scope) -> Limit {
        match scope {
            Scope::Login => self.login,
            Scope::LoginFailures => self.login_failures,
            Scope::Protected => self.protected,
            Scope::Refresh => self.refresh,
            Scope::Logout => self.logout,
        }
    }

    /// The same limits with `scope`'s replaced (tests shorten a window with it).
    pub fn with(mut self, scope: Scope, limit: Limit) -> Self {
        let slot = match scope {
            Scope::Login => &mut self.login,
            Scope::LoginFailures => &mut self.login_failures,
            Scope::Protected => &mut self.protected,
            Scope::Refresh => &mut self.refresh,
            Scope::Logout => &mut self.logout,
        };
        *slot = limit;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_limits() {
        assert_eq!("3/minute".parse::<Limit>().unwrap(), Limit { count: 3, period: Duration::from_secs(60) });
        assert_eq!("5 per minute".parse::<Limit>().unwrap(), Limit { count: 5, period: Duration::from_secs(60) });
        assert_eq!("100/Hours".parse::<Limit>().unwrap(), Limit { count: 100, period: Duration::from_secs(3600) });
        assert_eq!("10/second".parse::<Limit>().unwrap(), Limit { count: 10, period: Duration::from_secs(1) });
        assert_eq!("1/day".parse::<Limit>().unwrap(), Limit { count: 1, period: Duration::from_secs(86_400) });
        for bad in ["", "3", "x/minute", "3/fortnight", "-1/minute", "0/minute", "3//minute"] {
            assert!(bad.parse::<Limit>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn every_scope_has_a_setting_and_a_default() {
        let limits = Limits::from_lookup(|_| None).unwrap();
        assert_eq!(limits.get(Scope::Login), "3/minute".parse().unwrap());
        assert_eq!(limits.get(Scope::Protected), "5/minute".parse().unwrap());
        let e = Limits::from_lookup(|v| (v == "RATE_LIMIT_PROTECTED").then(|| "lots".into())).unwrap_err();
        assert_eq!(e.0, "RATE_LIMIT_PROTECTED");
        for scope in Scope::ALL {
            assert_eq!(limits.get(scope), scope.default_limit().parse().unwrap(), "{scope:?}");
        }
    }
}
