-- API keys created at run time (`gatehouse keys api-key create`) for the
-- apikey entry, which looks a key up by its id on every request. Only the
-- SHA-256 of a key is stored, never the key. Times are unix milliseconds,
-- UTC, as in the SQLite schema; NULL where the Go value is the zero time.

CREATE TABLE api_keys (
	id         TEXT COLLATE "C" NOT NULL PRIMARY KEY, -- the key's public id
	hash       TEXT   NOT NULL,                      -- "sha256:" and 64 hex characters
	client_id  TEXT   NOT NULL,
	scopes     TEXT   NOT NULL,                      -- JSON array of strings
	expires_at BIGINT,                               -- NULL: does not expire
	revoked_at BIGINT,                               -- NULL: not revoked
	created_at BIGINT NOT NULL,
	CHECK (hash LIKE 'sha256:%' AND length(hash) = 71)
);
