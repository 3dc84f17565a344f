"""The `tactful` command line: operator tasks over the public tactful API."""
