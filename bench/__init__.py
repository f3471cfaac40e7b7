"""flightrec benchmarks: `make bench` (python -m bench). Apart from the tests, on purpose:
performance is measured here as ratios against a raw baseline in the same run."""
