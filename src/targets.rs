//! The targets a run sweeps: every blacklist and expiring token store of a platform in one function.
//!
//! `CLEANUP_TARGETS` is a JSON array of targets, each a collection with its own database, expiry field, grace and
//! legacy rule. Without it, today's settings (`DB_NAME`, `BLACKLIST_COLLECTION`, `EXPIRES_FIELD`,
//! `CLEANUP_GRACE_SECONDS`, legacy entries whenever `JWT_SECRET_KEY` is set) are the one target, and the report is
//! today's, field for field.
//!
//! **Fairness.** A run sweeps its targets a batch at a time, in turn, least served first (`sweep::turns`): a large
//! backlog in one target cannot stop the others from making progress, and what is left carries over to the next
//! run. A target that fails (its database refuses, its collection is missing an index the server insists on) never
//! stops the others: the run is then partial, and the report names the target and its error.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;

use jtc_shared::config_error::ConfigError;
use jtc_shared::names::{FieldPath, MongoName};

/// The variable.
pub const VARIABLE: &str = "CLEANUP_TARGETS";

/// A target's name: 1 to 32 of `a-z`, `0-9`, `_` and `-`, starting with a letter or digit; safe as a metric label,
/// a log field and a JSON key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TargetName(String);

impl TargetName {
    /// The name, checked.
    pub fn parse(name: &str) -> Result<Self, String> {
        let valid = (1..=32).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        match valid {
            true => Ok(Self(name.to_string())),
            false => {
                Err(format!("name {name:?} must be 1 to 32 of a-z, 0-9, _ and -, starting with a letter or digit"))
            }
        }
    }

    /// As a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TargetName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One collection a run sweeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Its name in reports, history, metrics and the invoke body.
    pub name: TargetName,
    /// Its database (default `DB_NAME`).
    pub database: MongoName,
    /// Its collection.
    pub collection: MongoName,
    /// Its expiry field (default `EXPIRES_FIELD`); a retention rule ("codes older than a day") is a time field
    /// read with a grace.
    pub expires_field: FieldPath,
    /// Its grace (default `CLEANUP_GRACE_SECONDS`).
    pub grace: Duration,
    /// Legacy entries (no expiry, a raw token verified with `JWT_SECRET_KEY`) are examined here.
    pub legacy: bool,
}

/// The targets of the deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// In the order given.
    pub list: Vec<Target>,
    /// `CLEANUP_TARGETS` was set: reports carry `targets`. Without it, the one target is today's settings and the
    /// report is today's.
    pub configured: bool,
}

impl Targets {
    /// The targets named in an invoke body, in the configured order; an unknown name is refused, naming the known.
    pub fn subset(&self, names: &[TargetName]) -> Result<Vec<Target>, String> {
        if let Some(unknown) = names.iter().find(|name| !self.list.iter().any(|t| &t.name == *name)) {
            let known: Vec<&str> = self.list.iter().map(|t| t.name.as_str()).collect();
            return Err(format!("unknown target {:?}; the targets are: {}", unknown.as_str(), known.join(", ")));
        }
        Ok(self.list.iter().filter(|t| names.contains(&t.name)).cloned().collect())
    }

    /// Where `target`'s expiry index is, as `create-index` names it: its field alone without `CLEANUP_TARGETS`
    /// (the one collection's), else the database, collection, field and target.
    pub fn index_of(&self, target: &Target) -> String {
        match self.configured {
            true => {
                format!("{}.{}.{} (target {})", target.database, target.collection, target.expires_field, target.name)
            }
            false => target.expires_field.to_string(),
        }
    }
}

/// The defaults a target takes what it does not say from.
pub struct Defaults<'a> {
    pub database: &'a MongoName,
    pub collection: &'a MongoName,
    pub expires_field: &'a FieldPath,
    pub grace: Duration,
    pub legacy: bool,
}

/// One element of `CLEANUP_TARGETS`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    name: String,
    collection: String,
    database: Option<String>,
    expires_field: Option<String>,
    grace_seconds: Option<u64>,
    legacy: Option<bool>,
}

/// The most targets one run sweeps. Each is opened (a statistics read and an index check) before the first batch,
/// inside the budget, and each has its turn and its closing work: thousands of targets in a short budget cleaned
/// nothing, and left no time for the record and the release of the lease (BENCHMARKS.md, "Figures behind the code"). A
/// platform with more collections runs several functions, each over its own list.
pub const MAX_TARGETS: usize = 32;

/// MongoDB's longest database name (64 bytes, less one).
const MAX_DATABASE_BYTES: usize = 63;

/// Why `database` cannot be a target's: MongoDB's own databases (`admin`, `local`, `config`) hold no blacklist
/// and deleting there can break the server; a name over 63 bytes fails only at run time (`InvalidNamespace`).
fn unusable_database(database: &MongoName) -> Option<&'static str> {
    if ["admin", "local", "config"].contains(&database.as_ref()) {
        return Some("is one of MongoDB's own databases");
    }
    (database.len() > MAX_DATABASE_BYTES).then_some("is longer than MongoDB's 63 bytes")
}

