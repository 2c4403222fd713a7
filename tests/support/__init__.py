"""What the tests share beside conftest's fixtures, and the benchmarks and notebooks with them
(the LoCoMo reader, the bilingual chat, made-up exports, servers as child processes): the
clone's, as bench/ is, so the product's tests import no benchmark code; the package uses none
of it."""
