"""The conformance suite integration testers run against any FHIR R4 server.

It is the project's own HTTP-level tests (REST core, search, IHE MHD / PDSm document sharing),
pointed at a server given by URL instead of one the suite starts itself.
"""
