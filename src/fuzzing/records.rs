//! The records API's query string (`/api/v1/calls?…` and its CSV export), read as axum reads it
//! and then by the filter parser; the raw text also goes to the time parser.

use crate::http::records::{parse_filter, parse_time};
use axum::extract::Query;
use axum::http::Uri;
use std::collections::HashMap;

pub fn records_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = parse_time(text);
    // Only what an HTTP server would accept as a request target gets this far.
    let Ok(uri) = Uri::try_from(format!("/api/v1/calls?{text}")) else { return };
    let Ok(Query(params)) = Query::<HashMap<String, String>>::try_from_uri(&uri) else { return };
    for paged in [true, false] {
        if let Ok(filter) = parse_filter(&params, paged) {
            // A range that ends before it starts is accepted and matches nothing (see
            // `parse_filter`); the times taken are the ones the parameters say.
            assert_eq!(filter.from, params.get("from").and_then(|v| parse_time(v)), "from is not the parameter's time");
            assert_eq!(filter.to, params.get("to").and_then(|v| parse_time(v)), "to is not the parameter's time");
            assert!(paged || filter.after.is_none(), "an export took a cursor");
        }
    }
}
