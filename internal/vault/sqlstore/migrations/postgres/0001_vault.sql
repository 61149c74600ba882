-- The token vault: connections (one user's sealed tokens for one provider,
-- with the refresh lease) and connect flows in progress. Times are unix
-- milliseconds, UTC, as in the SQLite schema, so that both databases run the
-- same statements with the same precision; NULL where the Go value is the
-- zero time. Key columns use the "C" collation: byte order, as Go sorts.

CREATE TABLE connections (
	issuer         TEXT COLLATE "C" NOT NULL,
	subject        TEXT COLLATE "C" NOT NULL,
	provider       TEXT COLLATE "C" NOT NULL,
	access_key_id  TEXT    NOT NULL,
	access_token   BYTEA   NOT NULL,
	refresh_key_id TEXT    NOT NULL,
	refresh_token  BYTEA   NOT NULL,
	expires_at     BIGINT,
	scopes         TEXT    NOT NULL, -- JSON array of strings
	status         TEXT    NOT NULL,
	failures       INTEGER NOT NULL,
	next_attempt   BIGINT,
	created_at     BIGINT  NOT NULL,
	updated_at     BIGINT  NOT NULL,
	version        BIGINT  NOT NULL CHECK (version > 0),
	lease_id       TEXT,
	lease_until    BIGINT,
	PRIMARY KEY (issuer, subject, provider),
	CHECK ((lease_id IS NULL) = (lease_until IS NULL))
);

CREATE TABLE connect_states (
	state_hash      TEXT COLLATE "C" NOT NULL PRIMARY KEY,
	provider        TEXT   NOT NULL,
	issuer          TEXT   NOT NULL,
	subject         TEXT   NOT NULL,
	verifier_key_id TEXT   NOT NULL,
	verifier        BYTEA  NOT NULL,
	binding_hash    TEXT   NOT NULL,
	return_to       TEXT   NOT NULL,
	expires_at      BIGINT NOT NULL
);

CREATE INDEX connect_states_expires_at ON connect_states (expires_at);
