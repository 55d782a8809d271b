"""The RFM segment snapshot (issue 14 §1): how a member's segment becomes filterable.

RFM is relative: a member's scores are quintiles among everyone who bought in the window, so a
segment cannot be kept up to date by each purchase alone (one purchase moves everybody's ranks).
Instead a snapshot scores every buyer at once with the analytics' own RFM
(``rfm_score_stages``, the same rules as ``memberAnalytics.rfm``) and writes ``rfm`` on each
member; the search filters on it with an index. It runs daily in the server (one replica, under a
lease), and an operator can run it now (``refreshMemberSegments``) before a campaign.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from gateway.core.clock import Clock
from gateway.domain.analytics import Range, local_date
from gateway.domain.member_search import DEFAULT_SEGMENT_WINDOW_DAYS, segment_window
from gateway.store import member_segments as store
from gateway.store.mongo import Database, Document
from gateway.store.program import load_program


@dataclass(frozen=True)
class Snapshot:
    as_of: datetime
    window_from: date
    window_to: date
    segments: list[tuple[str, int]]
    scored: int

    def __str__(self) -> str:
        shares = ", ".join(f"{segment} {members}" for segment, members in self.segments)
        return f"{self.scored} members scored over {self.window_from}..{self.window_to}: {shares or 'none'}"

    @classmethod
    def of(cls, doc: Document) -> Snapshot:
        from gateway.core.clock import as_utc

        return cls(
            as_of=as_utc(doc["asOf"]),
            window_from=date.fromisoformat(doc["from"]),
            window_to=date.fromisoformat(doc["to"]),
            segments=[(s["segment"], s["members"]) for s in doc["segments"]],
            scored=doc["scored"],
        )


class MemberSegments:
    def __init__(self, db: Database, clock: Clock, window_days: int = DEFAULT_SEGMENT_WINDOW_DAYS) -> None:
        self.db = db
        self.clock = clock
        self.window_days = window_days

    async def refresh(self) -> Snapshot:
        """Score every buyer of the window now and write each member's segment."""
        program = await load_program(self.db)
        now = self.clock.now()
        start, end = segment_window(local_date(now, program.timezone), self.window_days)
        span = Range(start, end, program.timezone)
        window = {"from": start.isoformat(), "to": end.isoformat(), "timezone": program.timezone}
        return Snapshot.of(await store.write_snapshot(self.db, span.start_at, span.end_at, now, window))

    async def current(self) -> Snapshot | None:
        doc = await store.current(self.db)
        return None if doc is None else Snapshot.of(doc)
