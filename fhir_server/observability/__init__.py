"""What an operator sees of the running server (issue 17): one log line per request, MLLP message,
ingest and background job run (`logs`), the request id that ties them together (`context`), the
middleware that writes the request lines (`middleware`), Prometheus metrics (`metrics`) and the
health endpoints (`health`)."""
