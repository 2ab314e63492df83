-- Substring search (`q`) over numbers, URIs, names and users: one lower-cased text of the searched
-- fields and a trigram index on it, so `search_text LIKE '%…%'` is one index scan, not a full scan.
-- pg_trgm ships with PostgreSQL and is a trusted extension (the database owner may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
ALTER TABLE call_records ADD COLUMN search_text TEXT GENERATED ALWAYS AS (
    LOWER(COALESCE(from_uri, '') || ' ' || COALESCE(to_uri, '') || ' ' || COALESCE(from_name, '') || ' ' || COALESCE(to_name, '') || ' ' || COALESCE(browser_user, ''))
) STORED;
CREATE INDEX call_records_search_trgm ON call_records USING gin (search_text gin_trgm_ops);
CREATE INDEX call_records_duration ON call_records (duration_ms DESC);
