"""Code for developing modelhaul, not shipped with it: the real services the tests and the benchmarks
run against (both import from here; the benchmarks never import the test package)."""
