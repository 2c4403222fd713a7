"""What the tests share beside conftest's fixtures, that neither the package nor the benchmarks use."""
