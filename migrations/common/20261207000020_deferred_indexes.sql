-- Indexes a replay dropped so that it loads its tables faster, each with
-- the statement that builds it again. The replay builds them once its load
-- is done; should it stop before, the next start of any Herald process does
-- (`Database::migrate`).
CREATE TABLE deferred_indexes
(
    name text PRIMARY KEY,
    ddl  text NOT NULL
);
