-- The token vault: connections (one user's sealed tokens for one provider,
-- with the refresh lease) and connect flows in progress. Times are unix
-- milliseconds, UTC; NULL where the Go value is the zero time.

CREATE TABLE connections (
	issuer         TEXT    NOT NULL,
	subject        TEXT    NOT NULL,
	provider       TEXT    NOT NULL,
	access_key_id  TEXT    NOT NULL,
	access_token   BLOB    NOT NULL,
	refresh_key_id TEXT    NOT NULL,
	refresh_token  BLOB    NOT NULL,
	expires_at     INTEGER,
	scopes         TEXT    NOT NULL, -- JSON array of strings
	status         TEXT    NOT NULL,
	failures       INTEGER NOT NULL,
	next_attempt   INTEGER,
	created_at     INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	version        INTEGER NOT NULL CHECK (version > 0),
	lease_id       TEXT,
	lease_until    INTEGER,
	PRIMARY KEY (issuer, subject, provider),
	CHECK ((lease_id IS NULL) = (lease_until IS NULL))
) STRICT;

CREATE TABLE connect_states (
	state_hash      TEXT    NOT NULL PRIMARY KEY,
	provider        TEXT    NOT NULL,
	issuer          TEXT    NOT NULL,
	subject         TEXT    NOT NULL,
	verifier_key_id TEXT    NOT NULL,
	verifier        BLOB    NOT NULL,
	binding_hash    TEXT    NOT NULL,
	return_to       TEXT    NOT NULL,
	expires_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX connect_states_expires_at ON connect_states (expires_at);
