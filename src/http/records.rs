//! `/api/v1/calls`: call records, filtered and paged (JSON or CSV), one record with its timeline
//! and SIP ladder. Every bad query parameter is a 400 with a JSON error naming it.

use super::{access, error, AppState};
use crate::store::{CallDirection, CallRecord, CallStatus, RecordFilter, StoreError};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;
/// Rows one CSV export may hold.
const MAX_EXPORT: usize = 100_000;

const FILTER_KEYS: &[&str] = &["from", "to", "q", "direction", "status", "profile", "min_duration", "transcoded", "limit", "cursor"];

pub(super) fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::Unavailable(_) => error(StatusCode::SERVICE_UNAVAILABLE, "database_unavailable", "the call-record database is unreachable; records are kept in the spool"),
        other => {
            tracing::warn!(error = %other, "call-record query failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, "database_error", "the call-record query failed")
        }
    }
}

/// A query parameter's problem: 400 `bad_request` naming the parameter.
fn bad(parameter: &str, problem: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", &format!("`{parameter}`: {problem}"))
}

pub(crate) fn parse_filter(params: &HashMap<String, String>, paged: bool) -> Result<RecordFilter, Response> {
    if let Some(unknown) = params.keys().find(|k| !FILTER_KEYS.contains(&k.as_str()) || (!paged && (*k == "limit" || *k == "cursor"))) {
        return Err(bad(unknown, "unknown parameter"));
    }
    // `?to=` is a mistake (a form field left blank), not a request for everything.
    if let Some(empty) = FILTER_KEYS.iter().find(|k| params.get(**k).is_some_and(String::is_empty)) {
        return Err(bad(empty, "empty; leave the parameter out instead"));
    }
    let mut filter = RecordFilter { limit: DEFAULT_LIMIT, ..Default::default() };
    let get = |k: &str| params.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if let Some(v) = get("from") {
        filter.from = Some(parse_time(v).ok_or_else(|| bad("from", "expected an RFC 3339 time (2026-11-24T10:00:00Z) or Unix milliseconds"))?);
    }
    if let Some(v) = get("to") {
        filter.to = Some(parse_time(v).ok_or_else(|| bad("to", "expected an RFC 3339 time (2026-11-24T10:00:00Z) or Unix milliseconds"))?);
    }
    // A range that ends before it starts (to <= from) is valid and matches nothing, as the
    // OpenAPI document cannot say otherwise.
    if let Some(v) = get("q") {
        if v.chars().count() > 100 || v.chars().any(char::is_control) {
            return Err(bad("q", "at most 100 printable characters"));
        }
        filter.text = Some(v.to_string());
    }
    if let Some(v) = get("direction") {
        filter.direction = Some(CallDirection::parse(v).ok_or_else(|| bad("direction", "one of inbound, outbound"))?);
    }
    if let Some(v) = get("status") {
        filter.status = Some(CallStatus::parse(v).ok_or_else(|| bad("status", "one of in_progress, answered, missed, rejected, busy, cancelled, failed"))?);
    }
    if let Some(v) = get("profile") {
        if v.len() > 64 || !v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(bad("profile", "a profile name (letters, digits, - and _)"));
        }
        filter.profile = Some(v.to_string());
    }
    if let Some(v) = get("min_duration") {
        let seconds: u32 = v.parse().map_err(|_| bad("min_duration", "whole seconds"))?;
        filter.min_duration_ms = Some(i64::from(seconds) * 1000);
    }
    if let Some(v) = get("transcoded") {
        filter.transcoded = Some(match v {
            "true" => true,
            "false" => false,
            _ => return Err(bad("transcoded", "true or false")),
        });
    }
    if let Some(v) = get("limit") {
        let limit: u32 = v.parse().map_err(|_| bad("limit", "a whole number"))?;
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(bad("limit", &format!("between 1 and {MAX_LIMIT}")));
        }
        filter.limit = limit;
    }
    if let Some(v) = get("cursor") {
        let digits = |at: &str| (1..=18).contains(&at.len()) && at.bytes().all(|b| b.is_ascii_digit());
        let parsed = v.split_once('_').filter(|(at, _)| digits(at)).and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id)));
        let Some((at, id)) = parsed.filter(|(_, id)| !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')) else {
            return Err(bad("cursor", "not a cursor this API returned"));
        };
        filter.after = Some((at, id.to_string()));
    }
    Ok(filter)
}

