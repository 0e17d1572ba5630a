"""The tables of the embedded log: topics, records, and the consumer groups' offsets, members and owners."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name        TEXT PRIMARY KEY,
    partitions  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS records (
    id            INTEGER PRIMARY KEY,
    topic         TEXT NOT NULL,
    partition     INTEGER NOT NULL,
    "offset"      INTEGER NOT NULL,
    key           TEXT,
    value         BLOB NOT NULL,
    timestamp_ms  INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS records_position ON records (topic, partition, "offset");
CREATE TABLE IF NOT EXISTS group_offsets (
    grp          TEXT NOT NULL,
    topic        TEXT NOT NULL,
    partition    INTEGER NOT NULL,
    next_offset  INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_members (
    grp           TEXT NOT NULL,
    member        TEXT NOT NULL,
    topics        TEXT NOT NULL,
    heartbeat_ms  INTEGER NOT NULL,
    PRIMARY KEY (grp, member)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partition_owners (
    grp        TEXT NOT NULL,
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    member     TEXT NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID;
"""


def create_schema(conn: sqlite3.Connection) -> None:
    # executescript commits any open transaction first, so the script carries its own.
    conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")
