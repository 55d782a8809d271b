"""The member segment snapshot: each member's RFM scores and segment written on the member
(``rfm``), so the member filter can select by segment with an index (``rfm.segment``).

The scores come from the analytics' own RFM stages (``gateway.store.analytics.rfm_score_stages``):
one scoring, two uses. A snapshot is a whole ranking at one instant; members who no longer bought
inside the window lose their segment. The last snapshot's summary is kept in
``member_segment_snapshots`` (one document, ``_id: "current"``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId

from gateway.domain.analytics import segment_switch
from gateway.store.analytics import rfm_score_stages
from gateway.store.members import MEMBERS
from gateway.store.mongo import Database, Document

SNAPSHOTS = "member_segment_snapshots"
PURCHASES = "purchases"


async def write_snapshot(db: Database, start: datetime, end: datetime, now: datetime, window: Document) -> Document:
    """Score every member who paid in [start, end), write ``rfm`` on each, clear it on everyone
    else; returns the snapshot's summary (also stored as the current snapshot)."""
    run = ObjectId()
    pipeline: list[Document] = [
        *rfm_score_stages(start, end),
        {
            "$project": {
                "rfm": {
                    "segment": segment_switch("$r", "$f", "$m"),
                    "r": "$r",
                    "f": "$f",
                    "m": "$m",
                    "asOf": now,
                    "run": run,
                }
            }
        },
        {
            "$merge": {
                "into": MEMBERS,
                "on": "_id",
                "whenMatched": [{"$set": {"rfm": "$$new.rfm"}}],
                "whenNotMatched": "discard",
            }
        },
    ]
    await (await db[PURCHASES].aggregate(pipeline, allowDiskUse=True)).to_list()
    cleared = await db[MEMBERS].update_many(
        {"rfm": {"$exists": True}, "rfm.run": {"$ne": run}}, {"$unset": {"rfm": ""}}
    )
    rows = await (
        await db[MEMBERS].aggregate(
            [{"$match": {"rfm.run": run}}, {"$group": {"_id": "$rfm.segment", "members": {"$sum": 1}}}]
        )
    ).to_list()
    summary: Document = {
        "_id": "current",
        "run": run,
        "asOf": now,
        **window,
        "segments": sorted(
            ({"segment": r["_id"], "members": r["members"]} for r in rows), key=lambda r: (-r["members"], r["segment"])
        ),
        "scored": sum(r["members"] for r in rows),
        "cleared": cleared.modified_count,
    }
    await db[SNAPSHOTS].replace_one({"_id": "current"}, summary, upsert=True)
    return summary


async def current(db: Database) -> Document | None:
    return await db[SNAPSHOTS].find_one({"_id": "current"})


async def clear_member(db: Database, member_id: str, session: Any = None) -> None:
    """Drop one member's segment (erased or merged away: no longer a customer to target)."""
    await db[MEMBERS].update_one({"_id": member_id}, {"$unset": {"rfm": ""}}, session=session)
