"""Project tooling (benchmarks, load tests, deployment): not part of the library, not uploaded to the Space."""
