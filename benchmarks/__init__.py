"""The harness behind `make bench`: wall seconds and peak memory per pipeline stage."""
