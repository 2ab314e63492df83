//! The OpenAPI 3 document of the REST API, served at `/api/v1/openapi.json`. It is kept as JSON
//! next to this file; a test checks it names every route the router serves.

pub const DOCUMENT: &str = include_str!("openapi.json");

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_valid_json_and_covers_every_api_route() {
        let document: serde_json::Value = serde_json::from_str(super::DOCUMENT).expect("valid JSON");
        assert_eq!(document["openapi"], "3.0.3");
        let paths = document["paths"].as_object().expect("paths");
        for route in ["/healthz", "/readyz", "/metrics", "/api/v1/sip/status", "/api/v1/drain", "/api/v1/calls", "/api/v1/calls.csv", "/api/v1/calls/{id}", "/api/v1/openapi.json"] {
            assert!(paths.contains_key(route), "{route} is documented");
        }
        let router_source = include_str!("mod.rs");
        for path in paths.keys() {
            assert!(router_source.contains(&format!("\"{path}\"")), "{path} is routed");
        }
    }
}
