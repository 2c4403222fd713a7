"""What the benchmarks and the notebooks stand on, and the tests may use too (the LoCoMo reader,
the bilingual chat, made-up exports, servers as child processes, the loopback fakes): the clone's,
as the rest of bench/ is, and below it and above the product (contracts: it imports no other module
of bench/), so neither the product's tests nor the product import a benchmark or a test; the
package uses none of it."""
