"""Final evaluation: repeats on Ray actors, statistics, report."""