/// RFC 3339 (`2026-11-24T10:00:00Z`, `…+01:00`, fractions allowed) or Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    // At most 13 digits (until the year 2286), as openapi.json says: one rule for both.
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        return if text.len() <= 13 { text.parse().ok() } else { None };
    }
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') || bytes[13] != b':' || bytes[16] != b':' {
        return None;
    }
    // Fields are ASCII digits only: `str::parse` would take a sign ("+1"), and slicing by byte
    // index would panic inside a multi-byte character (`+1é00`).
    let number = |range: std::ops::Range<usize>| {
        let field = text.get(range)?;
        field.bytes().all(|b| b.is_ascii_digit()).then(|| field.parse::<i64>().ok())?
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    // A leap second (:60) is RFC 3339, but only ever at the end of a UTC minute 59.
    if !(1..=12).contains(&month) || !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 60 || (second == 60 && minute != 59) {
        return None;
    }
    let mut rest = text.get(19..)?;
    let mut millis = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.find(|c: char| !c.is_ascii_digit()).unwrap_or(fraction.len());
        if digits == 0 {
            return None;
        }
        let padded = format!("{:0<3}", fraction.get(..digits.min(3))?);
        millis = padded.parse::<i64>().ok()?;
        rest = fraction.get(digits..)?;
    }
    let offset_minutes = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) => {
            let digit = |b: &u8| i64::from(b - b'0');
            let (h, m) = (digit(h1) * 10 + digit(h2), digit(m1) * 10 + digit(m2));
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'-' { -(h * 60 + m) } else { h * 60 + m }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hour * 3_600 + minute * 60 + second) - offset_minutes * 60) * 1000 + millis)
}

fn cursor_of(record: &CallRecord) -> String {
    format!("{}_{}", record.started_at, record.id)
}

/// The list view of a record: everything but the timeline and the SIP messages.
fn summary(record: &CallRecord) -> serde_json::Value {
    let mut value = serde_json::to_value(record).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.remove("events");
        object.remove("sip_messages");
        object.remove("revision");
    }
    value
}

pub(super) async fn list(State(state): State<AppState>, headers: HeaderMap, Query(params): Query<HashMap<String, String>>) -> Response {
    if let Err(refusal) = access(&state, &headers, false) {
        return refusal;
    }
    let filter = match parse_filter(&params, true) {
        Ok(filter) => filter,
        Err(response) => return response,
    };
    match state.records.list(&filter).await {
        Ok(records) => {
            let next = (records.len() == filter.limit as usize).then(|| records.last().map(cursor_of)).flatten();
            Json(serde_json::json!({ "calls": records.iter().map(summary).collect::<Vec<_>>(), "next_cursor": next })).into_response()
        }
        Err(e) => store_error(e),
    }
}

pub(super) async fn one(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(refusal) = access(&state, &headers, false) {
        return refusal;
    }
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return bad("id", "not a call id");
    }
    match state.records.get(&id).await {
        Ok(Some(record)) => {
            let mut value = serde_json::to_value(&record).unwrap_or_default();
            if let Some(object) = value.as_object_mut() {
                object.remove("revision");
            }
            Json(value).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "not_found", "no call record with this id"),
        Err(e) => store_error(e),
    }
}

const CSV_COLUMNS: &str = "id,direction,status,profile,browser_user,from_uri,to_uri,started_at,answered_at,ended_at,duration_ms,billable_secs,hangup_side,hangup_sip_code,hangup_reason,sip_codec,browser_codec,transcoded,mos_sip,mos_browser";

fn csv_field(value: &str) -> String {
    // Quote everything that could break the row, and defuse spreadsheet formulas.
    let value = if value.starts_with(['=', '+', '-', '@']) && !value.parse::<f64>().is_ok() { format!("'{value}") } else { value.to_string() };
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value
    }
}

fn csv_row(r: &CallRecord) -> String {
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mos = |leg: &str| r.quality.iter().find(|q| q.leg == leg && q.direction == "received").and_then(|q| q.mos).map(|m| format!("{m:.2}")).unwrap_or_default();
    let fields = [
        r.id.clone(),
        r.direction.as_str().into(),
        r.status.as_str().into(),
        r.profile.clone().unwrap_or_default(),
        r.browser_user.clone().unwrap_or_default(),
        r.from_uri.clone(),
        r.to_uri.clone(),
        r.started_at.to_string(),
        opt(r.answered_at),
        opt(r.ended_at),
        opt(r.duration_ms),
        opt(r.billable_secs),
        r.hangup_side.map(|s| s.as_str().to_string()).unwrap_or_default(),
        r.hangup_sip_code.map(|c| c.to_string()).unwrap_or_default(),
        r.hangup_reason.clone().unwrap_or_default(),
        r.sip_codec.clone().unwrap_or_default(),
        r.browser_codec.clone().unwrap_or_default(),
        r.transcoded.to_string(),
        mos("sip"),
        mos("browser"),
    ];
    let mut row = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    row.push_str("\r\n");
    row
}

