"""The operator data commands, run as an operator runs them: real files, a real mongod, real signals.

Each test gets its own database on the session's mongod; the CLI runs as a subprocess pointed at it
(``LOYALTY_MONGODB_URI`` + ``LOYALTY_DATABASE``), and the test reads MongoDB directly to see what
the command really did.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.features.ledger_export import CSV_COLUMNS
from tests.conftest import JWT_SECRET

CLI = [sys.executable, "-m", "gateway.cli"]


class Operator:
    """Runs ``loyalty-gateway`` against one database, in one working directory."""

    def __init__(self, mongo_uri: str, database: str, workdir: Path) -> None:
        self.database = database
        self.workdir = workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
        self.env.update(
            {
                "LOYALTY_MONGODB_URI": mongo_uri,
                "LOYALTY_DATABASE": database,
                "LOYALTY_JWT_SECRET": JWT_SECRET,
                "LOYALTY_DATA_DIR": str(workdir / ".loyalty"),
            }
        )

    def __call__(self, *args: str, database: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "LOYALTY_DATABASE": database or self.database}
        return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, cwd=self.workdir, timeout=300)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env, cwd=self.workdir
        )

    def file(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.write_text(text, encoding="utf-8")
        return path


@pytest.fixture
async def mongo(mongo_client: Any) -> AsyncIterator[Any]:
    """A fresh database name for the CLI, dropped afterwards (with any restore target)."""
    names = [f"cli_{uuid.uuid4().hex[:10]}"]
    yield mongo_client, names
    for name in names:
        await mongo_client.drop_database(name)


@pytest.fixture
def operator(mongo: Any, mongo_uri: str, tmp_path: Path) -> Operator:
    _, names = mongo
    return Operator(mongo_uri, names[0], tmp_path)


def db_of(mongo: Any, name: str | None = None) -> Any:
    client, names = mongo
    return client[name or names[0]]


def error_report(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


MEMBERS = """id,display_name,email,phone,birthday,referrer_id
m-001,Liu Yang,liu@example.com,+86 138 0000 0001,1990-05-01,
m-002,Chen Jing,,,,m-001
bad id!,Nobody,,,,
m-003,Broken Email,not-an-email,,,
m-004,Future Baby,,,2999-01-01,
m-005,Wrong Shape
m-006,Unknown Referrer,,,,m-999
m-001,Liu Again,,,,
m-007,Wang Fang,wang@example.com,,1985-12-31,m-002
"""


async def test_member_import_dry_run_then_apply_reports_bad_rows_and_is_idempotent(
    operator: Operator, mongo: Any
) -> None:
    db = db_of(mongo)
    path = operator.file("members.csv", MEMBERS)

    dry = operator("import", "members", str(path), "--dry-run")
    assert dry.returncode == 1, dry.stderr
    assert "dry run: members import 'members': 3 would create, 6 failed" in dry.stdout
    assert await db.members.count_documents({}) == 0, "a dry run writes nothing"

    first = operator("import", "members", str(path))
    assert first.returncode == 1, first.stderr
    assert "3 created, 6 failed" in first.stdout
    assert "6 rows failed; the good rows were applied" in first.stderr
    assert sorted(await db.members.distinct("_id")) == ["m-001", "m-002", "m-007"]
    wang = await db.members.find_one({"_id": "m-007"})
    assert wang["referrerId"] == "m-002" and wang["email"] == "wang@example.com"
    assert wang["balances"]["available"] == 0, "imported members start with no points"

    errors_file = path.with_name("members.csv.errors.csv")
    report = {int(r["line"]): r for r in error_report(errors_file)}
    assert sorted(report) == [4, 5, 6, 7, 8, 9]
    assert report[4]["code"] == "MALFORMED_ROW" and "id:" in report[4]["error"]
    assert report[5]["code"] == "BAD_USER_INPUT" and "email" in report[5]["error"]
    assert report[6]["code"] == "BAD_USER_INPUT" and "birthday" in report[6]["error"]
    assert report[7]["error"] == "has 2 fields, the header has 6"
    assert report[8]["code"] == "MEMBER_NOT_FOUND"
    assert report[9]["code"] == "MALFORMED_ROW" and "already appears on line 2" in report[9]["error"]
    assert report[5]["display_name"] == "Broken Email", "the report carries the original row"

    again = operator("import", "members", str(path))
    assert again.returncode == 1
    assert "3 unchanged, 6 failed" in again.stdout
    assert await db.members.count_documents({}) == 3

    fixed = operator.file("members.csv", "id,display_name\nm-001,Liu Yang Renamed\nm-008,New\n")
    changed = operator("import", "members", str(fixed))
    assert changed.returncode == 1
    assert "ALREADY_EXISTS" in changed.stderr and "1 created, 1 failed" in changed.stdout
    assert (await db.members.find_one({"_id": "m-001"}))["displayName"] == "Liu Yang", "never overwritten"
    assert errors_file.exists()


async def test_a_header_without_required_columns_rejects_the_file(operator: Operator, mongo: Any) -> None:
    path = operator.file("people.csv", "member,name\nm-1,Liu\n")
    result = operator("import", "members", str(path))
    assert result.returncode == 2
    assert "missing columns: id, display_name" in result.stderr and "Traceback" not in result.stderr
    empty = operator("import", "grants", str(operator.file("empty.csv", "")))
    assert empty.returncode == 2 and "the file is empty" in empty.stderr
    assert await db_of(mongo).members.count_documents({}) == 0


GIFTS = """id,name,category,cost_price,points,stock,cash,min_tier,per_member,period,list_from
g-tea,Longjing tea,drinks,320000,1500,20,30000,,2,MONTH,2026-01-01T00:00:00+08:00
g-mug,Mug,home,2000,300,5,,,,,
g-bad-cash,Too much cash,home,1000,100,1,5000,,,,
g-bad-tier,Unknown tier,home,1000,100,1,,PLATINUM,,,
g-bad-int,Lots,home,ten,100,1,,,,,
g-neg,Negative stock,home,1000,100,-3,,,,,
g-limit,Half a limit,home,1000,100,1,,,2,,
"""


async def test_gift_import_creates_valid_gifts_and_reports_the_rest(operator: Operator, mongo: Any) -> None:
    db = db_of(mongo)
    path = operator.file("gifts.csv", GIFTS)
    result = operator("import", "gifts", str(path), "--errors", str(operator.workdir / "gift-errors.csv"))
    assert result.returncode == 1, result.stderr
    assert "2 created, 5 failed" in result.stdout
    tea = await db.gifts.find_one({"_id": "g-tea"})
    assert (tea["points"], tea["cash"], tea["stock"], tea["limits"]["perMember"]) == (1500, 30000, 20, 2)
    assert tea["minTier"] == "SENIOR", "the program's default minimum tier applies"
    codes = {r["id"]: r["code"] for r in error_report(operator.workdir / "gift-errors.csv")}
    assert codes == {
        "g-bad-cash": "BAD_USER_INPUT",
        "g-bad-tier": "BAD_USER_INPUT",
        "g-bad-int": "MALFORMED_ROW",
        "g-neg": "BAD_USER_INPUT",
        "g-limit": "BAD_USER_INPUT",
    }
    again = operator("import", "gifts", str(path), "--errors", str(operator.workdir / "gift-errors.csv"))
    assert "2 unchanged, 5 failed" in again.stdout
    assert await db.gifts.count_documents({}) == 2


async def seed_members(operator: Operator, count: int) -> None:
    rows = "".join(f"m-{i:03d},Member {i}\n" for i in range(count))
    result = operator("import", "members", str(operator.file("seed-members.csv", "id,display_name\n" + rows)))
    assert result.returncode == 0, result.stderr


async def test_mass_grants_go_through_the_ledger_once_per_row_and_a_fixed_row_applies_alone(
    operator: Operator, mongo: Any
) -> None:
    db = db_of(mongo)
    await seed_members(operator, 3)
    text = (
        "member_id,points,reason\n"
        "m-000,100,Spring campaign\n"
        "m-001,100,Spring campaign\n"
        "m-001,100,Spring campaign\n"  # a second, identical grant: applied twice on purpose
        "m-002,-50,Correction\n"  # more than m-002 has
        "m-404,100,Spring campaign\n"
        "m-000,1OO,Spring campaign\n"
    )
    path = operator.file("spring.csv", text)
    dry = operator("import", "grants", str(path), "--dry-run")
    assert "3 would grant, 3 failed" in dry.stdout, dry.stdout + dry.stderr
    assert await db.ledger.count_documents({}) == 0

    first = operator("import", "grants", str(path))
    assert first.returncode == 1
    assert "3 granted, 3 failed" in first.stdout
    balances = {m["_id"]: m["balances"]["available"] async for m in db.members.find()}
    assert balances == {"m-000": 100, "m-001": 200, "m-002": 0}
    codes = {r["line"]: r["code"] for r in error_report(path.with_name("spring.csv.errors.csv"))}
    assert codes == {"5": "INSUFFICIENT_POINTS", "6": "MEMBER_NOT_FOUND", "7": "MALFORMED_ROW"}
    entry = await db.ledger.find_one({"memberId": "m-000"})
    assert entry["kind"] == "GRANT" and entry["reason"] == "Spring campaign"
    assert entry["source"] == {"type": "OPERATOR", "id": "cli-import"}

    fixed = operator.file("spring.csv", text.replace("1OO", "100").replace("m-002,-50", "m-002,50"))
    second = operator("import", "grants", str(fixed))
    assert second.returncode == 1, "m-404 still does not exist"
    assert "2 granted, 3 already granted, 1 failed" in second.stdout
    balances = {m["_id"]: m["balances"]["available"] async for m in db.members.find()}
    assert balances == {"m-000": 200, "m-001": 200, "m-002": 50}
    assert await db.ledger.count_documents({}) == 5

    audit = operator("audit")
    assert audit.returncode == 0 and "audit clean" in audit.stdout


async def wait_for_checkpoint(db: Any, run_id: str, past_line: int, process: subprocess.Popen[str]) -> dict[str, Any]:
    """Poll the import's checkpoint until it has passed ``past_line`` (no timing assumption)."""
    for _ in range(6000):
        run = await db.import_runs.find_one({"_id": run_id})
        if run is not None and run["nextLine"] > past_line and not run["finished"]:
            return run
        assert process.poll() is None, "the import ended before it could be interrupted"
        time.sleep(0.02)
    raise AssertionError("the import never checkpointed")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_an_interrupted_grant_import_resumes_and_grants_every_row_exactly_once(
    operator: Operator, mongo: Any, sig: signal.Signals
) -> None:
    db = db_of(mongo)
    members, per_member = 40, 30
    await seed_members(operator, members)
    good = [f"m-{i % members:03d},7,Bulk bonus\n" for i in range(members * per_member)]
    # a bad row before the interruption (line 3) and one after it (the last line)
    rows = good[:1] + ["m-404,7,Bulk bonus\n"] + good[1:] + ["m-000,seven,Bulk bonus\n"]
    path = operator.file("bulk.csv", "member_id,points,reason\n" + "".join(rows))
    last_line = len(rows) + 1

    process = operator.start("import", "grants", str(path))
    checkpoint = await wait_for_checkpoint(db, "grants:bulk", 60, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    stopped = await db.import_runs.find_one({"_id": "grants:bulk"})
    assert not stopped["finished"]
    assert stopped["nextLine"] >= checkpoint["nextLine"]
    assert [f["line"] for f in stopped["failures"]] == [3]
    granted_before = await db.ledger.count_documents({})
    assert granted_before < members * per_member, "interrupted part-way"
    if sig is signal.SIGTERM:
        assert process.returncode == 130
        assert "interrupted: run the same command again to resume" in stderr
        # A graceful stop checkpoints the last finished row; the row in flight when the signal came
        # may have committed just before it, and is then replayed (not granted again) on resume.
        assert granted_before + 2 <= stopped["nextLine"] <= granted_before + 3

    resumed = operator("import", "grants", str(path))
    assert resumed.returncode == 1, resumed.stderr
    assert f"resuming at line {stopped['nextLine']}" in resumed.stderr
    assert "2 rows failed; the good rows were applied" in resumed.stderr
    report = error_report(path.with_name("bulk.csv.errors.csv"))
    assert [(r["line"], r["code"]) for r in report] == [("3", "MEMBER_NOT_FOUND"), (str(last_line), "MALFORMED_ROW")]
    assert await db.ledger.count_documents({}) == members * per_member
    async for member in db.members.find():
        assert member["balances"]["available"] == 7 * per_member, member["_id"]
    final = await db.import_runs.find_one({"_id": "grants:bulk"})
    assert final["finished"] and final["nextLine"] == last_line + 1
    assert final["counts"]["failed"] == 2
    assert sum(final["counts"].values()) >= len(rows)
    assert operator("audit").returncode == 0


PROGRAM_CHANGES = {"check_in_points": 8, "referral_points": 150}


async def test_program_export_then_import_shows_a_diff_and_dry_run_changes_nothing(
    operator: Operator, mongo: Any
) -> None:
    db = db_of(mongo)
    exported = operator("program", "export", "--output", "program.yaml")
    assert exported.returncode == 0, exported.stderr
    document = yaml.safe_load((operator.workdir / "program.yaml").read_text())
    assert [t["code"] for t in document["tiers"]] == ["MEMBER", "SENIOR", "VIP", "SUPREME_VIP"]
    document["earning"].update(PROGRAM_CHANGES)
    document["tiers"][1]["threshold"] = 40000
    changed = operator.file("program.yaml", yaml.safe_dump(document, allow_unicode=True, sort_keys=False))

    dry = operator("program", "import", str(changed), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "~ earning.check_in_points: 5 -> 8" in dry.stdout
    assert "~ tiers[1].threshold: 38000 -> 40000" in dry.stdout
    assert "dry run: 3 changes would apply; nothing was saved" in dry.stdout
    stored = await db.program.find_one({"_id": "current"})
    assert stored["config"]["earning"]["check_in_points"] == 5

    applied = operator("program", "import", str(changed))
    assert applied.returncode == 0 and "applied 3 changes" in applied.stdout
    stored = await db.program.find_one({"_id": "current"})
    assert stored["config"]["earning"]["check_in_points"] == 8 and stored["config"]["tiers"][1]["threshold"] == 40000
    assert "no changes" in operator("program", "import", str(changed)).stdout

    exported_again = operator("program", "export")
    assert yaml.safe_load(exported_again.stdout) == document


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tiers: [\n  - code: X\n", "not valid YAML at line"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("name: No tiers\n", "must list the program's tiers"),
        ("tiers: []\nearning: {check_in_pionts: 3}\n", "check_in_pionts"),
        ("tiers:\n  - {code: A, name: A, threshold: 0, price_percent: 150}\n", "price_percent"),
    ],
)
async def test_an_invalid_program_file_is_refused_with_its_reason(
    operator: Operator, mongo: Any, text: str, message: str
) -> None:
    result = operator("program", "import", str(operator.file("bad.yaml", text)))
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr
    stored = await db_of(mongo).program.find_one({"_id": "current"})
    assert stored["version"] == 1, "nothing was saved"


async def test_ledger_export_for_a_period_as_csv_and_ndjson(operator: Operator, mongo: Any) -> None:
    db = db_of(mongo)
    await seed_members(operator, 2)
    grants = "member_id,points,reason\nm-000,10,A\nm-001,20,B\nm-000,-5,C\n"
    assert operator("import", "grants", str(operator.file("g.csv", grants))).returncode == 0
    csv_out = operator("ledger", "export", "--from", "2020-01-01", "--to", "2100-01-01", "--output", "ledger.csv")
    assert csv_out.returncode == 0, csv_out.stderr
    assert "exported 3 ledger entries" in csv_out.stderr
    rows = list(csv.DictReader((operator.workdir / "ledger.csv").open(encoding="utf-8")))
    assert [(r["member_id"], r["kind"], r["points"], r["available_after"]) for r in rows] == [
        ("m-000", "GRANT", "10", "10"),
        ("m-001", "GRANT", "20", "20"),
        ("m-000", "ADJUSTMENT", "-5", "5"),
    ]
    ids = [str(e["_id"]) async for e in db.ledger.find().sort("createdAt", 1)]
    assert [r["entry_id"] for r in rows] == ids

    nd = operator("ledger", "export", "--from", "2020-01-01", "--to", "2100-01-01", "--format", "ndjson")
    lines = [json.loads(line) for line in nd.stdout.splitlines()]
    assert [line["entryId"] for line in lines] == ids
    assert lines[2]["balancesAfter"]["available"] == 5 and lines[0]["createdAt"].endswith("Z")

    before = operator("ledger", "export", "--from", "2020-01-01", "--to", "2020-02-01")
    assert before.stdout.splitlines() == [",".join(CSV_COLUMNS)]
    bad = operator("ledger", "export", "--from", "March", "--to", "2020-02-01")
    assert bad.returncode == 2 and "--from 'March' is not a date" in bad.stderr
    backwards = operator("ledger", "export", "--from", "2021-01-01", "--to", "2020-01-01")
    assert backwards.returncode == 2 and "--to must be after --from" in backwards.stderr


async def test_backup_then_verified_restore_into_an_empty_database_audits_clean(operator: Operator, mongo: Any) -> None:
    client, names = mongo
    await seed_members(operator, 5)
    grants = "".join(f"m-{i:03d},{10 * (i + 1)},Backup test\n" for i in range(5))
    assert (
        operator("import", "grants", str(operator.file("g.csv", "member_id,points,reason\n" + grants))).returncode == 0
    )
    assert operator("import", "gifts", str(operator.file("gifts.csv", GIFTS.split("g-bad-cash")[0]))).returncode == 0

    backup_dir = operator.workdir / "backup"
    taken = operator("backup", str(backup_dir))
    assert taken.returncode == 0, taken.stderr
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    source = db_of(mongo)
    assert manifest["collections"]["members"]["count"] == 5
    assert manifest["collections"]["ledger"]["count"] == await source.ledger.count_documents({})
    assert operator("backup", str(backup_dir)).returncode == 2, "never overwrites a backup"

    target = f"cli_{uuid.uuid4().hex[:10]}"
    names.append(target)
    restored = operator("restore", str(backup_dir), database=target)
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert "audit clean" in restored.stdout
    copy = client[target]
    for name, spec in manifest["collections"].items():
        assert await copy[name].count_documents({}) == spec["count"], name
    assert await copy.members.find_one({"_id": "m-004"}) == await source.members.find_one({"_id": "m-004"})
    assert operator("audit", database=target).returncode == 0

    again = operator("restore", str(backup_dir), database=target)
    assert again.returncode == 2 and "is not empty" in again.stderr
    assert operator("restore", str(backup_dir), "--replace", database=target).returncode == 0

    ledger_file = backup_dir / "ledger.bson"
    ledger_file.write_bytes(ledger_file.read_bytes()[:-7])
    other = f"cli_{uuid.uuid4().hex[:10]}"
    names.append(other)
    corrupt = operator("restore", str(backup_dir), database=other)
    assert corrupt.returncode == 2 and "ledger.bson does not match its checksum" in corrupt.stderr
    assert await client[other].members.count_documents({}) == 0, "nothing is written from a damaged backup"


async def test_segment_grant_dry_run_start_and_resume_from_the_command_line(operator: Operator, mongo: Any) -> None:
    db = db_of(mongo)
    rows = "".join(f"vip-{i:03d},Gold {i}\n" for i in range(40)) + "pl-1,Plain One\n"
    assert operator("import", "members", str(operator.file("m.csv", "id,display_name\n" + rows))).returncode == 0

    dry = operator("segment-grant", "preview", "--points", "20", "--name", "gold")
    assert dry.returncode == 0, dry.stderr
    assert "dry run: 40 members × 20 points = 800 points" in dry.stdout
    assert await db.segment_grants.count_documents({}) == 0

    bad = operator("segment-grant", "preview", "--points", "20", "--phone", "12")
    assert bad.returncode == 2 and "phone" in bad.stderr

    queued = operator(
        "segment-grant", "start", "--points", "20", "--reason", "Thanks", "--key", "k1", "--name", "gold", "--no-run"
    )
    assert queued.returncode == 0, queued.stderr
    job = await db.segment_grants.find_one({})
    assert job["status"] == "PREPARING" and job["createdBy"] == "cli:cli"
    job_id = str(job["_id"])
    assert f"segment grant {job_id}: PREPARING" in queued.stdout

    done = operator("segment-grant", "run", job_id)
    assert done.returncode == 0, done.stderr
    assert f"segment grant {job_id}: COMPLETED, 20 points each, 40 granted, 0 skipped of 40" in done.stdout
    grants = await db.ledger.count_documents({"source.type": "SEGMENT_GRANT", "source.id": job_id})
    assert grants == 40
    again = operator(
        "segment-grant", "start", "--points", "20", "--reason", "Thanks", "--key", "k1", "--name", "gold"
    )
    assert again.returncode == 0 and "already started with this key" in again.stderr
    assert await db.ledger.count_documents({"source.type": "SEGMENT_GRANT"}) == 40
    status = operator("segment-grant", "status", job_id)
    assert "COMPLETED" in status.stdout
    entries = await db.adminAudit.find({"targetKind": "segmentGrant"}).to_list()
    assert [e["details"]["event"] for e in entries] == ["created"]


async def test_import_coupons_checks_the_whole_file_sends_it_in_parts_and_is_idempotent(
    operator: Operator, mongo: Any
) -> None:
    from datetime import UTC, datetime

    db = db_of(mongo)
    now = datetime.now(UTC)
    await db["gifts"].insert_one(
        {"_id": "cpn", "name": "免单券", "category": "coupons", "costPrice": 100, "points": 10, "cash": 0,
         "minTier": "MEMBER", "listed": True, "kind": "VIRTUAL", "coupon": {"cancelWindowMinutes": 60},
         "stock": 0, "redeemed": 0, "version": 1, "createdAt": now, "updatedAt": now}
    )  # fmt: skip
    codes = [f"FREE-{i:05d}" for i in range(12_000)]
    path = operator.file("codes.txt", "\n".join([*codes, "", "  FREE-00007  ", "FREE-00008"]) + "\n")
    done = operator("import", "coupons", "cpn", str(path), "--expires-at", "2099-01-01T00:00:00+08:00", "--as", "ops")
    assert done.returncode == 0, done.stderr
    assert "12000 added, 0 already in the pool, 2 repeated in the file" in done.stdout
    assert await db["coupon_codes"].count_documents({"giftId": "cpn", "status": "AVAILABLE"}) == 12_000
    assert (await db["gifts"].find_one({"_id": "cpn"}))["stock"] == 12_000
    sample = await db["coupon_codes"].find_one({})
    assert "FREE-" not in json.dumps(sample, default=str).replace(sample["hint"], "")  # sealed, only the hint shows
    audit = await db["adminAudit"].find({"action": "coupon_pool.change"}).sort("seq", 1).to_list()
    assert [(e["actor"], e["details"]["added"]) for e in audit] == [("cli:ops", 10_000), ("cli:ops", 2_000)]

    again = operator("import", "coupons", "cpn", str(path))
    assert again.returncode == 0, again.stderr
    assert "0 added, 12000 already in the pool" in again.stdout
    assert (await db["gifts"].find_one({"_id": "cpn"}))["stock"] == 12_000

    bad = operator.file("bad.txt", "NEW-1\nhas a space\nNEW-2\n")
    refused = operator("import", "coupons", "cpn", str(bad))
    assert refused.returncode != 0 and "bad.txt:2: contains spaces" in refused.stderr
    assert await db["coupon_codes"].count_documents({}) == 12_000
