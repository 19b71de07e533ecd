"""The audit trail (issue 13): one AuditEvent per interaction, durable before the answer leaves.

`trace` collects what an interaction touched, `events` turns it into AuditEvents (codes from
`profiles/audit/audit-event.json`), `writer` stores them with a group commit in the audit store
(`store`), `middleware` does this for every HTTP request and `mllp` for every HL7 v2 message;
`routes` serves the trail (`access` says who reads which events) and refuses to change it.
"""
