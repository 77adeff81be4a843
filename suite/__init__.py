"""estibench's asv benchmarks and the tasks they run (gradient tasks and training tasks)."""
