"""Great Expectations validation of synthetic batches: suites (JSON), frames, validate."""
