"""What the benchmarks and the notebooks stand on, and the tests may use too (the LoCoMo reader,
the bilingual chat, made-up exports, servers as child processes): the clone's, as bench/ is, below
it and above the product (a contract), so neither the product's tests nor the product import
a benchmark or a test; the package uses none of it."""
