// Microbenchmarks placeholder replaced below.