/// The longest grace, as for `CLEANUP_GRACE_SECONDS`.
const MAX_GRACE_SECONDS: u64 = 365 * 24 * 3600;

/// The targets from `CLEANUP_TARGETS` (`raw`), or the one target of `defaults` without it.
pub fn parse(raw: Option<&str>, defaults: &Defaults<'_>) -> Result<Targets, ConfigError> {
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        let one = Target {
            name: TargetName("default".into()),
            database: defaults.database.clone(),
            collection: defaults.collection.clone(),
            expires_field: defaults.expires_field.clone(),
            grace: defaults.grace,
            legacy: defaults.legacy,
        };
        return Ok(Targets { list: vec![one], configured: false });
    };
    let invalid = |reason: String| ConfigError::Invalid { name: VARIABLE, reason };
    // Strictly, as the invoke body: with serde_json a repeated key wins, and `"collection":"jwt_blacklist",
    // "collection":"users"` swept `users`.
    let elements: Vec<serde_json::Value> = match crate::strict_json::parse(raw) {
        Ok(serde_json::Value::Array(elements)) => elements,
        Ok(_) => return Err(invalid("must be a JSON array of targets".into())),
        Err(e) => return Err(invalid(format!("is not valid JSON: {e}"))),
    };
    if elements.is_empty() {
        return Err(invalid("is an empty list: name at least one target, or leave it unset".into()));
    }
    if elements.len() > MAX_TARGETS {
        return Err(invalid(format!("has {} targets; at most {MAX_TARGETS} may share one run", elements.len())));
    }
    let mut names = BTreeSet::new();
    let mut places = BTreeSet::new();
    let mut list = Vec::with_capacity(elements.len());
    for (index, element) in elements.into_iter().enumerate() {
        let at = |reason: String| invalid(format!("element {index}: {reason}"));
        let written: Written = serde_json::from_value(element).map_err(|e| at(e.to_string()))?;
        let name = TargetName::parse(&written.name).map_err(at)?;
        let at = |reason: String| invalid(format!("element {index} ({name}): {reason}"));
        if !names.insert(name.clone()) {
            return Err(at("the name is used twice".into()));
        }
        let mongo_name = |what: &str, value: String| {
            MongoName::parse(VARIABLE, value.clone())
                .map_err(|_| at(format!("{what} {value:?} is not a valid MongoDB name")))
        };
        let collection = mongo_name("collection", written.collection)?;
        let database = match written.database {
            Some(database) => mongo_name("database", database)?,
            None => defaults.database.clone(),
        };
        if let Some(why) = unusable_database(&database) {
            return Err(at(format!("database {:?} {why}", database.as_ref())));
        }
        // The same collection twice would be counted twice: a dry run promised 200 where 100 were expired.
        if !places.insert((database.to_string(), collection.to_string())) {
            return Err(at(format!("{}.{} is already another target's", database.as_ref(), collection.as_ref())));
        }
        let expires_field = match written.expires_field {
            Some(field) => FieldPath::parse(VARIABLE, field.clone())
                .map_err(|_| at(format!("expires_field {field:?} is not a usable field path")))?,
            None => defaults.expires_field.clone(),
        };
        let grace = match written.grace_seconds {
            Some(seconds) if seconds > MAX_GRACE_SECONDS => {
                return Err(at(format!("grace_seconds {seconds} is more than {MAX_GRACE_SECONDS}")))
            }
            Some(seconds) => Duration::from_secs(seconds),
            None => defaults.grace,
        };
        list.push(Target { name, database, collection, expires_field, grace, legacy: written.legacy.unwrap_or(false) });
    }
    Ok(Targets { list, configured: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> (MongoName, MongoName, FieldPath) {
        (
            MongoName::parse("DB_NAME", "app").unwrap(),
            MongoName::parse("BLACKLIST_COLLECTION", "jwt_blacklist").unwrap(),
            FieldPath::parse("EXPIRES_FIELD", "expires_at").unwrap(),
        )
    }

    fn parsed(raw: Option<&str>) -> Result<Targets, String> {
        let (database, collection, expires_field) = defaults();
        let d = Defaults {
            database: &database,
            collection: &collection,
            expires_field: &expires_field,
            grace: Duration::from_secs(60),
            legacy: true,
        };
        parse(raw, &d).map_err(|e| e.to_string())
    }

    #[test]
    fn the_issues_example_and_its_defaults() {
        let t = parsed(Some(
            r#"[{"name": "auth", "collection": "jwt_blacklist"},
                {"name": "billing", "database": "billing", "collection": "revoked", "expires_field": "exp"},
                {"name": "resets", "collection": "password_resets", "expires_field": "created_at", "grace_seconds": 86400}]"#,
        ))
        .unwrap();
        assert!(t.configured);
        let names: Vec<&str> = t.list.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["auth", "billing", "resets"]);
        assert_eq!(&*t.list[0].database, "app");
        assert_eq!(&*t.list[1].database, "billing");
        assert_eq!(&*t.list[1].expires_field, "exp");
        assert_eq!(t.list[0].grace, Duration::from_secs(60));
        assert_eq!(t.list[2].grace, Duration::from_secs(86_400));
        assert!(!t.list[0].legacy, "legacy entries only where asked");
    }

    #[test]
    fn unset_is_todays_one_target() {
        let t = parsed(None).unwrap();
        assert!(!t.configured);
        assert_eq!(t.list.len(), 1);
        assert_eq!(&*t.list[0].collection, "jwt_blacklist");
        assert!(t.list[0].legacy);
    }

    #[test]
    fn every_refusal_names_the_variable_and_the_element() {
        for (raw, says) in [
            ("not json", "is not valid JSON"),
            (r#"{"name": "a"}"#, "must be a JSON array"),
            ("[]", "empty list"),
            (r#"[{"name": "a", "collection": "c", "colection": "x"}]"#, "element 0: unknown field `colection`"),
            (r#"[{"collection": "c"}]"#, "element 0: missing field `name`"),
            (r#"[{"name": "a"}]"#, "element 0: missing field `collection`"),
            (r#"[{"name": "Auth", "collection": "c"}]"#, "element 0: name \"Auth\""),
            (r#"[{"name": "a b", "collection": "c"}]"#, "element 0: name"),
            (
                r#"[{"name": "a", "collection": "c"}, {"name": "a", "collection": "d"}]"#,
                "element 1 (a): the name is used twice",
            ),
            (r#"[{"name": "a", "collection": "c.d$"}]"#, "element 0 (a): collection"),
            (r#"[{"name": "a", "collection": "c", "database": "x/y"}]"#, "element 0 (a): database"),
            (r#"[{"name": "a", "collection": "c", "expires_field": "$x"}]"#, "element 0 (a): expires_field"),
            (r#"[{"name": "a", "collection": "c", "grace_seconds": -1}]"#, "element 0: invalid value"),
            (r#"[{"name": "a", "collection": "c", "grace_seconds": 99999999999}]"#, "grace_seconds"),
            (r#"[{"name": "a", "collection": "c", "legacy": "yes"}]"#, "element 0: invalid type"),
            (
                r#"[{"name": "a", "collection": "jwt_blacklist", "collection": "users"}]"#,
                "duplicate key \"collection\"",
            ),
            (
                r#"[{"name": "a", "collection": "c"}, {"name": "b", "database": "app", "collection": "c"}]"#,
                "element 1 (b): app.c is already another target's",
            ),
            (r#"[{"name": "a", "collection": "c", "database": "admin"}]"#, "MongoDB's own databases"),
            (r#"[{"name": "a", "collection": "c", "database": "local"}]"#, "MongoDB's own databases"),
            (r#"[{"name": "a", "collection": "c\n"}]"#, "element 0 (a): collection"),
            (r#"[{"name": "a", "collection": "c\u202e"}]"#, "element 0 (a): collection"),
        ] {
            let e = parsed(Some(raw)).unwrap_err();
            assert!(e.starts_with("CLEANUP_TARGETS is invalid"), "{raw}: {e}");
            assert!(e.contains(says), "{raw}: {e}");
        }
    }

    #[test]
    fn long_database_names_and_long_lists_are_refused() {
        let long = "d".repeat(64);
        let e = parsed(Some(&format!(r#"[{{"name": "a", "collection": "c", "database": "{long}"}}]"#))).unwrap_err();
        assert!(e.contains("longer than MongoDB's 63 bytes"), "{e}");
        let list = |n: usize| {
            let each: Vec<String> = (0..n).map(|i| format!(r#"{{"name": "t{i}", "collection": "c{i}"}}"#)).collect();
            format!("[{}]", each.join(","))
        };
        assert!(parsed(Some(&list(MAX_TARGETS))).is_ok());
        let e = parsed(Some(&list(MAX_TARGETS + 1))).unwrap_err();
        assert!(e.contains("has 33 targets; at most 32"), "{e}");
    }

    #[test]
    fn a_subset_keeps_the_configured_order_and_refuses_unknown_names() {
        let t = parsed(Some(r#"[{"name": "a", "collection": "c"}, {"name": "b", "collection": "d"}]"#)).unwrap();
        let names = |s: Vec<Target>| s.into_iter().map(|t| t.name.to_string()).collect::<Vec<_>>();
        let name = |n: &str| TargetName::parse(n).unwrap();
        assert_eq!(names(t.subset(&[name("b"), name("a")]).unwrap()), ["a", "b"]);
        assert!(t.subset(&[name("z")]).unwrap_err().contains("unknown target \"z\"; the targets are: a, b"));
    }
}
