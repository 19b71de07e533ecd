"""Golden files of converted bundles: Binary payloads summarised by digest and size, so the
expected files stay reviewable (the conversion tests check the bytes themselves)."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any


def with_binary_digests(bundle: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(bundle))
    for entry in copy["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "Binary":
            payload = base64.b64decode(resource["data"])
            resource["data"] = f"sha256:{hashlib.sha256(payload).hexdigest()} bytes:{len(payload)}"
    return copy
