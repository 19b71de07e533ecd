"""Who may do what: the server's own keys today; callers, tokens and scopes with issue 11."""
