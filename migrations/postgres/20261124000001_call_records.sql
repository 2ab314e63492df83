-- Call records: one row per call, inserted when the call starts and completed when it ends.
-- Times are Unix milliseconds (UTC). quality, events and sip_messages are JSON arrays (see
-- migrations/README.md). `revision` orders writes: a replayed older write never overwrites a newer one.
CREATE TABLE call_records (
    id TEXT PRIMARY KEY,
    direction TEXT NOT NULL,
    status TEXT NOT NULL,
    profile TEXT,
    browser_user TEXT,
    browser_device TEXT,
    sip_call_ids TEXT NOT NULL DEFAULT '',
    from_uri TEXT NOT NULL DEFAULT '',
    from_name TEXT,
    to_uri TEXT NOT NULL DEFAULT '',
    to_name TEXT,
    started_at BIGINT NOT NULL,
    ringing_at BIGINT,
    answered_at BIGINT,
    ended_at BIGINT,
    duration_ms BIGINT,
    billable_secs BIGINT,
    hangup_sip_code BIGINT,
    hangup_reason TEXT,
    hangup_q850 BIGINT,
    hangup_side TEXT,
    sip_codec TEXT,
    browser_codec TEXT,
    transcoded BOOLEAN NOT NULL DEFAULT FALSE,
    dtmf_mode TEXT,
    sip_remote TEXT,
    browser_remote TEXT,
    ice_candidate_type TEXT,
    sip_user_agent TEXT,
    browser_user_agent TEXT,
    quality TEXT NOT NULL DEFAULT '[]',
    events TEXT NOT NULL DEFAULT '[]',
    sip_messages TEXT NOT NULL DEFAULT '[]',
    revision BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX call_records_started ON call_records (started_at DESC, id DESC);
CREATE INDEX call_records_status_started ON call_records (status, started_at DESC);
CREATE INDEX call_records_direction_started ON call_records (direction, started_at DESC);
CREATE INDEX call_records_profile_started ON call_records (profile, started_at DESC);
CREATE INDEX call_records_user_started ON call_records (browser_user, started_at DESC);
