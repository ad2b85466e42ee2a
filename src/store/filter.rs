//! Turns an [`ExpiryRange`] into the MongoDB filter and the measuring pipeline, shared by every backend.

use mongodb::bson::{doc, Bson, DateTime, Document};

use super::{ExpiryRange, Lane, StoreError};
use crate::config::FieldPath;

/// The BSON value of a position on a lane: a Date, or seconds (an integer when whole, else a double).
pub fn bound(lane: Lane, ms: i64) -> Bson {
    match lane {
        Lane::Date => Bson::DateTime(DateTime::from_millis(ms)),
        Lane::Seconds if ms.rem_euclid(1000) == 0 => Bson::Int64(ms / 1000),
        Lane::Seconds => Bson::Double(ms as f64 / 1000.0),
    }
}

/// `{field: {$gte: lo, $lt: hi}, "field.0": {$exists: false}}`. Type bracketing keeps a Date range to Dates and a
/// numeric range to numbers; missing fields, nulls, strings and NaN never match. Arrays are excluded explicitly:
/// MongoDB would match `[1, 2]` against a range through its elements, and an array is no provable expiry (an
/// empty array never matches a range). The exclusion is spelled `"field.0": {$exists: false}` rather than
/// `$not: {$type: "array"}` because some servers stop using the index for the range when `$not` joins it (the test
/// server turned a window's indexed read into a collection scan).
pub fn range_filter(field: &FieldPath, range: &ExpiryRange) -> Document {
    let mut cond = Document::new();
    let lo = range.lo_ms.max(range.lane.floor_ms());
    cond.insert("$gte", bound(range.lane, lo));
    cond.insert("$lt", bound(range.lane, range.hi_ms));
    doc! { field: cond, format!("{field}.0"): { "$exists": false } }
}

/// `[{$match: range}, {$limit: limit}, {$count: "count"}]`: how many entries the range holds, counting no further
/// than `limit` through the expiry index, so that a huge range is never a long count.
pub fn bounded_count_pipeline(field: &FieldPath, range: &ExpiryRange, limit: u64) -> Vec<Document> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    vec![doc! { "$match": range_filter(field, range) }, doc! { "$limit": limit }, doc! { "$count": "count" }]
}

/// Reads the answer of [`bounded_count_pipeline`] (no row: none).
pub fn count_answer(rows: Result<Vec<Document>, StoreError>) -> Result<u64, StoreError> {
    let rows = rows?;
    match rows.first() {
        None => Ok(0),
        Some(row) => as_u64(row.get("count")).ok_or_else(|| malformed(format!("unexpected $count answer: {row}"))),
    }
}

/// `[{$match: range}, {$sort: {field: 1}}, {$limit: 1}, {$project: {field: 1}}]`: the earliest expiry in the
/// range, one step along the expiry index.
pub fn oldest_pipeline(field: &FieldPath, range: &ExpiryRange) -> Vec<Document> {
    vec![
        doc! { "$match": range_filter(field, range) },
        doc! { "$sort": { field: 1 } },
        doc! { "$limit": 1 },
        doc! { "$project": { "_id": 0, field: 1 } },
    ]
}

/// Reads the answer of [`oldest_pipeline`]: the expiry in milliseconds since the epoch (a Date as it is, seconds
/// times 1000), or `None` when the range is empty.
pub fn oldest_answer(field: &FieldPath, rows: Result<Vec<Document>, StoreError>) -> Result<Option<i64>, StoreError> {
    Ok(rows?.first().and_then(|row| jtc_shared::blacklist::expiry_ms(row, field)))
}

/// The BSON types that make an expiry usable (by a range of one of the lanes).
const EXPIRY_TYPES: [&str; 5] = ["date", "int", "long", "double", "decimal"];

/// Legacy entries: the expiry field is missing or of no usable type, and `token` is a string.
pub fn legacy_filter(field: &FieldPath) -> Document {
    doc! { field: { "$not": { "$type": EXPIRY_TYPES.to_vec() } }, "token": { "$type": "string" } }
}

/// The filter and update that write the expiry (a Date at `expires_ms`) of the legacy entry `id`, only while it
/// is still one (a concurrent run may have written it first).
pub fn backfill_update(field: &FieldPath, id: &Bson, expires_ms: i64) -> (Document, Document) {
    let mut filter = legacy_filter(field);
    filter.insert("_id", id.clone());
    (filter, doc! { "$set": { field: DateTime::from_millis(expires_ms) } })
}

/// Legacy entries after `after` in `_id` order, at most `limit`, with their token and BSON size.
pub fn legacy_page_pipeline(field: &FieldPath, after: Option<&Bson>, limit: u32) -> Vec<Document> {
    let mut matching = legacy_filter(field);
    if let Some(after) = after {
        matching.insert("_id", doc! { "$gt": after.clone() });
    }
    vec![
        doc! { "$match": matching },
        doc! { "$sort": { "_id": 1 } },
        doc! { "$limit": i64::from(limit) },
        doc! { "$project": { "_id": 1, "token": 1, "bytes": { "$bsonSize": "$$ROOT" } } },
    ]
}

/// Those of `ids` that are still legacy entries.
pub fn legacy_ids_filter(field: &FieldPath, ids: &[Bson]) -> Document {
    let mut filter = legacy_filter(field);
    filter.insert("_id", doc! { "$in": ids.to_vec() });
    filter
}

/// Reads the answer of [`legacy_page_pipeline`].
pub fn legacy_answer(rows: Result<Vec<Document>, StoreError>) -> Result<Vec<super::LegacyEntry>, StoreError> {
    let entry = |row: &Document| {
        Some(super::LegacyEntry {
            id: row.get("_id")?.clone(),
            token: row.get_str("token").ok()?.to_string(),
            bytes: as_u64(row.get("bytes"))?,
        })
    };
    rows?.iter().map(|row| entry(row).ok_or_else(|| malformed(format!("unexpected legacy row: {row}")))).collect()
}

