"""How close a bf16 model's label log-probs must stay to fp32's: the bound tests/test_scoring.py asserts and
benchmarks/bench_scoring.py reports against (README, "Precision of bf16", has the measured values)."""
BF16_LOG_PROB_TOLERANCE = 0.25  # bound on |difference| at any position, in nats
BF16_ARGMAX_AGREEMENT = 0.95  # least share of positions with the same predicted class
