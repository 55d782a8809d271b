from pathlib import Path

from resolvers.schema import schema

SDL = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_checked_in_schema_matches_live_schema() -> None:
    assert SDL.read_text() == schema.as_str() + "\n", (
        "schema.graphql is stale: run `loyalty-gateway export-schema > schema.graphql`"
    )
