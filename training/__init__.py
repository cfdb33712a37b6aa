"""The memrl CLI, IMPALA on Ray, and the supervised side-trainers."""
