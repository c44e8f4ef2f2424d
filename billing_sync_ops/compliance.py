"""Static checks of the synthesised template against a committed baseline of accepted findings.

checkov and cfn-lint (with the serverless rules) run on the template `cdk synth` writes. Every finding is
named by its tool, its rule and the CDK construct path of the resource (stable across logical-id hashes).
A finding no baseline entry accepts fails the check; so does a baseline entry that accepts nothing any
more, so an accepted risk that went away is removed rather than kept as a blanket. Each entry carries the
reason a reviewer accepted it.

The tools live in their own virtualenv (`make compliance-venv`, pinned in infra/compliance/requirements.txt):
checkov pins an older boto3 than the one the project and moto run on.

    python -m billing_sync_ops.compliance --template cdk.out/BillingSync.template.json [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BASELINE_PATH = REPO_ROOT / "infra" / "compliance" / "baseline.json"
DEFAULT_TOOLS_DIR = REPO_ROOT / "build" / "compliance-venv" / "bin"
TOOLS = ("checkov", "cfn-lint")
MINIMUM_REASON_LENGTH = 30
_LOGICAL_ID_HASH = re.compile(r"[0-9A-F]{8}$")


class ComplianceError(Exception):
    """The checks could not run (a tool missing or failing, a malformed baseline): never a pass."""


@dataclass(frozen=True)
class Finding:
    tool: str
    rule: str
    resource: str
    logical_id: str
    message: str


@dataclass(frozen=True)
class Accepted:
    tool: str
    rule: str
    resource: str
    reason: str

    def accepts(self, finding: Finding) -> bool:
        return self.tool == finding.tool and self.rule == finding.rule and fnmatchcase(finding.resource, self.resource)


@dataclass
class Comparison:
    new: list[Finding] = field(default_factory=list)
    stale: list[Accepted] = field(default_factory=list)
    accepted: int = 0

    @property
    def passed(self) -> bool:
        return not self.new and not self.stale


def load_baseline(path: Path = BASELINE_PATH) -> list[Accepted]:
    """Raises ComplianceError for an entry without tool, rule, resource or a real reason."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ComplianceError(f"cannot read the compliance baseline {path}: {exc}") from exc
    entries: list[Accepted] = []
    for index, entry in enumerate(raw.get("accepted", [])):
        where = f"{path.name} entry {index}"
        if not isinstance(entry, dict) or set(entry) != {"tool", "rule", "resource", "reason"}:
            raise ComplianceError(f"{where}: expected exactly tool, rule, resource and reason, got {entry!r}")
        if entry["tool"] not in TOOLS:
            raise ComplianceError(f"{where}: tool must be one of {', '.join(TOOLS)}, got {entry['tool']!r}")
        if len(str(entry["reason"]).strip()) < MINIMUM_REASON_LENGTH:
            raise ComplianceError(f"{where}: the reason must say why the finding is accepted: {entry['reason']!r}")
        entries.append(Accepted(**{key: str(value) for key, value in entry.items()}))
    return entries


def compare(findings: Iterable[Finding], baseline: Sequence[Accepted]) -> Comparison:
    comparison = Comparison()
    used: set[int] = set()
    for finding in findings:
        matches = [index for index, entry in enumerate(baseline) if entry.accepts(finding)]
        if matches:
            used.update(matches)
            comparison.accepted += 1
        else:
            comparison.new.append(finding)
    comparison.stale = [entry for index, entry in enumerate(baseline) if index not in used]
    return comparison


def construct_paths(template: Mapping[str, Any]) -> dict[str, str]:
    """Logical id -> construct path without the stack's name (`PostingPipeline/PostingQueue/Resource`)."""
    paths: dict[str, str] = {}
    for logical_id, resource in template.get("Resources", {}).items():
        path = resource.get("Metadata", {}).get("aws:cdk:path")
        # Without path metadata the logical id less CDK's 8-digit hash is the stable name.
        paths[logical_id] = str(path).split("/", 1)[1] if path else _LOGICAL_ID_HASH.sub("", logical_id)
    return paths