/// Reads a `[{count, bytes}]` answer of [`measure_pipeline`] (no row: an empty range).
pub fn measure_answer(rows: Result<Vec<Document>, StoreError>) -> Result<super::Measure, StoreError> {
    let rows = rows?;
    let Some(row) = rows.first() else { return Ok(super::Measure::default()) };
    match (as_u64(row.get("count")), as_u64(row.get("bytes"))) {
        (Some(count), Some(bytes)) => Ok(super::Measure { count, bytes }),
        _ => Err(malformed(format!("unexpected $group answer: {row}"))),
    }
}

fn malformed(message: String) -> StoreError {
    StoreError::protocol(format!("aggregate: {message}"))
}

/// `[{$collStats: {storageStats: {}}}]`: the collection's count and size, as cheap as the server makes it.
pub fn stats_pipeline() -> Vec<Document> {
    vec![doc! { "$collStats": { "storageStats": {} } }]
}

/// Reads the answer of [`stats_pipeline`] (no row, or a server that refuses `$collStats` on a collection that does
/// not exist yet: no collection). A size of 0 for a non-empty collection means the server does not report sizes
/// (the test server): `size_bytes` is then `None`.
pub fn stats_answer(rows: Result<Vec<Document>, StoreError>) -> Result<super::CollectionStats, StoreError> {
    let rows = match rows {
        Err(e) if e.kind() == super::ErrorKind::Query && e.message().contains("NamespaceNotFound") => {
            return Ok(super::CollectionStats::default())
        }
        other => other?,
    };
    let Some(row) = rows.first() else { return Ok(super::CollectionStats::default()) };
    let storage = row.get_document("storageStats").ok();
    let count = storage.and_then(|s| as_u64(s.get("count"))).or_else(|| as_u64(row.get("count")));
    let size = storage.and_then(|s| as_u64(s.get("size")));
    match (count, size) {
        (Some(count), Some(size)) => {
            Ok(super::CollectionStats { count, size_bytes: (size > 0 || count == 0).then_some(size) })
        }
        _ => Err(malformed(format!("unexpected $collStats answer: {row}"))),
    }
}

/// True when some index's first key is `field`.
pub fn indexes_lead_with(field: &FieldPath, keys: &[Document]) -> bool {
    keys.iter().any(|key| key.keys().next().map(String::as_str) == Some(field))
}

/// `[{$match: range}, {$limit: limit}?, {$group: {_id: null, count, bytes: {$sum: {$bsonSize: "$$ROOT"}}}}]`.
pub fn measure_pipeline(field: &FieldPath, range: &ExpiryRange, limit: Option<u64>) -> Vec<Document> {
    let limit = limit.map(|limit| doc! { "$limit": i64::try_from(limit).unwrap_or(i64::MAX) });
    let group = doc! { "$group": {
        "_id": Bson::Null,
        "count": { "$sum": 1 },
        "bytes": { "$sum": { "$bsonSize": "$$ROOT" } },
    } };
    std::iter::once(doc! { "$match": range_filter(field, range) }).chain(limit).chain([group]).collect()
}

/// Reads a whole number out of a server answer, whatever numeric type it came as.
pub fn as_u64(value: Option<&Bson>) -> Option<u64> {
    match value? {
        Bson::Int32(v) => u64::try_from(*v).ok(),
        Bson::Int64(v) => u64::try_from(*v).ok(),
        Bson::Double(v) if v.fract() == 0.0 && *v >= 0.0 && *v < 1.8e19 => Some(*v as u64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(path: &str) -> FieldPath {
        FieldPath::parse("EXPIRES_FIELD", path).expect("a field path")
    }

    #[test]
    fn date_range_starts_at_the_year_one() {
        let r = ExpiryRange { lane: Lane::Date, lo_ms: i64::MIN, hi_ms: 1_000 };
        let floor = DateTime::from_millis(super::super::DATE_FLOOR_MS);
        assert_eq!(
            range_filter(&field("exp"), &r),
            doc! { "exp": { "$gte": floor, "$lt": DateTime::from_millis(1_000) }, "exp.0": { "$exists": false } }
        );
        assert_eq!(floor.try_to_rfc3339_string().unwrap(), "0001-01-01T00:00:00Z");
    }

    #[test]
    fn seconds_range_has_zero_floor_and_whole_or_fractional_bounds() {
        let r = ExpiryRange { lane: Lane::Seconds, lo_ms: 0, hi_ms: 1_700_000_000_500 };
        assert_eq!(
            range_filter(&field("e"), &r),
            doc! { "e": { "$gte": 0_i64, "$lt": 1_700_000_000.5_f64 }, "e.0": { "$exists": false } }
        );
        let r = ExpiryRange { lane: Lane::Seconds, lo_ms: 2_000, hi_ms: 3_000 };
        assert_eq!(
            range_filter(&field("e"), &r),
            doc! { "e": { "$gte": 2_i64, "$lt": 3_i64 }, "e.0": { "$exists": false } }
        );
    }

    #[test]
    fn numbers_from_answers() {
        assert_eq!(as_u64(Some(&Bson::Int32(5))), Some(5));
        assert_eq!(as_u64(Some(&Bson::Int64(7))), Some(7));
        assert_eq!(as_u64(Some(&Bson::Double(9.0))), Some(9));
        assert_eq!(as_u64(Some(&Bson::Double(9.5))), None);
        assert_eq!(as_u64(Some(&Bson::Int32(-1))), None);
        assert_eq!(as_u64(Some(&Bson::String("5".into()))), None);
        assert_eq!(as_u64(None), None);
    }
}