/// Exports hold every record at once (billing data): admins only.
pub(super) async fn export(State(state): State<AppState>, headers: HeaderMap, Query(params): Query<HashMap<String, String>>) -> Response {
    if let Err(refusal) = access(&state, &headers, true) {
        return refusal;
    }
    let mut filter = match parse_filter(&params, false) {
        Ok(filter) => filter,
        Err(response) => return response,
    };
    filter.limit = MAX_LIMIT;
    let mut out = format!("{CSV_COLUMNS}\r\n");
    let mut rows = 0;
    loop {
        let page = match state.records.list(&filter).await {
            Ok(page) => page,
            Err(e) => return store_error(e),
        };
        for record in &page {
            out.push_str(&csv_row(record));
        }
        rows += page.len();
        if page.len() < MAX_LIMIT as usize || rows >= MAX_EXPORT {
            break;
        }
        filter.after = page.last().map(|r| (r.started_at, r.id.clone()));
    }
    ([(header::CONTENT_TYPE, "text/csv; charset=utf-8"), (header::CONTENT_DISPOSITION, "attachment; filename=\"calls.csv\"")], out).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_milliseconds() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_time("2026-11-24T10:00:00Z"), Some(1_795_514_400_000));
        assert_eq!(parse_time("2026-11-24T11:00:00.250+01:00"), Some(1_795_514_400_250));
        assert_eq!(parse_time("1795514400000"), Some(1_795_514_400_000));
        assert_eq!(parse_time("2026-11-24T05:30:00-04:30"), Some(1_795_514_400_000));
        assert_eq!(parse_time("2024-02-29T00:00:00Z"), Some(1_709_164_800_000), "a leap day");
        assert_eq!(parse_time("9999999999999"), Some(9_999_999_999_999));
        for bad in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-24", "2026-11-24T10:00:00", "2026-11-24T10:00:00.Z", "99999999999999999999", "10000000000000", "2026-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-24T10:00:60Z"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn non_ascii_or_signed_fields_are_refused_not_a_panic() {
        // Each is six bytes (or a field width) long, so only byte-wise checks can catch them.
        for bad in ["2026-11-24T10:00:00+1é00", "2026-11-24T10:00:00é:000", "2026-11-24T10:00:0é+01:00", "2026-11-24T10:00:00.5é", "2026-11-24T10:00:00+-1:00", "+026-11-24T10:00:00Z", "2026-11-24T10:00:00+24:00", "2026-11-24T10:00:00+01:60"] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
        let params = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();
        for key in ["from", "to"] {
            let refused = parse_filter(&params(&[(key, "2026-11-24T10:00:00+1é00")]), true).expect_err("refused");
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{key}");
        }
    }

    #[test]
    fn filters_refuse_unknown_and_bad_values() {
        let params = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();
        assert!(parse_filter(&params(&[("stauts", "busy")]), true).is_err(), "unknown field");
        assert!(parse_filter(&params(&[("limit", "501")]), true).is_err(), "oversized limit");
        assert!(parse_filter(&params(&[("limit", "0")]), true).is_err());
        let empty = parse_filter(&params(&[("from", "2026-11-24T10:00:00Z"), ("to", "2026-11-24T09:00:00Z")]), true).expect("an empty range");
        assert!(empty.from > empty.to, "kept as asked: it matches nothing");
        assert!(parse_filter(&params(&[("status", "weird")]), true).is_err());
        assert!(parse_filter(&params(&[("cursor", "x")]), true).is_err());
        assert!(parse_filter(&params(&[("cursor", "-5_abc")]), true).is_err(), "only the digits a cursor is made of");
        for key in FILTER_KEYS {
            assert!(parse_filter(&params(&[(key, "")]), true).is_err(), "an empty `{key}`");
        }
        assert!(parse_filter(&params(&[("cursor", "+5_abc")]), true).is_err());
        assert!(parse_filter(&params(&[("limit", "5")]), false).is_err(), "no paging in exports");
        let filter = parse_filter(&params(&[("status", "busy"), ("transcoded", "true"), ("min_duration", "30"), ("cursor", "17_abc-1")]), true).expect("valid");
        assert_eq!((filter.status, filter.transcoded, filter.min_duration_ms, filter.after), (Some(CallStatus::Busy), Some(true), Some(30_000), Some((17, "abc-1".into()))));
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("+15551234567"), "+15551234567", "numbers stay numbers");
    }
}
