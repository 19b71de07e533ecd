"""The record's access rules, as implementations of the named hooks (fhir_server.storage.hooks)."""