def checkov_findings(report: Any, paths: Mapping[str, str]) -> list[Finding]:
    reports = report if isinstance(report, list) else [report]
    findings: list[Finding] = []
    for each in reports:
        if not isinstance(each, dict) or "results" not in each:
            # An empty run prints a summary without results: nothing failed.
            continue
        for failed in each["results"].get("failed_checks", []):
            logical_id = str(failed["resource"]).split(".", 1)[-1]
            findings.append(
                Finding(
                    "checkov", failed["check_id"], paths.get(logical_id, logical_id), logical_id, failed["check_name"]
                )
            )
    return findings


def cfn_lint_findings(report: Sequence[Mapping[str, Any]], paths: Mapping[str, str]) -> list[Finding]:
    findings: list[Finding] = []
    for match in report:
        location = match.get("Location", {}).get("Path") or []
        logical_id = str(location[1]) if len(location) > 1 and location[0] == "Resources" else "(template)"
        findings.append(
            Finding("cfn-lint", match["Rule"]["Id"], paths.get(logical_id, logical_id), logical_id, match["Message"])
        )
    return findings


def run_tools(template_path: Path, tools_dir: Path = DEFAULT_TOOLS_DIR) -> list[Finding]:
    """Runs checkov and cfn-lint on the template; raises ComplianceError when a tool is missing or breaks."""
    template = json.loads(template_path.read_text(encoding="utf-8"))
    paths = construct_paths(template)
    checkov = _run(
        tools_dir / "checkov",
        ["-f", str(template_path), "--framework", "cloudformation", "-o", "json", "--quiet", "--compact"],
        ok_codes=(0, 1),
    )
    cfn_lint = _run(
        tools_dir / "cfn-lint",
        [str(template_path), "--append-rules", "cfn_lint_serverless.rules", "--format", "json"],
        # cfn-lint's exit code is a bit mask of the levels it found (2 error, 4 warning, 8 informational).
        ok_codes=tuple(range(0, 16, 2)),
    )
    return checkov_findings(checkov, paths) + cfn_lint_findings(cfn_lint, paths)


def _run(executable: Path, arguments: list[str], *, ok_codes: tuple[int, ...]) -> Any:
    if not executable.exists():
        raise ComplianceError(f"{executable} is missing: run `make compliance-venv` first")
    environment = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    completed = subprocess.run(
        [str(executable), *arguments], capture_output=True, text=True, check=False, env=environment, timeout=600
    )
    if completed.returncode not in ok_codes:
        raise ComplianceError(f"{executable.name} exited {completed.returncode}: {completed.stderr.strip()[-2000:]}")
    try:
        return json.loads(completed.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise ComplianceError(f"{executable.name} printed no JSON report: {completed.stdout[:500]!r}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m billing_sync_ops.compliance", description=__doc__.split("\n")[0])
    parser.add_argument("--template", type=Path, default=REPO_ROOT / "cdk.out" / "BillingSync.template.json")
    parser.add_argument("--baseline", type=Path, default=BASELINE_PATH)
    parser.add_argument("--tools-dir", type=Path, default=DEFAULT_TOOLS_DIR)
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    arguments = parser.parse_args(argv)
    try:
        comparison = compare(run_tools(arguments.template, arguments.tools_dir), load_baseline(arguments.baseline))
    except ComplianceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if arguments.json:
        print(
            json.dumps(
                {
                    "passed": comparison.passed,
                    "accepted": comparison.accepted,
                    "new": [asdict(finding) for finding in comparison.new],
                    "stale": [asdict(entry) for entry in comparison.stale],
                },
                indent=2,
            )
        )
    else:
        for finding in comparison.new:
            print(f"NEW   {finding.tool} {finding.rule} {finding.resource}: {finding.message}")
        for entry in comparison.stale:
            print(f"STALE {entry.tool} {entry.rule} {entry.resource}: accepted but no longer found")
        print(f"{comparison.accepted} accepted, {len(comparison.new)} new, {len(comparison.stale)} stale")
    return 0 if comparison.passed else 1


if __name__ == "__main__":
    sys.exit(main())
