"""CSV import rules: typed rows, per-row errors that never stop the good rows, stable grant keys."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gateway.domain.imports import GiftRow, GrantRow, HeaderError, ImportKind, MemberRow, parse


def test_members_parse_with_optional_columns_and_a_spreadsheet_bom() -> None:
    text = "\ufeffid,display_name,email,birthday\nm-1,Liu Yang,liu@example.com,1990-05-01\nm-2, Chen ,,\n"
    rows = parse(ImportKind.MEMBERS, text)
    assert [r.row for r in rows] == [
        MemberRow(id="m-1", display_name="Liu Yang", email="liu@example.com", birthday=date(1990, 5, 1)),
        MemberRow(id="m-2", display_name="Chen"),
    ]
    assert [r.line for r in rows] == [2, 3]


def test_every_error_of_a_row_is_reported_with_its_line_and_good_rows_still_parse() -> None:
    text = (
        "id,display_name,birthday,referrer_id\n"
        "ok-1,Good,,\n"
        "bad id!,,1990-13-01,also bad!\n"
        "ok-2,Also good,2000-01-01,ok-1\n"
        "short,row\n"
        "ok-1,Repeated id,,\n"
    )
    rows = parse(ImportKind.MEMBERS, text)
    assert [(r.line, r.ok) for r in rows] == [(2, True), (3, False), (4, True), (5, False), (6, False)]
    (bad,) = rows[1].errors
    for column in ("id:", "display_name: is required", "birthday:", "referrer_id:"):
        assert column in bad
    assert rows[3].errors == ("has 2 fields, the header has 4",)
    assert rows[4].errors == ("id: 'ok-1' already appears on line 2",)


def test_blank_lines_are_skipped_and_quoted_fields_keep_commas() -> None:
    text = 'id,display_name\n\nm-1,"Liu, Yang"\n  ,  \n'
    rows = parse(ImportKind.MEMBERS, text)
    assert [r.row.display_name for r in rows if r.row] == ["Liu, Yang"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "the file is empty"),
        ("id,name", "missing columns: display_name"),
        ("id,display_name,nickname", "unknown columns: nickname"),
        ("id,display_name,id", "repeated columns: id"),
    ],
)
def test_a_wrong_header_rejects_the_whole_file(header: str, message: str) -> None:
    with pytest.raises(HeaderError, match=message):
        parse(ImportKind.MEMBERS, header + ("\n" if header else ""))


def test_gift_rows_type_money_times_and_flags() -> None:
    text = (
        "id,name,category,cost_price,points,stock,cash,listed,list_from,per_member,period\n"
        "g-1,Tea,drinks,320000,1500,10,30000,yes,2026-03-01T00:00:00+08:00,2,month\n"
        "g-2,Mug,home,1000,abc,-1,,maybe,2026-03-01T00:00:00,,fortnight\n"
    )
    good, bad = parse(ImportKind.GIFTS, text)
    assert good.row == GiftRow(
        id="g-1",
        name="Tea",
        category="drinks",
        cost_price=320000,
        points=1500,
        stock=10,
        cash=30000,
        listed=True,
        list_from=datetime(2026, 2, 28, 16, 0, tzinfo=UTC),
        per_member=2,
        period="MONTH",
    )
    (errors,) = bad.errors
    assert "points: 'abc' is not a whole number" in errors
    assert "listed: 'maybe' is not true or false" in errors
    assert "list_from: '2026-03-01T00:00:00' needs a UTC offset" in errors
    # stock -1 is well-formed here; the catalog service rejects it when the row is applied


def test_grant_keys_are_stable_when_a_bad_row_is_fixed_or_rows_repeat() -> None:
    before = "member_id,points,reason\nm-1,100,Welcome\nm-2,1O0,Welcome\nm-1,100,Welcome\nm-3,-5,Fix,\n"
    after = "member_id,points,reason\nm-1,100,Welcome\nm-2,100,Welcome\nm-1,100,Welcome\nm-3,-5,Fix\n"
    first, second = parse(ImportKind.GRANTS, before), parse(ImportKind.GRANTS, after)
    keys_before = {r.line: r.row.key for r in first if r.row}
    keys_after = {r.line: r.row.key for r in second if r.row}
    assert 3 not in keys_before and "points: '1O0' is not a whole number" in first[1].errors[0]
    assert first[3].errors == ("has 4 fields, the header has 3",)
    # the two identical m-1 rows are two grants with two keys, and they keep them after the fix
    assert keys_before[2] != keys_before[4]
    assert keys_before[2] == keys_after[2] and keys_before[4] == keys_after[4]
    assert isinstance(second[1].row, GrantRow) and second[3].row == GrantRow("m-3", -5, "Fix", keys_after[5])


def test_an_explicit_grant_key_wins_and_zero_points_is_an_error() -> None:
    rows = parse(ImportKind.GRANTS, "member_id,points,reason,key\nm-1,10,Promo,promo-2026-m-1\nm-1,0,Promo,\n")
    assert rows[0].row == GrantRow("m-1", 10, "Promo", "promo-2026-m-1")
    assert rows[1].errors == ("points: must not be zero (positive grants, negative adjusts)",)
