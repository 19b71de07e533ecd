"""Issue 19: the catalogue of referenced apps, and patients connecting them to their record through
SMART App Launch v2 (standalone launch, authorization code with PKCE), then cutting them off.

- registry: the apps an admin registers (`fhir-server apps`), what a running server knows of them;
- grants: what a patient agreed to, its authorization code and refresh tokens;
- signin: who the browser's person is (the trial sign-in, its one-time codes, the signed-in sessions);
- wording: the scopes in plain French for the consent page (policies/app-scopes.json);
- pages: the catalogue, authorize, sign-in and consent pages; token_grants: the two grants the token
  endpoint adds; connections: the grants as FHIR Consents for the patient, and their revocation.
"""
