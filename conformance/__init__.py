"""fhir-conformance: a conformance test tool for FHIR R4 servers of the French shared health record
(FHIR R4 RESTful interactions, IHE MHD ITI-65/67/68 with ANS PDSm, the record's access rules, HL7 v2
over MLLP, CDA intake), for integration testers to run against any server and file the report.

Its test cases live in `conformance/cases/` (one module per area), each registered with a stable id,
tags and the requirement it checks (`conformance/registry.py`); `conformance/cli.py` is the command.
It does not use pytest nor the project's own tests."""
