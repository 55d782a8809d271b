"""Program configuration as a YAML file: export it, and import it back validated, with a diff.

The file is the whole program (the same fields the GraphQL ``program`` query shows, in
snake_case). An import validates it exactly as ``updateProgram`` does (unknown keys and bad
values are refused with every reason), shows what would change, and with ``apply`` saves it
through ``program_admin.update_program``; nothing already earned changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from gateway.core.errors import BadInput
from gateway.domain.config_diff import Change, diff
from gateway.domain.program import Program
from gateway.features.program_admin import update_program, updated_program
from gateway.store.mongo import Database
from gateway.store.program import load_versioned

HEADER = (
    "# loyalty-gateway program configuration (import with: loyalty-gateway program import FILE)\n"
    "# Money is in fen (1 yuan = 100), percentages are whole numbers, weekdays 0 = Monday.\n"
)


def program_yaml(program: Program) -> str:
    return HEADER + yaml.safe_dump(program.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def parse_program_yaml(text: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise BadInput(f"the file is not valid YAML{at}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise BadInput("the file must be a YAML mapping of program fields")
    return data


@dataclass(frozen=True)
class ProgramImport:
    current: Program
    version: int
    proposed: Program
    changes: list[Change]
    data: dict[str, Any]


async def plan_import(db: Database, text: str) -> ProgramImport:
    """Validate the file against the current program; BadInput with every reason when invalid."""
    data = parse_program_yaml(text)
    if "tiers" not in data:
        raise BadInput("the file must list the program's tiers (export one to start from)")
    current, version = await load_versioned(db)
    try:
        Program.model_validate(data)  # the whole program: a missing or unknown field is an error
    except ValueError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in getattr(exc, "errors", lambda: [])()
        )
        raise BadInput(f"Invalid program: {reasons or exc}") from None
    proposed = updated_program(current, data)
    changes = diff(current.model_dump(mode="json"), proposed.model_dump(mode="json"))
    return ProgramImport(current, version, proposed, changes, data)


async def apply_import(db: Database, plan: ProgramImport) -> Program:
    """Save the planned program, unless someone changed it since the diff was shown (CONFLICT)."""
    program, _version = await update_program(db, plan.data, expected_version=plan.version)
    return program
