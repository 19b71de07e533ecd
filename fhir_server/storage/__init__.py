"""MongoDB storage: the embedded store launcher, the connection and the repository."""
