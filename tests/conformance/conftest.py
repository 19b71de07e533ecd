"""The record the access-rule cases need, prepared on the session's server as a tester would on
theirs: a patient, a professional they authorised, one they blocked, their médecin traitant; and a
config file giving the tool each role's token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.access.world import open_world
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def roles_config(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    world = open_world(server)
    gp = world.practitioner("medecin_traitant")
    authorised = world.practitioner("professional")
    blocked = world.practitioner("blocked_professional")
    patient_id, ins = world.patient(general_practitioner=gp.practitioner_id)
    world.consent(patient_id, "permit", authorised)
    world.consent(patient_id, "deny", blocked)
    world.patient_caller("patient", ins)
    config = tmp_path_factory.mktemp("conformance") / "target.json"
    config.write_text(json.dumps({"base_url": server.base_url, "token": server.token,
                                  "mllp": f"127.0.0.1:{server.mllp_port}",
                                  "cda_url": f"{server.root_url}/ingest/cda",
                                  "roles": {name: world.tokens[name] for name in
                                            ("patient", "professional", "blocked_professional", "medecin_traitant")}}))
    return config
