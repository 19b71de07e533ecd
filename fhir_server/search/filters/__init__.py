"""One module per search parameter type: each turns a criterion into a MongoDB condition on the
index values that `fhir_server.search.extract` stored with the resource.

Array index fields are only ever matched by equality, `$in`, `$nin` or `$elemMatch`: the embedded
store answers other operators wrongly on arrays (docs/EMBEDDED-STORE.md, pinned by tests/store).
"""
