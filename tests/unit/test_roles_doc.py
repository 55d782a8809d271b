"""docs/roles.md's permission table is the code's table: a change to one without the other fails."""

from __future__ import annotations

from pathlib import Path

from gateway.core.auth import Role
from gateway.core.permissions import ROLE_PERMISSIONS, Permission

DOC = Path(__file__).resolve().parents[2] / "docs" / "roles.md"


def documented() -> tuple[list[str], dict[str, set[str]]]:
    text = DOC.read_text()
    table = text.split("<!-- permissions-table")[1].split("<!-- /permissions-table -->")[0]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in rows[0].strip("|").split("|")]
    roles = header[1:-1]
    granted: dict[str, set[str]] = {}
    for row in rows[2:]:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        permission = cells[0].strip("`")
        granted[permission] = {role for role, mark in zip(roles, cells[1:-1], strict=True) if mark == "✓"}
    return roles, granted


def test_every_permission_is_documented_with_exactly_the_roles_that_hold_it() -> None:
    roles, granted = documented()
    assert set(roles) == {role.value for role in ROLE_PERMISSIONS}
    in_code = {
        permission.value: {role.value for role, held in ROLE_PERMISSIONS.items() if permission in held}
        for permission in Permission
    }
    assert granted == in_code


def test_every_staff_role_has_a_column() -> None:
    roles, _ = documented()
    for role in (Role.ADMIN, Role.SUPPORT, Role.FINANCE, Role.WAREHOUSE, Role.MARKETING):
        assert role.value in roles
