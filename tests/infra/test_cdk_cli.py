from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.infra

REPO_ROOT = Path(__file__).resolve().parents[2]
CDK_CLI = REPO_ROOT / "node_modules" / ".bin" / "cdk"


@pytest.mark.skipif(not CDK_CLI.exists(), reason="CDK CLI not installed: run `npm install` (make does it)")
def test_cdk_cli_synthesises_the_app_from_cdk_json(tmp_path):
    # WHEN the pinned CDK CLI runs the app the way `make cdk-synth` does
    result = subprocess.run(
        [str(CDK_CLI), "synth", "--quiet", "-o", str(tmp_path)],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            "CDK_DISABLE_VERSION_CHECK": "1",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )

    # THEN it succeeds and reads the cloud assembly it asked for
    assert result.returncode == 0, result.stderr[-4000:]
    template = json.loads((tmp_path / "BillingSync.template.json").read_text())
    assert "WebhookUrl" in template["Outputs"]
