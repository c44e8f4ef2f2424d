"""JSON Schema artefacts for the canonical finance events (what `make schemas` runs).

Writes one schema per event type to ``schemas/v<major>/<event_type>.json`` from
``billing_sync.domain.events.EVENT_MODELS`` plus an ``index.json`` naming the types and the
``SCHEMA_VERSION``. ``--check`` writes nothing and exits 1 listing the types whose committed artefact
differs from the models, so CI catches a model change that was not regenerated (and versioned).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

try:
    from billing_sync.domain.events import EVENT_MODELS, SCHEMA_VERSION
except ModuleNotFoundError:  # run from a checkout without `pip install -e .`: the Lambda code lives in functions/
    sys.path.insert(0, str(REPO_ROOT / "functions"))
    from billing_sync.domain.events import EVENT_MODELS, SCHEMA_VERSION
SCHEMAS_ROOT = REPO_ROOT / "schemas"
INDEX_NAME = "index.json"


def schema_dir(root: Path = SCHEMAS_ROOT, version: str = SCHEMA_VERSION) -> Path:
    """Artefacts of one major version live together: ``schemas/v1`` for 1.x."""
    return root / f"v{version.split('.')[0]}"


def render(document: Any) -> str:
    """The one serialisation every artefact uses: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def expected_artefacts() -> dict[str, str]:
    """File name -> content for every artefact the current models imply."""
    artefacts = {
        f"{event_type.value}.json": render(model.model_json_schema(mode="serialization"))
        for event_type, model in sorted(EVENT_MODELS.items(), key=lambda item: item[0].value)
    }
    artefacts[INDEX_NAME] = render(
        {"schema_version": SCHEMA_VERSION, "event_types": sorted(t.value for t in EVENT_MODELS)}
    )
    return artefacts


def stale_artefacts(directory: Path) -> list[str]:
    """Names (event types, or ``index``) whose committed artefact is missing or differs."""
    stale = []
    for name, content in expected_artefacts().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(name.removesuffix(".json"))
    return stale


def write_artefacts(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in expected_artefacts().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m billing_sync_ops.schemas", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed artefact differs from the models")
    parser.add_argument("--root", type=Path, default=SCHEMAS_ROOT, help="schemas directory (default: %(default)s)")
    args = parser.parse_args(argv)
    directory = schema_dir(args.root)
    if args.check:
        stale = stale_artefacts(directory)
        if stale:
            print(
                f"schema artefacts in {directory} differ from the models: {', '.join(stale)}\n"
                "run `make schemas` and commit the result; bump SCHEMA_VERSION for an incompatible change",
                file=sys.stderr,
            )
            return 1
        print(f"{len(EVENT_MODELS)} schema artefacts in {directory} match the models (v{SCHEMA_VERSION})")
        return 0
    written = write_artefacts(directory)
    print(f"wrote {len(written)} artefacts to {directory} (v{SCHEMA_VERSION})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
