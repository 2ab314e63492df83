-- Substring search (`q`) over numbers, URIs, names and users: trigram indexes, one per searched
-- expression, so `LOWER(COALESCE(col, '')) LIKE '%…%'` is an index scan instead of a full scan.
-- pg_trgm ships with PostgreSQL and is a trusted extension (the database owner may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX call_records_from_uri_trgm ON call_records USING gin (LOWER(COALESCE(from_uri, '')) gin_trgm_ops);
CREATE INDEX call_records_to_uri_trgm ON call_records USING gin (LOWER(COALESCE(to_uri, '')) gin_trgm_ops);
CREATE INDEX call_records_from_name_trgm ON call_records USING gin (LOWER(COALESCE(from_name, '')) gin_trgm_ops);
CREATE INDEX call_records_to_name_trgm ON call_records USING gin (LOWER(COALESCE(to_name, '')) gin_trgm_ops);
CREATE INDEX call_records_user_trgm ON call_records USING gin (LOWER(COALESCE(browser_user, '')) gin_trgm_ops);
CREATE INDEX call_records_duration ON call_records (duration_ms DESC);
