//! The contract probe and the reading of answers: what proves that a server reads and answers Extended JSON (see
//! the parent module's "Proving the contract before trusting it"), and the `documents` array read as it.

use mongodb::bson::{doc, oid::ObjectId, Bson, DateTime, Document};
use serde_json::Value;

use super::transport::{excerpt, Answer, EJSON};
use crate::store::StoreError;

/// The instant the probe sends: the Data API documentation's own example date (2022-01-12T02:33:23.067Z).
const PROBE_DATE_MS: i64 = 1_641_954_803_067;
/// The ObjectId the probe sends.
const PROBE_OID: [u8; 12] = *b"jtc-probe-id";
/// The 64-bit integer the probe sends: 2^53 + 1, which no double represents.
const PROBE_LONG: i64 = 9_007_199_254_740_993;

/// `[{$limit: 1}, {$project: {<t>_type: {$type: {$literal: v}}, <t>: {$literal: v}}}]` for a Date, an ObjectId and a
/// long: one document's worth of work, on any server.
pub fn probe_pipeline() -> Vec<Document> {
    let mut project = doc! { "_id": 0 };
    for (name, value) in probe_values() {
        project.insert(format!("{name}_type"), doc! { "$type": { "$literal": value.clone() } });
        project.insert(name, doc! { "$literal": value });
    }
    vec![doc! { "$limit": 1 }, doc! { "$project": project }]
}

/// The probe's values: the name of each, its BSON type name (as `$type` answers it) and the value.
fn probe_values() -> [(&'static str, Bson); 3] {
    [
        ("date", Bson::DateTime(DateTime::from_millis(PROBE_DATE_MS))),
        ("objectId", Bson::ObjectId(ObjectId::from_bytes(PROBE_OID))),
        ("long", Bson::Int64(PROBE_LONG)),
    ]
}

/// What the probe proved.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// The server read each value as its type and answered each as that type.
    Proven,
    /// The collection is empty: there was no document to project.
    EmptyCollection,
}

/// Reads the probe's answer; a server that broke the contract is a contract error naming what it did.
pub fn probe_verdict(answer: &Answer) -> Result<Probe, StoreError> {
    let rows = read_documents("aggregate", answer, excerpt)?;
    let Some(row) = rows.first() else { return Ok(Probe::EmptyCollection) };
    for (name, sent) in probe_values() {
        let read_as = row.get(format!("{name}_type"));
        if read_as != Some(&Bson::String(name.into())) {
            return Err(StoreError::contract(format!(
                "a {name} sent as Extended JSON (Content-Type: {EJSON}) was read as {}: the server reads request \
                 bodies as plain JSON, so every Date range would match nothing",
                read_as.map_or("nothing".into(), |t| excerpt(&t.to_string()))
            )));
        }
        let answered = row.get(name);
        if answered != Some(&sent) {
            return Err(StoreError::contract(format!(
                "a {name} came back as {} (Accept: {EJSON}): the server does not answer in Extended JSON",
                answered.map_or("nothing".into(), |v| excerpt(&v.to_string()))
            )));
        }
    }
    Ok(Probe::Proven)
}

/// The `documents` array of an answer, each read as Extended JSON; `excerpt` quotes a bad one safely.
pub fn read_documents(
    action: &str,
    answer: &Answer,
    excerpt: impl Fn(&str) -> String,
) -> Result<Vec<Document>, StoreError> {
    let Some(Value::Array(rows)) = answer.get("documents") else {
        return Err(StoreError::protocol(format!("{action}: no \"documents\" array in the answer")));
    };
    rows.iter()
        .map(|row| match Bson::try_from(row.clone()) {
            Ok(Bson::Document(doc)) => Ok(doc),
            _ => Err(StoreError::protocol(format!(
                "{action}: a document is not Extended JSON: {}",
                excerpt(&row.to_string())
            ))),
        })
        .collect()
}

/// A BSON value as relaxed Extended JSON (see the parent module's doc).
pub fn ext_json(value: Bson) -> Value {
    value.into_relaxed_extjson()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ErrorKind;
    use serde_json::json;

    fn answer(row: Value) -> Answer {
        json!({ "documents": [row] }).as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_probe_names_what_the_server_got_wrong() {
        let mut row = Document::new();
        for (name, value) in probe_values() {
            row.insert(format!("{name}_type"), name);
            row.insert(name, value);
        }
        let proven = answer(Bson::Document(row.clone()).into_canonical_extjson());
        assert_eq!(probe_verdict(&proven).ok(), Some(Probe::Proven));
        let relaxed = answer(Bson::Document(row.clone()).into_relaxed_extjson());
        assert_eq!(probe_verdict(&relaxed).ok(), Some(Probe::Proven));
        assert_eq!(
            probe_verdict(&json!({ "documents": [] }).as_object().cloned().unwrap()).ok(),
            Some(Probe::EmptyCollection)
        );

        let mut misread = row.clone();
        misread.insert("date_type", "object");
        let e = probe_verdict(&answer(Bson::Document(misread).into_relaxed_extjson())).unwrap_err();
        assert!(e.kind() == ErrorKind::Contract && e.message().contains("read as \"object\""), "{e}");

        let mut as_string = row;
        as_string.insert("date", "2022-01-12T02:33:23.067Z");
        let e = probe_verdict(&answer(Bson::Document(as_string).into_relaxed_extjson())).unwrap_err();
        assert!(e.kind() == ErrorKind::Contract && e.message().contains("came back as \"2022-01-12"), "{e}");
    }
}
