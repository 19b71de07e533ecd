"""What happens after a commit: the outbox dispatcher and, in later issues, what hangs on it."""
